//! The per-boot cache files of the traceable-function listing and entry addresses, as
//! written for the key `multiprobe::fuzzing::LISTING_FILE_KEY`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    multiprobe_fuzz::bounded(data.len(), || multiprobe::fuzzing::listing_file(data));
});
