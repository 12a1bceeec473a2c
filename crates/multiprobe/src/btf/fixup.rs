//! Turning the BTF clang emits into BTF the kernel accepts.
//!
//! clang leaves two things for the loader: the sizes of data sections and the offsets of the
//! variables in them (only the linker knows them, so clang writes zeros), and extern
//! declarations (`__ksym` functions and variables), which the kernel refuses in program BTF.

use std::collections::HashMap;

use super::{Btf, BtfError, FuncLinkage, Param, Type, TypeKind, VarLinkage, int_encoding};

/// Size of an ELF data section and the offsets of its symbols, from the symbol table.
#[derive(Debug, Clone, Default)]
pub struct SectionLayout {
    /// Section size in bytes.
    pub size: u32,
    /// Symbol name -> offset in the section.
    pub symbols: HashMap<String, u32>,
}

/// An extern symbol (`extern ... __ksym`) declared in the program BTF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extern {
    /// Name as written in the program, flavor suffix (`___v2`) included.
    pub name: String,
    /// Function or variable.
    pub kind: ExternKind,
}

/// What kind of kernel symbol an extern expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are described with their variant
pub enum ExternKind {
    /// A kfunc; `func_id` is the local `FUNC`, whose prototype the kernel's must match.
    Func { func_id: u32 },
    /// A kernel variable of local type `type_id` (0 for `const void`: only its address).
    Var { type_id: u32 },
}

/// Section holding extern declarations in BTF.
const KSYMS_SEC: &str = ".ksyms";

/// Fills in data section sizes and variable offsets from `layouts` (keyed by section name),
/// and rewrites extern declarations into forms the kernel accepts. Returns the externs
/// found, for resolution against the kernel.
pub fn prepare_for_kernel(btf: &mut Btf, layouts: &HashMap<String, SectionLayout>) -> Result<Vec<Extern>, BtfError> {
    let mut externs = Vec::new();
    let datasecs: Vec<u32> =
        btf.types().filter(|(_, t)| matches!(t.kind, TypeKind::Datasec { .. })).map(|(id, _)| id).collect();
    for id in datasecs {
        let name = btf.name(id).to_string();
        if name == KSYMS_SEC {
            externs.extend(rewrite_externs(btf, id)?);
            continue;
        }
        let Some(layout) = layouts.get(&name) else {
            // A section clang described but the object does not have (e.g. emptied): leave
            // it as clang wrote it, the kernel only checks what programs reference.
            continue;
        };
        let names: Vec<String> = datasec_vars(btf, id)?.iter().map(|v| btf.name(v.type_id).to_string()).collect();
        let TypeKind::Datasec { size, vars } = &mut btf.type_mut(id)?.kind else { unreachable!() };
        *size = layout.size;
        for (var, var_name) in vars.iter_mut().zip(names) {
            if let Some(&off) = layout.symbols.get(&var_name) {
                var.offset = off;
            }
        }
    }
    Ok(externs)
}

fn datasec_vars(btf: &Btf, id: u32) -> Result<Vec<super::VarSecinfo>, BtfError> {
    match &btf.type_by_id(id)?.kind {
        TypeKind::Datasec { vars, .. } => Ok(vars.clone()),
        other => Err(BtfError::WrongKind { id, found: other.name(), expected: "datasec" }),
    }
}

/// Rewrites the `.ksyms` DATASEC the way the kernel wants it: extern functions become global
/// functions represented in the section by a dummy 4-byte variable, extern variables become
/// allocated `int` variables.
fn rewrite_externs(btf: &mut Btf, datasec_id: u32) -> Result<Vec<Extern>, BtfError> {
    let int_name = btf.add_string("int");
    let int_id = btf.add_type(Type {
        name_off: int_name,
        kind_flag: false,
        kind: TypeKind::Int { size: 4, encoding: int_encoding::SIGNED, bit_offset: 0, bits: 32 },
    });
    let dummy_name = btf.add_string("__multiprobe_ksym_placeholder");
    let dummy_var = btf.add_type(Type {
        name_off: dummy_name,
        kind_flag: false,
        kind: TypeKind::Var { target: int_id, linkage: VarLinkage::GlobalAllocated },
    });
    let mut externs = Vec::new();
    let mut vars = datasec_vars(btf, datasec_id)?;
    for (i, v) in vars.iter_mut().enumerate() {
        let t = btf.type_by_id(v.type_id)?.clone();
        match t.kind {
            TypeKind::Func { proto, .. } => {
                let name = btf.name(v.type_id).to_string();
                externs.push(Extern { name, kind: ExternKind::Func { func_id: v.type_id } });
                // The kernel insists that every parameter of a global function is named.
                if let TypeKind::FuncProto { params, .. } = &mut btf.type_mut(proto)?.kind {
                    for p in params.iter_mut().filter(|p| p.type_id != 0 && p.name_off == 0) {
                        *p = Param { name_off: dummy_name, type_id: p.type_id };
                    }
                }
                btf.type_mut(v.type_id)?.kind = TypeKind::Func { proto, linkage: FuncLinkage::Global };
                v.type_id = dummy_var;
            }
            TypeKind::Var { target, .. } => {
                let type_id = btf.skip_modifiers(target)?;
                externs.push(Extern { name: btf.name(v.type_id).to_string(), kind: ExternKind::Var { type_id } });
                btf.type_mut(v.type_id)?.kind = TypeKind::Var { target: int_id, linkage: VarLinkage::GlobalAllocated };
            }
            _ => {}
        }
        v.offset = 4 * i as u32;
        v.size = 4;
    }
    let count = vars.len() as u32;
    btf.type_mut(datasec_id)?.kind = TypeKind::Datasec { size: 4 * count, vars };
    Ok(externs)
}
