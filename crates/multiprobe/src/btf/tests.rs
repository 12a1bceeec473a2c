use super::*;

/// `struct pair { int a; long *b; }; typedef struct pair pair_t; const pair_t arr[3];`
fn sample() -> (Btf, u32, u32) {
    let mut b = Btf::new();
    let int = b.add_string("int");
    let long = b.add_string("long");
    let int_id = b.add_type(Type {
        name_off: int,
        kind_flag: false,
        kind: TypeKind::Int { size: 4, encoding: int_encoding::SIGNED, bit_offset: 0, bits: 32 },
    });
    let long_id = b.add_type(Type {
        name_off: long,
        kind_flag: false,
        kind: TypeKind::Int { size: 8, encoding: int_encoding::SIGNED, bit_offset: 0, bits: 64 },
    });
    let ptr_id = b.add_type(Type { name_off: 0, kind_flag: false, kind: TypeKind::Ptr { target: long_id } });
    let (a, bn, pair) = (b.add_string("a"), b.add_string("b"), b.add_string("pair"));
    let pair_id = b.add_type(Type {
        name_off: pair,
        kind_flag: false,
        kind: TypeKind::Struct {
            size: 16,
            members: vec![
                Member { name_off: a, type_id: int_id, offset: 0 },
                Member { name_off: bn, type_id: ptr_id, offset: 64 },
            ],
        },
    });
    let td = b.add_string("pair_t");
    let td_id = b.add_type(Type { name_off: td, kind_flag: false, kind: TypeKind::Typedef { target: pair_id } });
    let c_id = b.add_type(Type { name_off: 0, kind_flag: false, kind: TypeKind::Const { target: td_id } });
    let arr_id = b.add_type(Type {
        name_off: 0,
        kind_flag: false,
        kind: TypeKind::Array { elem: c_id, index: int_id, nelems: 3 },
    });
    let e = b.add_string("color");
    let red = b.add_string("RED");
    b.add_type(Type {
        name_off: e,
        kind_flag: true,
        kind: TypeKind::Enum {
            size: 4,
            signed: true,
            is64: false,
            values: vec![EnumValue { name_off: red, value: -2i64 as u64 }],
        },
    });
    (b, pair_id, arr_id)
}

#[test]
fn encode_then_parse_round_trips() {
    let (b, _, _) = sample();
    let bytes = b.to_bytes();
    let again = Btf::parse(&bytes).unwrap();
    assert_eq!(again.types, b.types);
    assert_eq!(again.to_bytes(), bytes);
}

#[test]
fn sizes_names_and_modifiers() {
    let (b, pair_id, arr_id) = sample();
    assert_eq!(b.resolve_size(arr_id).unwrap(), 48);
    assert_eq!(b.find_by_name_kind("pair", kind::STRUCT), Some(pair_id));
    assert_eq!(b.find_by_name_kind("pair", kind::UNION), None);
    let td = b.find_by_name_kind("pair_t", kind::TYPEDEF).unwrap();
    assert_eq!(b.skip_modifiers(td).unwrap(), pair_id);
    let e = b.find_by_name_kind("color", kind::ENUM).unwrap();
    let TypeKind::Enum { values, .. } = &b.type_by_id(e).unwrap().kind else { panic!() };
    assert_eq!(values[0].value as i64, -2);
}

#[test]
fn add_string_reuses_whole_strings_only() {
    let mut b = Btf::new();
    let ab = b.add_string("ab");
    assert_eq!(b.add_string("ab"), ab);
    // "b" occurs inside "ab" but is not a string of its own.
    let only_b = b.add_string("b");
    assert_ne!(only_b, ab + 1);
    assert_eq!(b.string_at(only_b).unwrap(), "b");
}

#[test]
fn malformed_btf_is_an_error_not_a_panic() {
    let (b, _, _) = sample();
    let bytes = b.to_bytes();
    for len in 0..bytes.len() {
        let _ = Btf::parse(&bytes[..len]);
    }
    assert!(matches!(Btf::parse(&[0x9f, 0xeb, 1, 0]), Err(BtfError::Truncated { .. })));
    assert!(matches!(Btf::parse(&[0xeb, 0x9f, 1, 0, 24, 0, 0, 0]), Err(BtfError::BadMagic { .. })));
    let mut bad_kind = bytes.clone();
    bad_kind[24 + 7] = 0x1f; // first type's kind byte -> kind 31
    assert!(matches!(Btf::parse(&bad_kind), Err(BtfError::UnknownKind { .. })));
}

#[test]
fn resolve_size_rejects_unsized_types() {
    let mut b = Btf::new();
    let f = b.add_type(Type { name_off: 0, kind_flag: false, kind: TypeKind::Fwd { is_union: false } });
    assert!(matches!(b.resolve_size(f), Err(BtfError::Unsized { .. })));
    assert!(matches!(b.resolve_size(99), Err(BtfError::BadTypeId(99))));
}

#[test]
fn names_look_up_every_type_of_that_name_in_id_order() {
    let (mut b, pair_id, _) = sample();
    // A second `pair` (a union), and names that share a prefix with it.
    let pair = b.add_string("pair");
    let union_id =
        b.add_type(Type { name_off: pair, kind_flag: false, kind: TypeKind::Union { size: 8, members: vec![] } });
    assert_eq!(b.ids_by_name("pair"), [pair_id, union_id]);
    assert_eq!(b.ids_by_name("pair_t").len(), 1);
    assert!(b.ids_by_name("pai").is_empty());
    assert!(b.ids_by_name("pairs").is_empty());
    assert!(b.ids_by_name("").is_empty(), "anonymous types have no name to find");
    assert_eq!(b.find_by_name_kind("pair", kind::UNION), Some(union_id));
    // Types added after a lookup are found: adding one drops the index.
    let late = b.add_string("late");
    let late_id = b.add_type(Type { name_off: late, kind_flag: false, kind: TypeKind::Fwd { is_union: false } });
    assert_eq!(b.ids_by_name("late"), [late_id]);
}

