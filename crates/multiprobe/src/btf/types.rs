//! BTF types as the kernel defines them (`include/uapi/linux/btf.h`), decoded.

/// BTF kind numbers (`BTF_KIND_*`).
pub mod kind {
    pub const UNKN: u32 = 0;
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

/// `BTF_INT_SIGNED` and friends: the encoding bits of an integer.
pub mod int_encoding {
    pub const SIGNED: u8 = 1;
    pub const CHAR: u8 = 2;
    pub const BOOL: u8 = 4;
}

/// Linkage of a `FUNC` (`BTF_FUNC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum FuncLinkage {
    Static = 0,
    Global = 1,
    Extern = 2,
}

/// Linkage of a `VAR` (`BTF_VAR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum VarLinkage {
    Static = 0,
    GlobalAllocated = 1,
    GlobalExtern = 2,
}

/// A struct or union member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub name_off: u32,
    pub type_id: u32,
    /// Offset in bits; with `kind_flag`, the low 24 bits are the offset and the high 8 the
    /// bitfield size (see [`Member::bit_offset`] and [`Member::bitfield_size`]).
    pub offset: u32,
}

/// An enumerator (`ENUM` values are widened to 64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumValue {
    pub name_off: u32,
    pub value: u64,
}

/// A function parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name_off: u32,
    pub type_id: u32,
}

/// One variable (or extern function) placed in a `DATASEC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarSecinfo {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// The kind-specific part of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeKind {
    /// Type id 0, and nothing else.
    Void,
    Int {
        size: u32,
        encoding: u8,
        bit_offset: u8,
        bits: u8,
    },
    Ptr {
        target: u32,
    },
    Array {
        elem: u32,
        index: u32,
        nelems: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    Union {
        size: u32,
        members: Vec<Member>,
    },
    /// `ENUM` (32-bit values) or `ENUM64`, told apart by `is64`.
    Enum {
        size: u32,
        signed: bool,
        is64: bool,
        values: Vec<EnumValue>,
    },
    Fwd {
        is_union: bool,
    },
    Typedef {
        target: u32,
    },
    Volatile {
        target: u32,
    },
    Const {
        target: u32,
    },
    Restrict {
        target: u32,
    },
    Func {
        proto: u32,
        linkage: FuncLinkage,
    },
    FuncProto {
        ret: u32,
        params: Vec<Param>,
    },
    Var {
        target: u32,
        linkage: VarLinkage,
    },
    Datasec {
        size: u32,
        vars: Vec<VarSecinfo>,
    },
    Float {
        size: u32,
    },
    DeclTag {
        target: u32,
        component_idx: i32,
    },
    TypeTag {
        target: u32,
    },
}

/// One BTF type: its name and its kind-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type {
    /// Offset of the name in the string section (0: anonymous).
    pub name_off: u32,
    /// `kind_flag` of the header: bitfield members for structs, union for `FWD`.
    pub kind_flag: bool,
    pub kind: TypeKind,
}

impl Member {
    /// Bit offset of the member within its struct.
    pub fn bit_offset(&self, kind_flag: bool) -> u32 {
        if kind_flag { self.offset & 0x00ff_ffff } else { self.offset }
    }

    /// Size in bits of a bitfield member, 0 for a regular one.
    pub fn bitfield_size(&self, kind_flag: bool) -> u32 {
        if kind_flag { self.offset >> 24 } else { 0 }
    }
}

impl TypeKind {
    /// The `BTF_KIND_*` number.
    pub fn number(&self) -> u32 {
        match self {
            TypeKind::Void => kind::UNKN,
            TypeKind::Int { .. } => kind::INT,
            TypeKind::Ptr { .. } => kind::PTR,
            TypeKind::Array { .. } => kind::ARRAY,
            TypeKind::Struct { .. } => kind::STRUCT,
            TypeKind::Union { .. } => kind::UNION,
            TypeKind::Enum { is64: false, .. } => kind::ENUM,
            TypeKind::Enum { is64: true, .. } => kind::ENUM64,
            TypeKind::Fwd { .. } => kind::FWD,
            TypeKind::Typedef { .. } => kind::TYPEDEF,
            TypeKind::Volatile { .. } => kind::VOLATILE,
            TypeKind::Const { .. } => kind::CONST,
            TypeKind::Restrict { .. } => kind::RESTRICT,
            TypeKind::Func { .. } => kind::FUNC,
            TypeKind::FuncProto { .. } => kind::FUNC_PROTO,
            TypeKind::Var { .. } => kind::VAR,
            TypeKind::Datasec { .. } => kind::DATASEC,
            TypeKind::Float { .. } => kind::FLOAT,
            TypeKind::DeclTag { .. } => kind::DECL_TAG,
            TypeKind::TypeTag { .. } => kind::TYPE_TAG,
        }
    }

    /// A short name of the kind, for messages ("struct", "func_proto", ...).
    pub fn name(&self) -> &'static str {
        match self {
            TypeKind::Void => "void",
            TypeKind::Int { .. } => "int",
            TypeKind::Ptr { .. } => "ptr",
            TypeKind::Array { .. } => "array",
            TypeKind::Struct { .. } => "struct",
            TypeKind::Union { .. } => "union",
            TypeKind::Enum { is64: false, .. } => "enum",
            TypeKind::Enum { is64: true, .. } => "enum64",
            TypeKind::Fwd { .. } => "fwd",
            TypeKind::Typedef { .. } => "typedef",
            TypeKind::Volatile { .. } => "volatile",
            TypeKind::Const { .. } => "const",
            TypeKind::Restrict { .. } => "restrict",
            TypeKind::Func { .. } => "func",
            TypeKind::FuncProto { .. } => "func_proto",
            TypeKind::Var { .. } => "var",
            TypeKind::Datasec { .. } => "datasec",
            TypeKind::Float { .. } => "float",
            TypeKind::DeclTag { .. } => "decl_tag",
            TypeKind::TypeTag { .. } => "type_tag",
        }
    }

    /// The type this one refers to, for the kinds that wrap exactly one other type
    /// (pointers, typedefs, qualifiers, type tags, variables, functions).
    pub fn referenced(&self) -> Option<u32> {
        match *self {
            TypeKind::Ptr { target }
            | TypeKind::Typedef { target }
            | TypeKind::Volatile { target }
            | TypeKind::Const { target }
            | TypeKind::Restrict { target }
            | TypeKind::TypeTag { target }
            | TypeKind::Var { target, .. }
            | TypeKind::DeclTag { target, .. } => Some(target),
            TypeKind::Func { proto, .. } => Some(proto),
            _ => None,
        }
    }

    /// Whether this is a modifier that does not change layout: typedef, const, volatile,
    /// restrict or a type tag.
    pub fn is_modifier(&self) -> bool {
        matches!(
            self,
            TypeKind::Typedef { .. }
                | TypeKind::Volatile { .. }
                | TypeKind::Const { .. }
                | TypeKind::Restrict { .. }
                | TypeKind::TypeTag { .. }
        )
    }

    /// Whether this is a struct or a union.
    pub fn is_composite(&self) -> bool {
        matches!(self, TypeKind::Struct { .. } | TypeKind::Union { .. })
    }

    /// Members of a struct or union (empty for other kinds).
    pub fn members(&self) -> &[Member] {
        match self {
            TypeKind::Struct { members, .. } | TypeKind::Union { members, .. } => members,
            _ => &[],
        }
    }
}
