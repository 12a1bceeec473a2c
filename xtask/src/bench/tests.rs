//! The report from records: statistics, the tables of a small hand-made run, and every table
//! of a sample with every kind of record the bench prints (testdata/records.jsonl: made up,
//! numbers of the order of a 6.12 run, a failure or two) against the report the untyped
//! renderer this one replaced wrote for the same lines (testdata/records.md, .report.json).

use std::path::PathBuf;

use serde_json::{Value, json};

use super::report::{Report, Stat};
use crate::kernels::Kernel;

fn kernel(version: &str) -> Kernel {
    Kernel { label: "6.12".into(), version: version.into(), vmlinuz: PathBuf::new(), config: None, modules: Vec::new() }
}

#[test]
fn medians_and_minimums() {
    let s = Stat::of(&[5.0, 1.0, 3.0]).unwrap();
    assert_eq!((s.min, s.median, s.n), (1.0, 3.0, 3));
    let s = Stat::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
    assert_eq!(s.median, 2.5);
    assert!(Stat::of(&[]).is_none());
}

#[test]
fn tables_from_records() {
    let kernel = kernel("6.12.1");
    let rec = |group: &str, case: &str, imp: &str, samples: &[u64]| json!({"group": group, "case": case, "impl": imp, "unit": "ns", "matches": 78, "samples": samples});
    let records = vec![
        rec("attach", "vfs_*", "multiprobe", &[40_000_000, 30_000_000, 35_000_000]),
        rec("attach", "vfs_*", "libbpf", &[1_000_000_000]),
        rec("attach", "vfs_*", "floor", &[30_000_000]),
        rec("per_call", "getppid", "none", &[1_000_000]),
        rec("per_call", "getppid", "empty", &[2_000_000]),
        rec("per_call", "getppid", "count-address", &[2_050_000]),
        rec("per_call", "getppid", "count-cookie", &[2_500_000]),
        rec("attach-alt", "vfs_*", "multiprobe-cold-diskcache", &[60_000_000]),
        rec("cli", "count * (per-boot file)", "peak_rss_kib", &[20_480]),
        json!({"group": "info", "case": "per_call getppid", "impl": "count", "function": "__x64_sys_getppid",
               "counted_function": "__x64_sys_getppid", "calls_made": 10, "counted_address": 10, "counted_cookie": 9}),
    ];
    let report = Report::new(&kernel, records);
    let md = report.markdown("cargo xtask bench");
    assert!(md.contains("| `vfs_*` | 78 | - | 60.0 | 35.0 (30.0) | - | 1000 | 30.0 | - | 2.00x | 1.17x |"), "{md}");
    assert!(md.contains("| 1.05x (1.05x) |"), "{md}");
    assert!(md.contains("address yes, cookie **no**: 9 of 10"), "{md}");
    assert!(md.contains("| `count * (per-boot file)` | 78 |"), "{md}");
    assert!(md.contains("| 20.0 MiB |"), "{md}");
    let targets = report.targets();
    assert!(targets.iter().any(|t| t.what.contains("vfs_*") && t.met == Some(true)));
    assert!(targets.iter().any(|t| t.what.contains("per-call")
        && t.measured == "address mode 1.05x (min 1.05x); cookie mode 1.50x (min 1.50x)"
        && t.met == Some(true)));
    assert!(targets.iter().any(|t| t.what.contains("per-boot file") && t.met == Some(false)));
}

/// The sample's records, as the host collects them (one JSON object per line).
fn sample() -> Vec<Value> {
    include_str!("testdata/records.jsonl").lines().map(|l| serde_json::from_str(l).expect("a JSON record")).collect()
}

#[test]
fn sample_renders_as_before() {
    let report = Report::new(&kernel("6.12.57"), sample());
    let md = report.markdown("cargo xtask bench --kernel 6.12");
    let expected = include_str!("testdata/records.md");
    // Line by line first: a difference shows where it is.
    for (i, (got, want)) in md.lines().zip(expected.lines()).enumerate() {
        assert_eq!(got, want, "line {}", i + 1);
    }
    assert_eq!(md, expected);
    let json = serde_json::to_string_pretty(&report.to_json()).unwrap();
    assert_eq!(json, include_str!("testdata/records.report.json"));
}

#[test]
fn sample_is_typed_whole() {
    let records = super::records::Records::parse(sample());
    assert_eq!(records.raw.len(), 184);
    assert_eq!(records.machine.and_then(|m| m.kernel).as_deref(), Some("6.12.57+deb13-amd64"));
    assert_eq!(records.per_call.len(), 3);
    assert_eq!(records.cli["count * (per-boot file)"].lookup.as_deref(), Some("address"));
    assert_eq!(records.cli["latency * (per-boot file)"].lookup, None);
    assert_eq!(records.bytes["vmlinux btf"], 6209873);
    assert_eq!(records.boots, [1432.7, 812.4]);
    assert_eq!(records.failures.len(), 2);
    let info = records.raw.iter().filter(|r| r["group"] == "info" || r["group"] == "error").count();
    assert_eq!(records.series.len(), records.raw.len() - info);
}

#[test]
fn host_record_reads_back() {
    let host = super::records::Host { host_cpus: Some(2), loadavg_before: Some(1.5), loadavg_after: Some(2.0) };
    let records = super::records::Records::parse(vec![host.record()]);
    let back = records.host.unwrap();
    assert_eq!((back.host_cpus, back.loadavg_before, back.loadavg_after), (Some(2), Some(1.5), Some(2.0)));
    assert_eq!(host.record()["case"], "host");
}
