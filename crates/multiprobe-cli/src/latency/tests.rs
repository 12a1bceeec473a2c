//! Rows and their order.

use super::*;

pub(crate) fn row(name: &str, buckets: &[(usize, u64)], sum_ns: u64, max_ns: u64) -> Row {
    let mut hist = Histogram::default();
    for &(b, n) in buckets {
        hist.buckets[b] = n;
    }
    Row {
        function: Function { name: name.into(), module: None, address: 0xffffffff81000000 },
        hist,
        sum_ns,
        max_ns: Some(max_ns),
    }
}

pub(crate) fn rows() -> Vec<Row> {
    vec![
        row("fast", &[(10, 90), (11, 10)], 100 * 700, 1500),
        row("slow", &[(20, 5)], 5 * 600_000, 900_000),
        row("idle", &[], 0, 0),
    ]
}

#[test]
fn sorting_by_each_key() {
    let names = |by| {
        let mut r = rows();
        sort(&mut r, by);
        r.iter().map(|r| r.function.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(SortBy::Count), ["fast", "slow", "idle"]);
    assert_eq!(names(SortBy::P99), ["slow", "fast", "idle"]);
    assert_eq!(names(SortBy::Max), ["slow", "fast", "idle"]);
    assert_eq!(names(SortBy::Avg), ["slow", "fast", "idle"]);
    assert_eq!(names(SortBy::Name), ["fast", "idle", "slow"]);
}