#[test]
fn raw_reading_agrees_with_parsing() {
    let (b, pair_id, _) = sample();
    let bytes = b.to_bytes();
    let raw = raw::RawBtf::new(bytes).unwrap();
    assert_eq!(raw.find("pair", kind::STRUCT), Some(pair_id));
    assert_eq!(raw.find("pair", kind::UNION), None);
    assert_eq!(raw.find("pai", kind::STRUCT), None, "a prefix is not the name");
    let td = raw.find("pair_t", kind::TYPEDEF).unwrap();
    assert_eq!(raw.skip_modifiers(td), Some(pair_id));
    let members: Vec<_> = raw.members(pair_id).map(|m| (m.name, m.type_id)).collect();
    let parsed: Vec<_> = b
        .type_by_id(pair_id)
        .unwrap()
        .kind
        .members()
        .iter()
        .map(|m| (b.string_at(m.name_off).unwrap(), m.type_id))
        .collect();
    assert_eq!(members, parsed);
    assert_eq!(raw.members(td).count(), 0, "only structs and unions have members");
    let color = raw.find("color", kind::ENUM).unwrap();
    assert_eq!(raw.enumerators(color).collect::<Vec<_>>(), ["RED"]);
    assert_eq!(raw.enumerators(pair_id).count(), 0, "only enums have enumerators");
    assert_eq!(raw.kind(0), None);
    assert_eq!(raw.kind(b.len()), None, "ids past the end have no kind");
}

#[test]
fn raw_reading_rejects_what_parsing_rejects() {
    let (b, _, _) = sample();
    let bytes = b.to_bytes();
    for cut in [4, 20, bytes.len() - 1] {
        assert!(raw::RawBtf::new(bytes[..cut].to_vec()).is_err(), "cut at {cut}");
    }
    // A type whose kind number no BTF has.
    let mut bad = bytes.clone();
    let type_off = 24 + u32::from_le_bytes(bad[8..12].try_into().unwrap()) as usize;
    bad[type_off + 7] = 0x1f;
    assert!(matches!(raw::RawBtf::new(bad.clone()), Err(BtfError::UnknownKind { .. })));
    assert!(matches!(Btf::parse(&bad), Err(BtfError::UnknownKind { .. })));
}

/// Every struct and union of the running kernel's BTF reads the same raw as parsed.
#[test]
fn raw_reading_of_the_kernel_btf_agrees_with_parsing() {
    testkit::require_config!("CONFIG_DEBUG_INFO_BTF", "kernel BTF");
    let data = std::fs::read(kernel::VMLINUX_BTF).unwrap();
    let (b, raw) = (Btf::parse(&data).unwrap(), raw::RawBtf::new(data).unwrap());
    for (id, t) in b.types() {
        assert_eq!(raw.kind(id), Some(t.kind.number()), "kind of {id}");
        let members: Vec<_> = raw.members(id).map(|m| (m.name, m.type_id)).collect();
        let parsed: Vec<_> = t.kind.members().iter().map(|m| (b.string_at(m.name_off).unwrap(), m.type_id)).collect();
        assert_eq!(members, parsed, "members of {id}");
        let values: Vec<_> = match &t.kind {
            TypeKind::Enum { values, .. } => values.iter().map(|v| b.string_at(v.name_off).unwrap()).collect(),
            _ => Vec::new(),
        };
        assert_eq!(raw.enumerators(id).collect::<Vec<_>>(), values, "enumerators of {id}");
    }
    let info = b.find_by_name_kind("bpf_link_info", kind::STRUCT);
    assert_eq!(raw.find("bpf_link_info", kind::STRUCT), info);
}

#[test]
fn split_btf_reads_on_top_of_its_base() {
    let (base, pair_id, _) = sample();
    // A module's BTF: its strings and ids continue base's, and its types refer to base's.
    let base_strings = base.strings.len() as u32;
    let mut split = Btf::new();
    let local_name = split.add_string("mod_kfunc");
    let proto = split.add_type(Type {
        name_off: 0,
        kind_flag: false,
        kind: TypeKind::FuncProto { ret: pair_id, params: vec![] },
    });
    // The split part's ids start after base's: its proto is base.len() + 0 once read on base.
    assert_eq!(proto, 1);
    split.add_type(Type {
        name_off: base_strings + local_name,
        kind_flag: false,
        kind: TypeKind::Func { proto: base.len(), linkage: FuncLinkage::Global },
    });
    let all = Btf::parse_split(&base, &split.to_bytes()).unwrap();
    assert_eq!(all.len(), base.len() + 2);
    let f = all.find_by_name_kind("mod_kfunc", kind::FUNC).expect("the module's function by name");
    assert_eq!(f, base.len() + 1);
    let TypeKind::Func { proto, .. } = all.type_by_id(f).unwrap().kind else { panic!("a func") };
    let TypeKind::FuncProto { ret, .. } = all.type_by_id(proto).unwrap().kind else { panic!("a proto") };
    assert_eq!(all.name(ret), "pair", "a split type refers to a base type by base's id");
    // Base's own names still resolve.
    assert_eq!(all.find_by_name_kind("pair", kind::STRUCT), base.find_by_name_kind("pair", kind::STRUCT));
    assert!(Btf::parse_split(&base, &[0; 4]).is_err(), "a truncated split BTF is an error");
}
