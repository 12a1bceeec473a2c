//! Target resolution on listings captured from the kernels of the test matrix (Debian 6.1:
//! names and kallsyms; 6.12 and 7.2: `available_filter_functions_addrs`), checked against a
//! plain, allocate-everything reading of the same text. No kernel needed.

use std::collections::HashMap;
use std::io::Read;

use multiprobe::symbols::{Function, Glob, ListingSource, Selection, TraceableFunctions};

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

const AFFA_6_12: &[u8] = include_bytes!("fixtures/affa-6.12.gz");
const AFFA_7_2: &[u8] = include_bytes!("fixtures/affa-7.2.gz");
const AFF_6_1: &[u8] = include_bytes!("fixtures/aff-6.1.gz");
const KALLSYMS_6_1: &[u8] = include_bytes!("fixtures/kallsyms-6.1.gz");

/// The obvious reading: split every line, keep every field.
fn naive(text: &str, with_addr: bool) -> Vec<Function> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.contains("__ftrace_invalid_address__"))
        .map(|l| {
            let mut f = l.split_whitespace();
            let address = if with_addr { u64::from_str_radix(f.next().unwrap(), 16).unwrap() } else { 0 };
            let name = f.next().unwrap().to_string();
            let module = f.next().map(|m| m.trim_matches(|c| c == '[' || c == ']').to_string());
            Function { name, module, address }
        })
        .collect()
}

/// Glob matching written the slow, obvious way.
fn naive_glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, _) => s.is_empty(),
        (Some(b'*'), _) => naive_glob(&p[1..], s) || (!s.is_empty() && naive_glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => naive_glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => naive_glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Equal lists, or a panic naming the first difference (not the whole 40,000 entries).
#[track_caller]
fn assert_same(got: &[Function], want: &[Function]) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "{} vs {} functions; first difference at {i}: {:?} vs {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
}

const PATTERNS: &[&str] =
    &["vfs_read", "vfs_*", "tcp_*", "*sys_*", "*", "vfs_rea?", "*_timer*", "ext4_*", "x?z*", "nope"];

fn check_addrs_listing(gz: &[u8], expected_len: usize) {
    let text = gunzip(gz);
    let listing = TraceableFunctions::from_text(text.clone(), ListingSource::FilterFunctionsAddrs);
    let all = naive(std::str::from_utf8(&text).unwrap(), true);
    assert_eq!(listing.len(), expected_len);
    assert_eq!(all.len(), expected_len);
    for p in PATTERNS {
        let want: Vec<Function> = all.iter().filter(|f| naive_glob(p.as_bytes(), f.name.as_bytes())).cloned().collect();
        assert_same(&listing.matching(&Glob::new(p)), &want);
    }
    assert!(listing.contains("vfs_read") && !listing.contains("vfs_rea"));
}

#[test]
fn debian_6_12_listing() {
    check_addrs_listing(AFFA_6_12, 42868);
    let listing = TraceableFunctions::from_text(gunzip(AFFA_6_12), ListingSource::FilterFunctionsAddrs);
    // The sizes the reference timings use, on this capture.
    assert_eq!(listing.matching(&Glob::new("vfs_*")).len(), 78);
    assert_eq!(listing.matching(&Glob::new("*sys_*")).len(), 1290);
}

#[test]
fn debian_7_2_listing() {
    check_addrs_listing(AFFA_7_2, 46795);
}

#[test]
fn debian_6_1_names_joined_with_kallsyms() {
    let names = gunzip(AFF_6_1);
    let kallsyms = gunzip(KALLSYMS_6_1);
    let listing = TraceableFunctions::from_names_and_kallsyms(names.clone(), kallsyms.clone());
    assert_eq!(listing.source(), ListingSource::FilterFunctionsKallsyms);
    // The obvious join: the n-th listed copy of a name takes the n-th kallsyms address.
    let mut addrs: HashMap<(String, Option<String>), Vec<u64>> = HashMap::new();
    for line in std::str::from_utf8(&kallsyms).unwrap().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let module = f.get(3).map(|m| m.trim_matches(|c| c == '[' || c == ']').to_string());
        addrs.entry((f[2].to_string(), module)).or_default().push(u64::from_str_radix(f[0], 16).unwrap());
    }
    let listed = naive(std::str::from_utf8(&names).unwrap(), false);
    let mut seen: HashMap<(String, Option<String>), usize> = HashMap::new();
    let want: Vec<Function> = listed
        .into_iter()
        .map(|f| {
            let key = (f.name.clone(), f.module.clone());
            let n = seen.entry(key.clone()).or_insert(0);
            *n += 1;
            let address = addrs.get(&key).and_then(|a| a.get(*n - 1)).copied().unwrap_or(0);
            Function { address, ..f }
        })
        .collect();
    let got = listing.matching(&Glob::new("*"));
    assert_eq!(got.len(), 37655, "38,252 lines less 597 __ftrace_invalid_address__ entries");
    assert_same(&got, &want);
    // Almost every traceable function has its kallsyms entry.
    let missing = got.iter().filter(|f| f.address == 0).count();
    assert!(missing < got.len() / 100, "{missing} functions without an address");
    // The substring prefilter visits only some lines: every copy of a name must still get
    // its own kallsyms address.
    let tcp: Vec<Function> = want.iter().filter(|f| f.name.starts_with("tcp_")).cloned().collect();
    assert!(tcp.len() > 100);
    assert_same(&listing.matching(&Glob::new("tcp_*")), &tcp);
}

#[test]
fn selections_on_a_real_listing() {
    let listing = TraceableFunctions::from_text(gunzip(AFFA_6_12), ListingSource::FilterFunctionsAddrs);
    let s = Selection::new().include("vfs_*").include("tcp_*").exclude("*_timer*").exclude("vfs_read*");
    let got = s.select(&listing);
    let want: Vec<Function> = listing
        .matching(&Glob::new("*"))
        .into_iter()
        .filter(|f| f.name.starts_with("vfs_") || f.name.starts_with("tcp_"))
        .filter(|f| !f.name.contains("_timer") && !f.name.starts_with("vfs_read"))
        .collect();
    assert_eq!(got, want);
    // The deny list keeps RCU out of "everything".
    let all = Selection::new().include("*").select(&listing);
    assert!(all.iter().all(|f| !f.name.starts_with("rcu_")));
    assert!(all.len() < listing.len());
}
