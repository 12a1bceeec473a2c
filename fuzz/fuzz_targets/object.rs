//! BPF ELF objects: parsing, globals, linking every program, BTF re-encoding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    multiprobe_fuzz::bounded(data.len(), || multiprobe::fuzzing::object(data));
});
