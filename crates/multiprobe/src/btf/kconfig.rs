//! `.kconfig` externs (`extern int LINUX_KERNEL_VERSION __kconfig;`) in BTF: their types as
//! libbpf classifies them (`find_kcfg_type`), their place in the `.kconfig` map libbpf lays
//! out for them (by alignment, then size, then name), and the `.kconfig` DATASEC rewritten
//! to describe that map, as the kernel wants it.

use super::{Btf, BtfError, TypeKind, VarLinkage, int_encoding};

/// Section holding kconfig extern declarations in BTF.
pub const KCONFIG_SEC: &str = ".kconfig";

/// How a kconfig extern's value is written, from its C type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KconfigType {
    /// `bool`: `y` is 1, `n` is 0.
    Bool,
    /// `enum libbpf_tristate`: `n` 0, `y` 1, `m` 2.
    Tristate,
    /// `char`: the letter itself (`y`, `n`, `m`).
    Char,
    /// An integer of 1, 2, 4 or 8 bytes.
    Int {
        /// Whether it is signed.
        signed: bool,
    },
    /// `char[N]`: a quoted string value.
    CharArray,
}

/// One kconfig extern and its place in the `.kconfig` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KconfigVar {
    /// `CONFIG_...` or `LINUX_...`.
    pub name: String,
    /// Byte offset in the map's value.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// How its value is written.
    pub ty: KconfigType,
}

/// Why the `.kconfig` externs cannot be laid out.
#[derive(Debug, thiserror::Error)]
pub enum KconfigLayoutError {
    /// The BTF is malformed.
    #[error(transparent)]
    Btf(#[from] BtfError),
    /// An extern of a type libbpf refuses too.
    #[error(
        "its type is {type_name}; kconfig externs are bool, char, enum libbpf_tristate, 2/4/8-byte integers or char arrays"
    )]
    Unsupported {
        /// The extern.
        name: String,
        /// Its type, as BTF names it.
        type_name: String,
    },
}

/// The `.kconfig` externs laid out, and the DATASEC describing their map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KconfigLayout {
    /// The externs with their places.
    pub vars: Vec<KconfigVar>,
    /// Bytes of the map's value.
    pub size: u32,
    /// Id of the `.kconfig` DATASEC (the map's BTF value type).
    pub datasec: u32,
}

/// Lays out the `.kconfig` externs (if any) and rewrites their DATASEC to match: variables
/// allocated at their offsets, the section as large as the map.
pub fn layout(btf: &mut Btf) -> Result<Option<KconfigLayout>, KconfigLayoutError> {
    let Some(sec) = btf.find_by_name_kind(KCONFIG_SEC, super::kind::DATASEC) else {
        return Ok(None);
    };
    let TypeKind::Datasec { vars, .. } = btf.type_by_id(sec)?.kind.clone() else { unreachable!() };
    let mut found = Vec::new();
    for v in &vars {
        let name = btf.name(v.type_id).to_string();
        let TypeKind::Var { target, .. } = btf.type_by_id(v.type_id)?.kind else { continue };
        let Some((ty, size, align)) = classify(btf, target)? else {
            return Err(KconfigLayoutError::Unsupported { name, type_name: type_name(btf, target) });
        };
        found.push((KconfigVar { name, offset: 0, size, ty }, align, v.type_id));
    }
    // libbpf's cmp_externs: alignment descending, size ascending, then name.
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.size.cmp(&b.0.size)).then(a.0.name.cmp(&b.0.name)));
    let mut off = 0u32;
    for (var, align, _) in &mut found {
        off = off.next_multiple_of(*align);
        var.offset = off;
        off += var.size;
    }
    let mut new_vars = vars.clone();
    for v in &mut new_vars {
        if let Some((var, _, _)) = found.iter().find(|(_, _, id)| *id == v.type_id) {
            v.offset = var.offset;
            v.size = var.size;
        }
        if let TypeKind::Var { linkage, .. } = &mut btf.type_mut(v.type_id)?.kind {
            *linkage = VarLinkage::GlobalAllocated;
        }
    }
    new_vars.sort_by_key(|v| v.offset);
    btf.type_mut(sec)?.kind = TypeKind::Datasec { size: off, vars: new_vars };
    Ok(Some(KconfigLayout { vars: found.into_iter().map(|(v, _, _)| v).collect(), size: off, datasec: sec }))
}

/// libbpf's `find_kcfg_type`, with the size and alignment of the value.
fn classify(btf: &Btf, id: u32) -> Result<Option<(KconfigType, u32, u32)>, BtfError> {
    let id = btf.skip_modifiers(id)?;
    let t = btf.type_by_id(id)?;
    Ok(match &t.kind {
        TypeKind::Int { size, encoding, .. } => {
            if encoding & int_encoding::BOOL != 0 {
                (*size == 1).then_some((KconfigType::Bool, 1, 1))
            } else if *size == 1 {
                Some((KconfigType::Char, 1, 1))
            } else if matches!(size, 2 | 4 | 8) {
                Some((KconfigType::Int { signed: encoding & int_encoding::SIGNED != 0 }, *size, *size))
            } else {
                None
            }
        }
        TypeKind::Enum { size, is64, .. } if btf.name(id) == "libbpf_tristate" && (*is64 || *size == 4) => {
            Some((KconfigType::Tristate, *size, *size))
        }
        // Only arrays of char: the element is looked at directly, not classified again, so
        // an array that contains itself (a loop in a malformed BTF) ends here.
        TypeKind::Array { elem, nelems, .. } if *nelems > 0 => {
            let elem = btf.skip_modifiers(*elem)?;
            match btf.type_by_id(elem)?.kind {
                TypeKind::Int { size: 1, encoding, .. } if encoding & int_encoding::BOOL == 0 => {
                    Some((KconfigType::CharArray, *nelems, 1))
                }
                _ => None,
            }
        }
        _ => None,
    })
}

fn type_name(btf: &Btf, id: u32) -> String {
    let id = btf.skip_modifiers(id).unwrap_or(id);
    match btf.type_by_id(id) {
        Ok(t) if !btf.name(id).is_empty() => format!("{} {}", t.kind.name(), btf.name(id)),
        Ok(t) => t.kind.name().to_string(),
        Err(_) => format!("type {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{Type, VarSecinfo};

    /// An extern whose array type contains itself (found by the `object` fuzz target: the
    /// classification recursed until the stack overflowed) is refused, not followed.
    #[test]
    fn an_array_of_itself_is_refused() {
        let mut btf = Btf::new();
        let array = btf.add_type(Type { name_off: 0, kind_flag: false, kind: TypeKind::Void });
        btf.type_mut(array).unwrap().kind = TypeKind::Array { elem: array, index: array, nelems: 4 };
        let name = btf.add_string("CONFIG_LOOP");
        let var = btf.add_type(Type {
            name_off: name,
            kind_flag: false,
            kind: TypeKind::Var { target: array, linkage: VarLinkage::GlobalExtern },
        });
        let sec = btf.add_string(KCONFIG_SEC);
        btf.add_type(Type {
            name_off: sec,
            kind_flag: false,
            kind: TypeKind::Datasec { size: 0, vars: vec![VarSecinfo { type_id: var, offset: 0, size: 4 }] },
        });
        assert!(matches!(layout(&mut btf), Err(KconfigLayoutError::Unsupported { .. })));
    }
}
