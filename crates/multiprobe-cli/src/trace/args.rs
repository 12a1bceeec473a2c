//! `--args`: a function's first six arguments by its BTF prototype, named and typed, read
//! from the argument registers the program kept at entry (x86-64: rdi, rsi, rdx, rcx, r8,
//! r9). `char *` arguments are C strings: the program reads them at entry, bounded by
//! `--string-size`, from user or kernel memory by the pointer's half of the address space.

use multiprobe::btf::{Btf, TypeKind, int_encoding, kind};
use serde_json::{Map, Value};

use super::event::Strings;
use super::ret::{self, RetType};

/// Arguments passed in registers.
pub const REGISTERS: usize = 6;

/// One parameter: its name and how its register reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub ty: RetType,
    /// A pointer to `char` (any signedness, qualifiers, `__user`): read as a C string.
    pub string: bool,
    /// BTF tags the pointed-to `char` `__user` (only kernels built with clang carry tags).
    pub user: bool,
}

/// Which of the parameters are strings (bits 0-5: the argument registers) and which of
/// those BTF tags `__user` (bits 6-11), as the BPF program reads the cookie.
pub fn string_mask(params: &[Param]) -> u64 {
    params.iter().enumerate().filter(|(_, p)| p.string).fold(0, |m, (i, p)| m | 1 << i | u64::from(p.user) << (i + 6))
}

/// Whether `id` is a pointer to a one-byte character type, through typedefs, qualifiers
/// and type tags; and whether a `user` type tag is on the way (`const char __user *` is
/// `PTR -> TYPE_TAG "user" -> CONST -> INT char` in a clang-built kernel's BTF).
fn is_string(btf: &Btf, id: u32) -> (bool, bool) {
    let Ok(TypeKind::Ptr { target }) = btf.skip_modifiers(id).and_then(|id| btf.type_by_id(id)).map(|t| &t.kind) else {
        return (false, false);
    };
    let Ok(t) = btf.skip_modifiers(*target).and_then(|id| btf.type_by_id(id)) else { return (false, false) };
    let string = match &t.kind {
        TypeKind::Int { size: 1, encoding, .. } => {
            encoding & int_encoding::CHAR != 0 || btf.string_at(t.name_off).is_ok_and(|n| n.contains("char"))
        }
        _ => false,
    };
    (string, string && has_user_tag(btf, *target))
}

/// Whether the chain of modifiers from `id` holds a `user` type tag.
fn has_user_tag(btf: &Btf, mut id: u32) -> bool {
    // Modifier chains are short; the bound only guards against a loop in bad BTF.
    for _ in 0..16 {
        let Ok(t) = btf.type_by_id(id) else { return false };
        if let TypeKind::TypeTag { .. } = t.kind
            && btf.string_at(t.name_off).is_ok_and(|n| n == "user")
        {
            return true;
        }
        match (t.kind.is_modifier(), t.kind.referenced()) {
            (true, Some(next)) => id = next,
            _ => return false,
        }
    }
    false
}

/// Whether this BTF tags anything `__user` at all: then a string without the tag is a
/// kernel one; without any (GCC-built kernels) the BPF program goes by the address.
pub fn has_user_tags(btf: &Btf) -> bool {
    btf.types().any(|(_, t)| {
        matches!(t.kind, TypeKind::TypeTag { .. }) && btf.string_at(t.name_off).is_ok_and(|n| n == "user")
    })
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
        let (string, user) = is_string(btf, p.type_id);
        out.push(Param { name, string, user, ty });
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

/// `name=value` pairs for the text line, and the JSON `args` object. A string argument the
/// program read shows as a quoted, escaped string; one it could not read (NULL, unmapped)
/// as its pointer.
pub fn render(params: &[Param], regs: &[u64; REGISTERS], strings: &Strings) -> (String, Value) {
    let mut text = Vec::new();
    let mut json = Map::new();
    for ((p, &raw), string) in params.iter().zip(regs).zip(strings) {
        let (t, v) = match string {
            Some(s) if p.string => (format!("{s:?}"), Value::String(s.clone())),
            _ => decode(&p.ty, raw),
        };
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
        let struct_ptr = ty(&mut b, "", TypeKind::Ptr { target: big });
        func(&mut b, "do_sys_openat2", &[("dfd", int), ("filename", ptr), ("how", struct_ptr)]);
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
        let strings: Vec<bool> = of_function(&b, "do_sys_openat2").iter().map(|p| p.string).collect();
        assert_eq!(strings, [false, true, false], "char * is a string; the struct pointer is not");
        assert_eq!(string_mask(&of_function(&b, "do_sys_openat2")), 0b10);
        assert_eq!(names("by_value"), ["a"], "a struct by value ends the registers we can name");
        assert_eq!(names("variadic"), ["fmt"]);
        assert_eq!(names("unnamed"), ["arg0"]);
        assert_eq!(names("seven").len(), 6, "only six go in registers");
        assert!(of_function(&b, "no_such").is_empty());
        assert!(!has_user_tags(&b));
    }

    /// `const char __user *` in a clang-built kernel's BTF: PTR -> TYPE_TAG "user" -> CONST
    /// -> char; the tag goes into bits 6-11 of the mask.
    #[test]
    fn user_tags_mark_user_strings() {
        let mut b = btf();
        let ch = b.find_by_name_kind("char", kind::INT).unwrap();
        let konst = ty(&mut b, "", TypeKind::Const { target: ch });
        let tag = ty(&mut b, "user", TypeKind::TypeTag { target: konst });
        let user_ptr = ty(&mut b, "", TypeKind::Ptr { target: tag });
        let kernel_ptr = ty(&mut b, "", TypeKind::Ptr { target: konst });
        func(&mut b, "tagged", &[("u", user_ptr), ("k", kernel_ptr)]);
        let p = of_function(&b, "tagged");
        assert_eq!(p.iter().map(|p| (p.string, p.user)).collect::<Vec<_>>(), [(true, true), (true, false)]);
        assert_eq!(string_mask(&p), 0b11 | 0b01 << 6);
        assert!(has_user_tags(&b));
    }

    #[test]
    fn values_by_type() {
        let b = btf();
        let params = of_function(&b, "do_sys_openat2");
        let regs = [(-100i64) as u64 & 0xffff_ffff, 0x7ffd_1234, 0, 0, 0, 0];
        let (text, json) = render(&params, &regs, &Strings::default());
        assert_eq!(text, "dfd=-100 filename=0x7ffd1234 how=NULL", "strings not read show as pointers");
        assert_eq!(json, serde_json::json!({"dfd": -100, "filename": "0x7ffd1234", "how": null}));
        let mut strings = Strings::default();
        strings[1] = Some("/tmp/a \"b\"\n".into());
        let (text, json) = render(&params, &regs, &strings);
        assert_eq!(text, r#"dfd=-100 filename="/tmp/a \"b\"\n" how=NULL"#);
        assert_eq!(json["filename"], "/tmp/a \"b\"\n");
    }
}
