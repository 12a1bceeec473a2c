//! The kprobe_multi test object and how tests read what it recorded.

use std::collections::BTreeMap;

use multiprobe::kprobe_multi::{KprobeMulti, KprobeMultiLink};
use multiprobe::{LoadedObject, Map, Object};

use super::{KPROBE_MULTI_OBJ, Kallsyms, Workload, gettid};

pub const READ: &str = "vfs_read";
pub const WRITE: &str = "vfs_write";

/// The test object, watching the calling thread.
pub fn load() -> LoadedObject {
    load_with(|_| {})
}

pub fn load_with(adjust: impl FnOnce(&mut Object)) -> LoadedObject {
    let mut obj = Object::parse("test_kprobe_multi", KPROBE_MULTI_OBJ).unwrap();
    obj.set_global("target_tid", &gettid()).unwrap();
    adjust(&mut obj);
    obj.load().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs per function address, read without touching any file: a file read is a vfs_read.
pub fn snapshot(map: &Map) -> BTreeMap<u64, u64> {
    map.keys::<u64>().map(|ip| ip.unwrap()).map(|ip| (ip, map.get::<u64, u64>(&ip).unwrap().unwrap_or(0))).collect()
}

/// Asserts that `got` counts exactly `want` (function name, runs), naming functions on failure.
#[track_caller]
pub fn check(ksyms: &Kallsyms, got: BTreeMap<u64, u64>, want: &[(&str, u64)]) {
    let want: BTreeMap<u64, u64> = want.iter().map(|(n, c)| (ksyms.addr(n), *c)).collect();
    let named = |m: &BTreeMap<u64, u64>| m.iter().map(|(a, c)| (ksyms.names(*a), *c)).collect::<BTreeMap<_, _>>();
    assert_eq!(named(&got), named(&want));
}

/// Test setup: symbols read, workload file open and object loaded before anything attaches,
/// so the only calls the program sees are the workload's. (The library reads files too,
/// kernel BTF for link info say: tests that call into it while attached watch vfs_write.)
pub struct Setup {
    pub ksyms: &'static Kallsyms,
    pub w: Workload,
    pub loaded: LoadedObject,
}

pub fn setup() -> Setup {
    setup_with(|_| {})
}

pub fn setup_with(adjust: impl FnOnce(&mut Object)) -> Setup {
    Setup { ksyms: Kallsyms::read(), w: Workload::new(), loaded: load_with(adjust) }
}

impl Setup {
    /// 3 reads and 5 writes.
    pub fn run(&self) {
        self.w.reads(3);
        self.w.writes(5);
    }

    #[track_caller]
    pub fn check(&self, map: &str, want: &[(&str, u64)]) {
        check(self.ksyms, snapshot(self.loaded.map(map).unwrap()), want);
    }
}

pub fn attach(loaded: &LoadedObject, program: &str, spec: &KprobeMulti) -> KprobeMultiLink {
    loaded.program(program).unwrap().attach_kprobe_multi(spec).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs per (function address, cookie), read without touching any file.
pub fn pairs(loaded: &LoadedObject) -> BTreeMap<(u64, u64), u64> {
    let map = loaded.map("pairs").unwrap();
    map.keys::<[u64; 2]>()
        .map(|k| k.unwrap())
        .map(|k| ((k[0], k[1]), map.get::<[u64; 2], u64>(&k).unwrap().unwrap()))
        .collect()
}

#[track_caller]
pub fn check_pairs(ksyms: &Kallsyms, got: BTreeMap<(u64, u64), u64>, want: &[(&str, u64, u64)]) {
    let want: BTreeMap<(u64, u64), u64> = want.iter().map(|(n, cookie, c)| ((ksyms.addr(n), *cookie), *c)).collect();
    let named = |m: &BTreeMap<(u64, u64), u64>| {
        m.iter().map(|((a, k), c)| ((ksyms.names(*a), *k), *c)).collect::<BTreeMap<_, _>>()
    };
    assert_eq!(named(&got), named(&want));
}
