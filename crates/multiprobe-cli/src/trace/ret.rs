//! Return values typed by the kernel's BTF: how each function's return register reads
//! (signed, unsigned, bool, pointer, enum, nothing), what the BPF program needs of that to
//! filter errors (packed into the attach cookie), and the value shown for one call.

use multiprobe::btf::{Btf, TypeKind, int_encoding, kind};
use serde_json::Value;

use super::errno::{self, MAX_ERRNO};

/// How a function's return value reads. The numbers are `RET_*` in bpf/trace.bpf.c.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetType {
    /// No prototype in BTF (functions the compiler changed, modules without BTF): the raw
    /// register, in hex.
    Unknown,
    Void,
    /// A signed integer of this many bytes; negative errno values are decoded.
    Signed(u8),
    /// An unsigned integer of this many bytes.
    Unsigned(u8),
    Bool,
    /// A pointer: hex, `ERR_PTR` values decoded.
    Pointer,
    /// An enum of this many bytes, with its values' names.
    Enum {
        size: u8,
        signed: bool,
        values: Vec<(u64, String)>,
    },
}

impl RetType {
    /// The `RET_*` number the BPF program reads from the cookie.
    fn code(&self) -> u64 {
        match self {
            RetType::Unknown => 0,
            RetType::Void => 1,
            RetType::Signed(_) => 2,
            RetType::Unsigned(_) => 3,
            RetType::Bool => 4,
            RetType::Pointer => 5,
            RetType::Enum { .. } => 6,
        }
    }

    fn size(&self) -> u8 {
        match self {
            RetType::Signed(s) | RetType::Unsigned(s) | RetType::Enum { size: s, .. } => *s,
            RetType::Bool => 1,
            RetType::Pointer | RetType::Unknown => 8,
            RetType::Void => 0,
        }
    }

    /// The attach cookie of the function at `index`: the index in the low 32 bits, the
    /// return type's code and size above.
    pub fn cookie(&self, index: u32) -> u64 {
        u64::from(index) | self.code() << 32 | u64::from(self.size()) << 40
    }
}

/// The return type of function `name` in `btf`.
pub fn of_function(btf: &Btf, name: &str) -> RetType {
    let Some(func) = btf.find_by_name_kind(name, kind::FUNC) else { return RetType::Unknown };
    let Ok(TypeKind::Func { proto, .. }) = btf.type_by_id(func).map(|t| &t.kind) else { return RetType::Unknown };
    let Ok(TypeKind::FuncProto { ret, .. }) = btf.type_by_id(*proto).map(|t| &t.kind) else {
        return RetType::Unknown;
    };
    of_type(btf, *ret)
}

/// How a value of BTF type `id` reads in a register.
pub fn of_type(btf: &Btf, id: u32) -> RetType {
    if id == 0 {
        return RetType::Void;
    }
    let Ok(id) = btf.skip_modifiers(id) else { return RetType::Unknown };
    let Ok(t) = btf.type_by_id(id) else { return RetType::Unknown };
    match &t.kind {
        TypeKind::Void => RetType::Void,
        TypeKind::Int { encoding, .. } if encoding & int_encoding::BOOL != 0 => RetType::Bool,
        TypeKind::Int { size, encoding, .. } if *size <= 8 => {
            let size = *size as u8;
            if encoding & int_encoding::SIGNED != 0 { RetType::Signed(size) } else { RetType::Unsigned(size) }
        }
        TypeKind::Ptr { .. } => RetType::Pointer,
        TypeKind::Enum { size, signed, values, .. } if *size <= 8 => RetType::Enum {
            size: *size as u8,
            signed: *signed,
            values: values
                .iter()
                .map(|v| (v.value, btf.string_at(v.name_off).unwrap_or_default().to_string()))
                .collect(),
        },
        _ => RetType::Unknown,
    }
}

/// One call's return value, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Ret {
    /// For text: `-2 (ENOENT)`, `0xffff888003a1c000`, `true`; empty for void.
    pub text: String,
    /// For JSON: a number, a hex string (pointers, unknown types), a bool, an enum value's
    /// name, or null (void).
    pub json: Value,
    /// The errno name of an error value or error pointer.
    pub errno: Option<String>,
}

