//! The formats of the differential corpus (docs/corpus.md), in one place for both sides:
//! the runner in `bench/` (which loads each object with multiprobe and libbpf in the VM)
//! reads the settings and writes the records, and `cargo xtask corpus` checks the settings
//! files before a run and renders the records it gets back.

pub mod settings;
pub mod table;
