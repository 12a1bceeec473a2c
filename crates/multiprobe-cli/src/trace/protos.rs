//! Each selected function's prototype, from the BTF that describes it: the kernel's own for
//! its functions, the module's (split BTF on top of the kernel's) for module functions.
//! Return types always; parameters with `--args`.

use std::collections::BTreeMap;

use multiprobe::btf::Btf;
use multiprobe::symbols::Function;

use super::args::{self, Param};
use super::ret::{self, RetType};
use crate::output;

/// What the BTF says of the selected functions, in their order.
#[derive(Debug)]
pub struct Prototypes {
    pub types: Vec<RetType>,
    /// With `--args`.
    pub params: Option<Vec<Vec<Param>>>,
    /// The kernel's BTF tags `__user` pointers: strings are read by tag, not by address.
    pub user_tags: bool,
}

/// Reads the kernel's BTF and the BTF of every module a function comes from; a BTF that
/// cannot be read leaves its functions untyped, with a warning. A module's BTF is read on
/// top of a copy of the kernel's, so one module at a time: memory stays at one copy
/// whatever the number of modules a pattern reaches.
pub fn read(functions: &[Function], with_args: bool) -> Prototypes {
    let vmlinux = multiprobe::btf::kernel::vmlinux()
        .inspect_err(|e| crate::error::warning(format_args!("return values and arguments are shown raw: {e}")))
        .ok();
    let mut protos = Prototypes {
        types: vec![RetType::Unknown; functions.len()],
        params: with_args.then(|| vec![Vec::new(); functions.len()]),
        user_tags: with_args && vmlinux.as_deref().is_some_and(args::has_user_tags),
    };
    let Some(base) = vmlinux else { return protos };
    let mut by_module: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, f) in functions.iter().enumerate() {
        by_module.entry(f.module.as_deref()).or_default().push(i);
    }
    for (module, indices) in by_module {
        match module {
            None => protos.fill(&base, functions, &indices),
            Some(m) => match multiprobe::btf::kernel::module(m, &base) {
                Ok(btf) => protos.fill(&btf, functions, &indices),
                Err(e) => crate::error::warning(format_args!("functions of module {m} are shown untyped: {e}")),
            },
        }
    }
    protos
}

impl Prototypes {
    /// The prototypes of `functions[i]` for each of `indices`, from `btf`.
    fn fill(&mut self, btf: &Btf, functions: &[Function], indices: &[usize]) {
        for &i in indices {
            self.types[i] = ret::of_function(btf, &functions[i].name);
            if let Some(params) = &mut self.params {
                params[i] = args::of_function(btf, &functions[i].name);
            }
        }
    }
}

/// Says what `--errors` cannot see.
pub fn warn_unknown(types: &[RetType], errors: bool) {
    let unknown = types.iter().filter(|t| **t == RetType::Unknown).count();
    if errors && unknown > 0 {
        crate::error::warning(format_args!(
            "{} without a BTF prototype (functions the compiler changed, modules without BTF): \
             --errors never shows their calls",
            output::functions(unknown)
        ));
    }
}

#[cfg(test)]
mod tests {
    use multiprobe::btf::{FuncLinkage, Type, TypeKind, int_encoding};

    use super::*;

    /// A BTF with one function `name` returning an int of `size` bytes.
    fn btf_with(name: &str, size: u32) -> Btf {
        let mut b = Btf::new();
        let int_name = b.add_string("int");
        let int = b.add_type(Type {
            name_off: int_name,
            kind_flag: false,
            kind: TypeKind::Int { size, encoding: int_encoding::SIGNED, bit_offset: 0, bits: size as u8 * 8 },
        });
        let proto =
            b.add_type(Type { name_off: 0, kind_flag: false, kind: TypeKind::FuncProto { ret: int, params: vec![] } });
        let name_off = b.add_string(name);
        b.add_type(Type { name_off, kind_flag: false, kind: TypeKind::Func { proto, linkage: FuncLinkage::Global } });
        b
    }

    #[test]
    fn module_functions_are_typed_by_their_module() {
        let f = |module: Option<&str>| Function { name: "f".into(), module: module.map(Into::into), address: 0 };
        let functions = [f(None), f(Some("m")), f(Some("unreadable"))];
        let mut p =
            Prototypes { types: vec![RetType::Unknown; 3], params: Some(vec![Vec::new(); 3]), user_tags: false };
        p.fill(&btf_with("f", 4), &functions, &[0]);
        p.fill(&btf_with("f", 8), &functions, &[1]);
        assert_eq!(p.types, [RetType::Signed(4), RetType::Signed(8), RetType::Unknown]);
        assert_eq!(p.params.unwrap().len(), 3);
    }
}
