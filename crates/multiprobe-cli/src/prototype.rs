//! C prototypes of kernel functions from BTF, as `list -v` prints them (bpftrace's `-lv`):
//! `ssize_t vfs_read(struct file *file, char *buf, size_t count, loff_t *pos)`.

use multiprobe::btf::{Btf, TypeKind, kind};

/// Types nest at most this deep before the printer gives up (BTF from the kernel is not
/// cyclic through pointers' declarators, but a malformed one could be).
const MAX_DEPTH: usize = 32;

/// The prototype of function `name` in `btf`, or `None` without a `FUNC` of that name.
pub fn of_function(btf: &Btf, name: &str) -> Option<String> {
    let func = btf.find_by_name_kind(name, kind::FUNC)?;
    let TypeKind::Func { proto, .. } = btf.type_by_id(func).ok()?.kind else { return None };
    declare(btf, proto, name.to_string(), 0)
}

/// `type declarator` in C syntax: the declarator is built inside out, as C reads it.
fn declare(btf: &Btf, id: u32, decl: String, depth: usize) -> Option<String> {
    if depth > MAX_DEPTH {
        return None;
    }
    let next = |id, decl| declare(btf, id, decl, depth + 1);
    // A pointer declarator inside an array or a function needs parentheses: `(*f)(int)`.
    let wrap = |decl: String| if decl.starts_with('*') { format!("({decl})") } else { decl };
    let base = |base: String| Some(if decl.is_empty() { base } else { format!("{base} {decl}") });
    if id == 0 {
        return base("void".into());
    }
    let t = btf.type_by_id(id).ok()?;
    let name = btf.name(id);
    let named = |what: &str| if name.is_empty() { format!("{what} {{...}}") } else { format!("{what} {name}") };
    match &t.kind {
        TypeKind::Void => base("void".into()),
        TypeKind::Int { .. } | TypeKind::Float { .. } | TypeKind::Typedef { .. } => base(name.to_string()),
        TypeKind::Struct { .. } => base(named("struct")),
        TypeKind::Union { .. } => base(named("union")),
        TypeKind::Enum { .. } => base(named("enum")),
        TypeKind::Fwd { is_union } => base(named(if *is_union { "union" } else { "struct" })),
        TypeKind::Ptr { target } => next(*target, format!("*{decl}")),
        TypeKind::Const { target } | TypeKind::Volatile { target } | TypeKind::Restrict { target } => {
            let q = match t.kind {
                TypeKind::Const { .. } => "const",
                TypeKind::Volatile { .. } => "volatile",
                _ => "restrict",
            };
            // A qualified pointer qualifies the declarator (`char *const p`); anything else
            // its type (`const char *p`).
            let target_is_ptr = matches!(btf.type_by_id(*target).map(|t| &t.kind), Ok(TypeKind::Ptr { .. }));
            if target_is_ptr {
                next(*target, format!("{q} {decl}"))
            } else {
                next(*target, decl).map(|s| format!("{q} {s}"))
            }
        }
        TypeKind::Array { elem, nelems, .. } => next(*elem, format!("{}[{nelems}]", wrap(decl))),
        TypeKind::FuncProto { ret, params } => {
            let mut list = Vec::new();
            for (i, p) in params.iter().enumerate() {
                // A last parameter of type 0 marks a variadic function.
                if p.type_id == 0 && i + 1 == params.len() {
                    list.push("...".to_string());
                } else {
                    list.push(next(p.type_id, btf.string_at(p.name_off).unwrap_or_default().to_string())?);
                }
            }
            let list = if list.is_empty() { "void".to_string() } else { list.join(", ") };
            next(*ret, format!("{}({list})", wrap(decl)))
        }
        TypeKind::TypeTag { target, .. } => next(*target, decl),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use multiprobe::btf::{FuncLinkage, Param, Type};

    use super::*;

    fn add(btf: &mut Btf, name: &str, kind: TypeKind) -> u32 {
        let name_off = if name.is_empty() { 0 } else { btf.add_string(name) };
        btf.add_type(Type { name_off, kind_flag: false, kind })
    }

    fn param(btf: &mut Btf, name: &str, type_id: u32) -> Param {
        Param { name_off: btf.add_string(name), type_id }
    }

    #[test]
    fn prototypes_read_as_c() {
        let mut btf = Btf::new();
        let long = add(&mut btf, "long", TypeKind::Int { size: 8, encoding: 1, bit_offset: 0, bits: 64 });
        let ssize_t = add(&mut btf, "ssize_t", TypeKind::Typedef { target: long });
        let char_ = add(&mut btf, "char", TypeKind::Int { size: 1, encoding: 1, bit_offset: 0, bits: 8 });
        let file = add(&mut btf, "file", TypeKind::Struct { size: 0, members: vec![] });
        let file_ptr = add(&mut btf, "", TypeKind::Ptr { target: file });
        let char_ptr = add(&mut btf, "", TypeKind::Ptr { target: char_ });
        let const_char = add(&mut btf, "", TypeKind::Const { target: char_ });
        let const_char_ptr = add(&mut btf, "", TypeKind::Ptr { target: const_char });
        let ptr_const = add(&mut btf, "", TypeKind::Const { target: char_ptr });
        let params = vec![
            param(&mut btf, "file", file_ptr),
            param(&mut btf, "buf", char_ptr),
            param(&mut btf, "name", const_char_ptr),
            param(&mut btf, "p", ptr_const),
        ];
        let proto = add(&mut btf, "", TypeKind::FuncProto { ret: ssize_t, params });
        add(&mut btf, "vfs_read", TypeKind::Func { proto, linkage: FuncLinkage::Global });
        // A function returning a pointer to a function, with an array of them and varargs.
        let cb_proto =
            add(&mut btf, "", TypeKind::FuncProto { ret: 0, params: vec![Param { name_off: 0, type_id: long }] });
        let cb = add(&mut btf, "", TypeKind::Ptr { target: cb_proto });
        let cbs = add(&mut btf, "", TypeKind::Array { elem: cb, index: long, nelems: 4 });
        let p = param(&mut btf, "fmt", const_char_ptr);
        let va = Param { name_off: 0, type_id: 0 };
        let table = param(&mut btf, "table", cbs);
        let proto2 = add(&mut btf, "", TypeKind::FuncProto { ret: cb, params: vec![p, table, va] });
        add(&mut btf, "pick", TypeKind::Func { proto: proto2, linkage: FuncLinkage::Static });
        let none = add(&mut btf, "", TypeKind::FuncProto { ret: 0, params: vec![] });
        add(&mut btf, "idle", TypeKind::Func { proto: none, linkage: FuncLinkage::Global });

        assert_eq!(
            of_function(&btf, "vfs_read").unwrap(),
            "ssize_t vfs_read(struct file *file, char *buf, const char *name, char *const p)"
        );
        assert_eq!(
            of_function(&btf, "pick").unwrap(),
            "void (*pick(const char *fmt, void (*table[4])(long), ...))(long)"
        );
        assert_eq!(of_function(&btf, "idle").unwrap(), "void idle(void)");
        assert_eq!(of_function(&btf, "nope"), None);
    }
}
