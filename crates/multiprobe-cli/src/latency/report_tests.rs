//! The latency report's text and JSON: per function, per interval, with a total and units.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::latency::tests::{row, rows};

fn summary(rows: &[Row]) -> Summary<'_> {
    Summary {
        report: Report { rows, total: None, unit: None, timestamp: None, by: None },
        mode: "kprobe session",
        end: End::Duration,
        attach: Duration::from_millis(40),
        ran: Duration::from_secs(3),
        detach: Some(Duration::from_millis(60)),
    }
}

#[test]
fn text_report_has_a_header_and_histogram_per_called_function() {
    let r = rows();
    let text = summary(&r).text(None);
    assert!(
        text.starts_with(
            "fast [vmlinux]  calls 100  avg 700ns  p50 <1.0us  p90 <1.0us  p99 <2.0us  max 1.5us\n[512, 1K) 90 |"
        ),
        "{text}"
    );
    assert!(text.contains("\nslow [vmlinux]  calls 5  avg 600.0us  p50 <1.0ms"), "{text}");
    assert!(!text.contains("idle ["), "functions without calls get no histogram: {text}");
    assert!(text.contains("3 functions: 2 with completed calls."), "{text}");
    assert!(text.contains("Buckets in ns; percentiles are upper bounds of log2 buckets"));
    assert!(summary(&r).text(Some(1)).contains("(1 more functions with calls not shown)"));
    assert!(text.ends_with("Attached in 40ms (kprobe session), ran 3.0s, detached in 60ms.\n"), "{text}");
}

#[test]
fn before_a_slow_detach_the_summary_ends_in_detaching() {
    let r = rows();
    let text = Summary { detach: None, ..summary(&r) }.text(None);
    assert!(text.ends_with("Attached in 40ms (kprobe session), ran 3.0s; detaching...\n"), "{text}");
}

#[test]
fn json_shape() {
    let r = rows();
    let v = serde_json::to_value(summary(&r).json("session")).unwrap();
    assert_eq!(v["event"], "summary");
    assert_eq!(v["mode"], "session");
    assert!(v.get("unit").is_none() && v.get("total").is_none(), "{v}");
    let f = &v["functions"][0];
    assert_eq!(f["function"], "fast");
    assert_eq!(f["module"], "vmlinux");
    assert_eq!(f["calls"], 100);
    assert_eq!(f["avg_ns"], 700);
    assert_eq!(f["p50_ns"], 1024);
    assert_eq!(f["p99_ns"], 2048);
    assert_eq!(f["max_ns"], 1500);
    assert_eq!(
        f["buckets"],
        serde_json::json!([{"low_ns": 512, "high_ns": 1024, "count": 90},
        {"low_ns": 1024, "high_ns": 2048, "count": 10}])
    );
    assert_eq!(v["functions"][2]["p50_ns"], serde_json::Value::Null);
}

/// With `--unit us` the kernel's buckets count microseconds: bounds in JSON are multiplied
/// back to ns, times print in us.
#[test]
fn units_scale_bounds_and_times() {
    let r = vec![row("vfs_read", &[(2, 4)], 4 * 2_500, 3_100)];
    let mut s = summary(&r);
    s.report.unit = Some(Unit::Us);
    let text = s.text(None);
    assert!(
        text.starts_with(
            "vfs_read [vmlinux]  calls 4  avg 2.5us  p50 <4.0us  p90 <4.0us  p99 <4.0us  max 3.1us\n[2, 4) 4 |"
        ),
        "{text}"
    );
    assert!(text.contains("Buckets in us;"), "{text}");
    let v = serde_json::to_value(s.json("session")).unwrap();
    assert_eq!(v["unit"], "us");
    assert_eq!(v["functions"][0]["p50_ns"], 4000);
    assert_eq!(v["functions"][0]["buckets"], serde_json::json!([{"low_ns": 2000, "high_ns": 4000, "count": 4}]));
}

#[test]
fn intervals_subtract_and_leave_max_out_and_the_total_adds_up() {
    let then = rows();
    let mut now = rows();
    now[0].hist.buckets[10] += 5;
    now[0].sum_ns += 5 * 600;
    now[1].hist.buckets[21] += 2;
    now[1].sum_ns += 2 * 1_500_000;
    let delta = since(&now, &then);
    assert_eq!((delta[0].count(), delta[0].sum_ns, delta[0].max_ns), (5, 3000, None));
    assert_eq!(delta[1].count(), 2);
    let t = total(&delta);
    assert_eq!((t.function.name.as_str(), t.count(), t.sum_ns, t.max_ns), ("TOTAL", 7, 3_003_000, None));
    let report = Report {
        rows: &delta,
        total: Some(&t),
        unit: None,
        timestamp: Some(timestamp(UNIX_EPOCH + Duration::from_secs(1_796_457_301))),
        by: None,
    };
    let text = report.blocks(None);
    assert!(
        text.starts_with("[2026-12-05T07:55:01Z]\nTOTAL [all functions]  calls 7  avg 429.0us  p50 <1.0us"),
        "{text}"
    );
    assert!(!text.contains("max"), "an interval's max is not known: {text}");
    assert!(!text.contains("idle ["), "{text}");
    let v = serde_json::to_value(report.interval_json(Duration::from_secs(2), Duration::from_secs(1))).unwrap();
    assert_eq!(v["event"], "interval");
    assert_eq!(v["timestamp"], "2026-12-05T07:55:01Z");
    assert_eq!(v["total"]["calls"], 7);
    assert!(v["total"].get("module").is_none() && v["total"].get("max_ns").is_none(), "{v}");
    assert_eq!(v["functions"].as_array().unwrap().len(), 2, "only functions called in the interval: {v}");
}

#[test]
fn timestamps_are_utc_dates() {
    assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
}

#[test]
fn keys_print_under_their_function_and_in_json() {
    use std::collections::HashMap;

    use super::super::by::{ByTable, KeyRow};
    let r = rows();
    let key = |comm: &str, pid, buckets: &[(usize, u64)]| KeyRow {
        comm: Some(comm.into()),
        pid: Some(pid),
        row: row("fast", buckets, 700 * buckets.iter().map(|b| b.1).sum::<u64>(), 900),
    };
    let by = ByTable {
        rows: vec![key("cat", 12, &[(10, 10)]), key("sh", 1, &[(10, 80), (11, 10)])],
        overflow: HashMap::from([(r[1].function.clone(), 5)]),
        max_keys: 2,
    };
    let mut s = summary(&r);
    s.report.by = Some(&by);
    let text = s.text(None);
    assert!(
        text.contains(
            "|\n\n  comm=sh pid=1  calls 90  avg 700ns  p50 <1.0us  p90 <2.0us  p99 <2.0us  max 900ns\n  [512, 1K) 80 |"
        ),
        "{text}"
    );
    assert!(text.contains("\n  comm=cat pid=12  calls 10  avg 700ns"), "{text}");
    assert!(text.contains("5 calls in keys that did not fit (the kernel keeps 2 keys)"), "{text}");
    let v = serde_json::to_value(s.json("session")).unwrap();
    assert_eq!(v["keys_not_fit_calls"], 5);
    let b = &v["breakdown"];
    assert_eq!((&b[0]["comm"], &b[0]["pid"], &b[0]["calls"]), (&"sh".into(), &1.into(), &90.into()), "{v}");
    assert_eq!(b[1]["comm"], "cat");
    assert_eq!(b[0]["function"], "fast");
}