/// Reads `raw` (the whole return register) as `ty`.
pub fn decode(ty: &RetType, raw: u64) -> Ret {
    let plain = |text: String, json: Value| Ret { text, json, errno: None };
    match ty {
        RetType::Void => plain(String::new(), Value::Null),
        RetType::Unknown => plain(format!("{raw:#x}"), Value::String(format!("{raw:#x}"))),
        RetType::Bool => {
            let b = raw & 0xff != 0;
            plain(b.to_string(), Value::Bool(b))
        }
        RetType::Signed(size) => {
            let v = sign_extend(raw, *size);
            match error_name(v) {
                Some(name) => Ret { text: format!("{v} ({name})"), json: v.into(), errno: Some(name) },
                None => plain(v.to_string(), v.into()),
            }
        }
        RetType::Unsigned(size) => {
            let v = truncate(raw, *size);
            plain(v.to_string(), v.into())
        }
        RetType::Pointer => {
            let hex = format!("{raw:#x}");
            match error_name(raw as i64) {
                Some(name) => {
                    Ret { text: format!("{} ({name})", raw as i64), json: Value::String(hex), errno: Some(name) }
                }
                None if raw == 0 => plain("NULL".into(), Value::String(hex)),
                None => plain(hex.clone(), Value::String(hex)),
            }
        }
        RetType::Enum { size, signed, values } => {
            let v = truncate(raw, *size);
            // Enum values are stored widened: a signed enum's negative values sign-extended.
            let key = if *signed { sign_extend(raw, *size) as u64 } else { v };
            let number = if *signed { sign_extend(raw, *size).to_string() } else { v.to_string() };
            match values.iter().find(|(value, _)| *value == key || truncate(*value, *size) == v) {
                Some((_, name)) => plain(name.clone(), Value::String(name.clone())),
                None => plain(number.clone(), serde_json::from_str(&number).unwrap_or(Value::Null)),
            }
        }
    }
}

/// `-ENOENT` as its name when `v` is a negative errno value (-4095 to -1).
fn error_name(v: i64) -> Option<String> {
    if !(v < 0 && v >= -(MAX_ERRNO as i64)) {
        return None;
    }
    let n = v.unsigned_abs();
    Some(errno::name(n).map_or_else(|| format!("errno {n}"), str::to_string))
}

fn sign_extend(raw: u64, size: u8) -> i64 {
    match size {
        1 => raw as i8 as i64,
        2 => raw as i16 as i64,
        4 => raw as i32 as i64,
        _ => raw as i64,
    }
}

fn truncate(raw: u64, size: u8) -> u64 {
    match size {
        1 => raw & 0xff,
        2 => raw & 0xffff,
        4 => raw & 0xffff_ffff,
        _ => raw,
    }
}

#[cfg(test)]
mod tests {
    use multiprobe::btf::{EnumValue, FuncLinkage, Param, Type};

    use super::*;

    fn ty(btf: &mut Btf, name: &str, kind: TypeKind) -> u32 {
        let name_off = btf.add_string(name);
        btf.add_type(Type { name_off, kind_flag: false, kind })
    }

    fn func(btf: &mut Btf, name: &str, ret: u32) {
        let proto = ty(btf, "", TypeKind::FuncProto { ret, params: vec![Param { name_off: 0, type_id: ret }] });
        ty(btf, name, TypeKind::Func { proto, linkage: FuncLinkage::Global });
    }

    /// A BTF with one function per return type, as pahole writes them.
    fn btf() -> Btf {
        let mut b = Btf::new();
        let int = ty(&mut b, "int", TypeKind::Int { size: 4, encoding: int_encoding::SIGNED, bit_offset: 0, bits: 32 });
        let long =
            ty(&mut b, "long", TypeKind::Int { size: 8, encoding: int_encoding::SIGNED, bit_offset: 0, bits: 64 });
        let uint = ty(&mut b, "unsigned int", TypeKind::Int { size: 4, encoding: 0, bit_offset: 0, bits: 32 });
        let boolean =
            ty(&mut b, "_Bool", TypeKind::Int { size: 1, encoding: int_encoding::BOOL, bit_offset: 0, bits: 8 });
        let file = ty(&mut b, "file", TypeKind::Fwd { is_union: false });
        let ptr = ty(&mut b, "", TypeKind::Ptr { target: file });
        let ssize = ty(&mut b, "ssize_t", TypeKind::Typedef { target: long });
        let cint = ty(&mut b, "", TypeKind::Const { target: int });
        let red = b.add_string("RED");
        let green = b.add_string("GREEN");
        let color = ty(
            &mut b,
            "color",
            TypeKind::Enum {
                size: 4,
                signed: false,
                is64: false,
                values: vec![EnumValue { name_off: red, value: 0 }, EnumValue { name_off: green, value: 1 }],
            },
        );
        func(&mut b, "f_int", int);
        func(&mut b, "f_uint", uint);
        func(&mut b, "f_bool", boolean);
        func(&mut b, "f_ptr", ptr);
        func(&mut b, "f_ssize", ssize);
        func(&mut b, "f_const_int", cint);
        func(&mut b, "f_enum", color);
        func(&mut b, "f_void", 0);
        b
    }

