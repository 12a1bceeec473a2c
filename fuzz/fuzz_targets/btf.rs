//! Raw BTF (a `.BTF` section): parsing, lookups, stable re-encoding, extern rewriting.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    multiprobe_fuzz::bounded(data.len(), || multiprobe::fuzzing::btf(data));
});
