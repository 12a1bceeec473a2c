//! Each selected function's prototype, from the BTF that describes it: the kernel's own for
//! its functions, the module's (split BTF on top of the kernel's) for module functions.
//! Return types always; parameters with `--args`.

use std::collections::HashMap;
use std::sync::Arc;

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
/// cannot be read leaves its functions untyped, with a warning.
pub fn read(functions: &[Function], with_args: bool) -> Prototypes {
    let vmlinux = multiprobe::btf::kernel::vmlinux()
        .inspect_err(|e| eprintln!("warning: return values and arguments are shown raw: {e}"))
        .ok();
    let mut modules: HashMap<&str, Option<Btf>> = HashMap::new();
    if let Some(base) = &vmlinux {
        for m in functions.iter().filter_map(|f| f.module.as_deref()) {
            modules.entry(m).or_insert_with(|| {
                multiprobe::btf::kernel::module(m, base)
                    .inspect_err(|e| eprintln!("warning: functions of module {m} are shown untyped: {e}"))
                    .ok()
            });
        }
    }
    let protos = of_functions(functions, vmlinux.as_ref(), &modules, with_args);
    let user_tags = with_args && vmlinux.as_deref().is_some_and(args::has_user_tags);
    Prototypes { user_tags, ..protos }
}

/// The prototypes of `functions` from `vmlinux` and the modules' BTF (`None`: unreadable).
fn of_functions(
    functions: &[Function],
    vmlinux: Option<&Arc<Btf>>,
    modules: &HashMap<&str, Option<Btf>>,
    with_args: bool,
) -> Prototypes {
    let btf_of = |f: &Function| match f.module.as_deref() {
        None => vmlinux.map(|b| &**b),
        Some(m) => modules.get(m).and_then(Option::as_ref),
    };
    let types =
        functions.iter().map(|f| btf_of(f).map_or(RetType::Unknown, |b| ret::of_function(b, &f.name))).collect();
    let params = with_args.then(|| {
        functions.iter().map(|f| btf_of(f).map_or_else(Vec::new, |b| args::of_function(b, &f.name))).collect()
    });
    Prototypes { types, params, user_tags: false }
}

/// Says what `--errors` cannot see.
pub fn warn_unknown(types: &[RetType], errors: bool) {
    let unknown = types.iter().filter(|t| **t == RetType::Unknown).count();
    if errors && unknown > 0 {
        eprintln!(
            "warning: {} without a BTF prototype (functions the compiler changed, modules without BTF): \
             --errors never shows their calls",
            output::functions(unknown)
        );
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
        let vmlinux = Arc::new(btf_with("f", 4));
        let f = |module: Option<&str>| Function { name: "f".into(), module: module.map(Into::into), address: 0 };
        let mut modules = HashMap::new();
        modules.insert("m", Some(btf_with("f", 8)));
        modules.insert("unreadable", None);
        let p = of_functions(
            &[f(None), f(Some("m")), f(Some("unreadable")), f(Some("unlisted"))],
            Some(&vmlinux),
            &modules,
            true,
        );
        assert_eq!(p.types, [RetType::Signed(4), RetType::Signed(8), RetType::Unknown, RetType::Unknown]);
        assert_eq!(p.params.unwrap().len(), 4);
        let p = of_functions(&[f(None)], None, &HashMap::new(), false);
        assert_eq!((p.types, p.params), (vec![RetType::Unknown], None));
    }
}