    #[test]
    fn types_from_prototypes() {
        let b = btf();
        assert_eq!(of_function(&b, "f_int"), RetType::Signed(4));
        assert_eq!(of_function(&b, "f_uint"), RetType::Unsigned(4));
        assert_eq!(of_function(&b, "f_bool"), RetType::Bool);
        assert_eq!(of_function(&b, "f_ptr"), RetType::Pointer);
        assert_eq!(of_function(&b, "f_ssize"), RetType::Signed(8), "typedefs are followed");
        assert_eq!(of_function(&b, "f_const_int"), RetType::Signed(4), "qualifiers are skipped");
        assert!(matches!(of_function(&b, "f_enum"), RetType::Enum { size: 4, .. }));
        assert_eq!(of_function(&b, "f_void"), RetType::Void);
        assert_eq!(of_function(&b, "no_such_function"), RetType::Unknown);
        assert_eq!(of_function(&b, "int"), RetType::Unknown, "a type, not a function");
    }

    #[test]
    fn cookies_carry_index_kind_and_size() {
        assert_eq!(RetType::Signed(4).cookie(7), 7 | 2 << 32 | 4 << 40);
        assert_eq!(RetType::Pointer.cookie(0), 5 << 32 | 8 << 40);
        assert_eq!(RetType::Void.cookie(u32::MAX), u64::from(u32::MAX) | 1 << 32);
    }

    #[test]
    fn errno_values_are_named() {
        // An int's upper half of the register is whatever was there: only the low 32 bits count.
        let r = decode(&RetType::Signed(4), 0xdead_beef_ffff_fffe);
        assert_eq!((r.text.as_str(), r.errno.as_deref()), ("-2 (ENOENT)", Some("ENOENT")));
        assert_eq!(r.json, Value::from(-2));
        let r = decode(&RetType::Signed(8), (-512i64) as u64);
        assert_eq!(r.text, "-512 (ERESTARTSYS)");
        let r = decode(&RetType::Signed(8), (-4000i64) as u64);
        assert_eq!(r.text, "-4000 (errno 4000)", "unnamed but in the errno range");
        let r = decode(&RetType::Signed(8), (-5000i64) as u64);
        assert_eq!((r.text.as_str(), r.errno), ("-5000", None), "below -4095 is a plain number");
        assert_eq!(decode(&RetType::Signed(4), 3).text, "3");
    }

    #[test]
    fn pointers_and_error_pointers() {
        let r = decode(&RetType::Pointer, 0xffff_8880_03a1_c000);
        assert_eq!((r.text.as_str(), r.errno), ("0xffff888003a1c000", None));
        assert_eq!(r.json, Value::from("0xffff888003a1c000"));
        let r = decode(&RetType::Pointer, (-2i64) as u64);
        assert_eq!((r.text.as_str(), r.errno.as_deref()), ("-2 (ENOENT)", Some("ENOENT")));
        assert_eq!(r.json, Value::from("0xfffffffffffffffe"));
        assert_eq!(decode(&RetType::Pointer, 0).text, "NULL");
    }

    #[test]
    fn other_types() {
        assert_eq!(decode(&RetType::Void, 42), Ret { text: String::new(), json: Value::Null, errno: None });
        assert_eq!(decode(&RetType::Bool, 0x100).json, Value::Bool(false), "only the low byte is the bool");
        assert_eq!(decode(&RetType::Bool, 1).text, "true");
        assert_eq!(decode(&RetType::Unsigned(4), 0xffff_ffff_ffff_ffff).json, Value::from(0xffff_ffffu64));
        assert_eq!(decode(&RetType::Unknown, 0x10).text, "0x10");
        let color = of_function(&btf(), "f_enum");
        assert_eq!(decode(&color, 1).text, "GREEN");
        assert_eq!(decode(&color, 9).json, Value::from(9));
    }
}
