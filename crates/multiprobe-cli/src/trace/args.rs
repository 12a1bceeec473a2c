//! `--args`: a function's first six arguments by its BTF prototype, named and typed, read
//! from the argument registers the program kept at entry (x86-64: rdi, rsi, rdx, rcx, r8,
//! r9).

use multiprobe::btf::{Btf, TypeKind, kind};
use multiprobe::symbols::Function;
use serde_json::{Map, Value};

use super::ret::{self, RetType};

/// Arguments passed in registers.
pub const REGISTERS: usize = 6;

/// One parameter: its name and how its register reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub ty: RetType,
}

/// The parameters of each function (empty without a prototype: module functions, functions
/// the compiler changed).
pub fn of_functions(btf: Option<&Btf>, functions: &[Function]) -> Vec<Vec<Param>> {
    functions
        .iter()
        .map(|f| match btf {
            Some(btf) if f.module.is_none() => of_function(btf, &f.name),
            _ => Vec::new(),
        })
        .collect()
}

/// The parameters of function `name` that sit in the first six registers, in order. A
/// parameter passed by value and larger than a register (a struct) ends the list: where the
/// ones after it go depends on the ABI's rules for it.
pub fn of_function(btf: &Btf, name: &str) -> Vec<Param> {
    let Some(func) = btf.find_by_name_kind(name, kind::FUNC) else { return Vec::new() };
    let Ok(TypeKind::Func { proto, .. }) = btf.type_by_id(func).map(|t| &t.kind) else { return Vec::new() };
    let Ok(TypeKind::FuncProto { params, .. }) = btf.type_by_id(*proto).map(|t| &t.kind) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, p) in params.iter().take(REGISTERS).enumerate() {
        // Type 0 as a parameter: `...` of a variadic function.
        if p.type_id == 0 {
            break;
        }
        let ty = ret::of_type(btf, p.type_id);
        if ty == RetType::Unknown && btf.resolve_size(p.type_id).is_ok_and(|s| s > 8) {
            break;
        }
        let name = btf.string_at(p.name_off).ok().filter(|n| !n.is_empty()).map_or(format!("arg{i}"), str::to_string);
        out.push(Param { name, ty });
    }
    out
}

/// One argument's value: numbers as numbers (no errno names: `-100` is `AT_FDCWD` here),
/// pointers in hex, enum values by name.
fn decode(ty: &RetType, raw: u64) -> (String, Value) {
    match ty {
        RetType::Signed(_) | RetType::Unsigned(_) | RetType::Bool | RetType::Enum { .. } => {
            let r = ret::decode(ty, raw);
            // A signed value in the errno range is still just a number here.
            let text = if r.errno.is_some() { r.json.to_string() } else { r.text };
            (text, r.json)
        }
        RetType::Pointer if raw == 0 => ("NULL".into(), Value::Null),
        _ => (format!("{raw:#x}"), Value::String(format!("{raw:#x}"))),
    }
}

/// `name=value` pairs for the text line, and the JSON `args` object.
pub fn render(params: &[Param], regs: &[u64; REGISTERS]) -> (String, Value) {
    let mut text = Vec::new();
    let mut json = Map::new();
    for (p, &raw) in params.iter().zip(regs) {
        let (t, v) = decode(&p.ty, raw);
        text.push(format!("{}={t}", p.name));
        json.insert(p.name.clone(), v);
    }
    (text.join(" "), Value::Object(json))
}

#[cfg(test)]
mod tests {
    use multiprobe::btf::{FuncLinkage, Param as BtfParam, Type, int_encoding};

    use super::*;

    fn ty(btf: &mut Btf, name: &str, kind: TypeKind) -> u32 {
        let name_off = btf.add_string(name);
        btf.add_type(Type { name_off, kind_flag: false, kind })
    }

    fn func(btf: &mut Btf, name: &str, params: &[(&str, u32)]) {
        let params =
            params.iter().map(|&(n, type_id)| BtfParam { name_off: btf.add_string(n), type_id }).collect::<Vec<_>>();
        let proto = ty(btf, "", TypeKind::FuncProto { ret: 0, params });
        ty(btf, name, TypeKind::Func { proto, linkage: FuncLinkage::Global });
    }

    fn btf() -> Btf {
        let mut b = Btf::new();
        let int = ty(&mut b, "int", TypeKind::Int { size: 4, encoding: int_encoding::SIGNED, bit_offset: 0, bits: 32 });
        let ch = ty(&mut b, "char", TypeKind::Int { size: 1, encoding: int_encoding::CHAR, bit_offset: 0, bits: 8 });
        let ptr = ty(&mut b, "", TypeKind::Ptr { target: ch });
        let big = ty(&mut b, "pair", TypeKind::Struct { size: 16, members: vec![] });
        func(&mut b, "do_sys_openat2", &[("dfd", int), ("filename", ptr), ("how", ptr)]);
        func(&mut b, "by_value", &[("a", int), ("p", big), ("b", int)]);
        func(&mut b, "variadic", &[("fmt", ptr), ("", 0)]);
        func(&mut b, "unnamed", &[("", int)]);
        let many: Vec<(&str, u32)> = ["a", "b", "c", "d", "e", "f", "g"].iter().map(|n| (*n, int)).collect();
        func(&mut b, "seven", &many);
        b
    }

    #[test]
    fn parameters_from_prototypes() {
        let b = btf();
        let names = |f: &str| of_function(&b, f).into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names("do_sys_openat2"), ["dfd", "filename", "how"]);
        assert_eq!(of_function(&b, "do_sys_openat2")[0].ty, RetType::Signed(4));
        assert_eq!(names("by_value"), ["a"], "a struct by value ends the registers we can name");
        assert_eq!(names("variadic"), ["fmt"]);
        assert_eq!(names("unnamed"), ["arg0"]);
        assert_eq!(names("seven").len(), 6, "only six go in registers");
        assert!(of_function(&b, "no_such").is_empty());
        let module = Function { name: "do_sys_openat2".into(), module: Some("m".into()), address: 0 };
        assert_eq!(of_functions(Some(&b), &[module]), [Vec::<Param>::new()]);
    }

    #[test]
    fn values_by_type() {
        let b = btf();
        let params = of_function(&b, "do_sys_openat2");
        let regs = [(-100i64) as u64 & 0xffff_ffff, 0x7ffd_1234, 0, 0, 0, 0];
        let (text, json) = render(&params, &regs);
        assert_eq!(text, "dfd=-100 filename=0x7ffd1234 how=NULL");
        assert_eq!(json, serde_json::json!({"dfd": -100, "filename": "0x7ffd1234", "how": null}));
    }
}
