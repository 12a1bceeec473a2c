//! The results of one kernel: statistics of every series (minimum, median) keyed by group,
//! case and implementation, the cells and ratios the tables show, and the JSON file.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::records::Records;
use crate::kernels::Kernel;

/// Minimum and median of a series.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub min: f64,
    pub median: f64,
    /// Number of samples.
    pub n: usize,
}

impl Stat {
    /// The statistics of `samples`, or `None` for none.
    pub fn of(samples: &[f64]) -> Option<Stat> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let mid = s.len() / 2;
        let median = if s.len() % 2 == 1 { s[mid] } else { (s[mid - 1] + s[mid]) / 2.0 };
        Some(Stat { min: s[0], median, n: s.len() })
    }
}

/// (group, case, impl): which series.
pub type Key = (String, String, String);

/// The results of one kernel.
pub struct Report {
    /// The kernel's label (`6.12`) and version.
    pub label: String,
    pub version: String,
    /// What the bench printed.
    pub records: Records,
    /// (group, case, impl) -> statistics of the samples (ns, ps or kB as recorded) and the
    /// functions involved.
    pub stats: BTreeMap<Key, (Stat, Option<u64>)>,
}

fn key(group: &str, case: &str, imp: &str) -> Key {
    (group.to_string(), case.to_string(), imp.to_string())
}

/// Milliseconds with a precision that suits the size.
pub fn ms(ns: f64) -> String {
    let v = ns / 1e6;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

/// The patterns in table order.
pub const PATTERNS: &[&str] = &["vfs_read", "vfs_*", "tcp_*", "*sys_*", "*", "* (cookies)"];

impl Report {
    pub fn new(kernel: &Kernel, records: Vec<Value>) -> Report {
        let records = Records::parse(records);
        let mut stats = BTreeMap::new();
        for s in &records.series {
            if let Some(st) = Stat::of(&s.samples) {
                stats.insert(key(&s.group, &s.case, &s.imp), (st, s.matches));
            }
        }
        Report { label: kernel.label.clone(), version: kernel.version.clone(), records, stats }
    }

    pub fn stat(&self, group: &str, case: &str, imp: &str) -> Option<Stat> {
        self.stats.get(&key(group, case, imp)).map(|(s, _)| *s)
    }

    pub fn matches(&self, group: &str, case: &str, imp: &str) -> Option<u64> {
        self.stats.get(&key(group, case, imp)).and_then(|(_, m)| *m)
    }

    /// "median (min)" in ms, or "-".
    pub fn cell(&self, group: &str, case: &str, imp: &str) -> String {
        match self.stat(group, case, imp) {
            Some(s) if s.n > 1 => format!("{} ({})", ms(s.median), ms(s.min)),
            Some(s) => ms(s.median),
            None => "-".into(),
        }
    }

    /// Ratio of medians, or "-".
    pub fn ratio_cell(&self, a: (&str, &str, &str), b: (&str, &str, &str)) -> String {
        match (self.stat(a.0, a.1, a.2), self.stat(b.0, b.1, b.2)) {
            (Some(x), Some(y)) => ratio(x.median, y.median),
            _ => "-".into(),
        }
    }

    pub fn median(&self, group: &str, case: &str, imp: &str) -> Option<f64> {
        self.stat(group, case, imp).map(|s| s.median)
    }

    /// `a / b` on medians and on minimums: "1.23x (min 1.10x)".
    pub fn ratios(&self, group: &str, case: &str, a: &str, b: &str) -> Option<(f64, String)> {
        self.ratios_of((group, case, a), (group, case, b))
    }

    /// `a / b` on medians and on minimums, for series of different groups.
    pub fn ratios_of(&self, a: (&str, &str, &str), b: (&str, &str, &str)) -> Option<(f64, String)> {
        let (x, y) = (self.stat(a.0, a.1, a.2)?, self.stat(b.0, b.1, b.2)?);
        let r = x.median / y.median;
        Some((r, format!("{r:.2}x (min {:.2}x)", x.min / y.min)))
    }

    /// (count - none) / (empty - none), on medians and on minimums.
    pub fn overhead_ratio(&self, case: &str, program: &str) -> Option<(f64, f64)> {
        let none = self.stat("per_call", case, "none")?;
        let empty = self.stat("per_call", case, "empty")?;
        let count = self.stat("per_call", case, program)?;
        Some((
            (count.median - none.median) / (empty.median - none.median),
            (count.min - none.min) / (empty.min - none.min),
        ))
    }

    /// The cases of a group, in first-seen order.
    pub fn cases(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.records.series {
            if s.group == group && !out.contains(&s.case) {
                out.push(s.case.clone());
            }
        }
        out
    }

    /// The JSON file: the records as printed, the statistics and the targets.
    pub fn to_json(&self) -> Value {
        let stats: Vec<Value> = self
            .stats
            .iter()
            .map(|((g, c, i), (s, m))| {
                json!({"group": g, "case": c, "impl": i, "matches": m, "n": s.n, "min": s.min, "median": s.median})
            })
            .collect();
        let targets: Vec<Value> = self
            .targets()
            .into_iter()
            .map(|t| json!({"target": t.what, "measured": t.measured, "met": t.met}))
            .collect();
        json!({
            "kernel": self.label,
            "version": self.version,
            "records": self.records.raw,
            "stats": stats,
            "targets": targets,
        })
    }
}
