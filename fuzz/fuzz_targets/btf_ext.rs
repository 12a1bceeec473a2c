//! `.BTF.ext` with its `.BTF`: the input is the `.BTF` section's length (u32
//! little-endian), the `.BTF` section, then the `.BTF.ext` section.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else { return };
    let Some((btf, ext)) = rest.split_at_checked(u32::from_le_bytes(*len) as usize) else { return };
    multiprobe_fuzz::bounded(data.len(), || multiprobe::fuzzing::btf_ext(btf, ext));
});
