//! What `multiprobe latency` prints: a block per function (header line and histogram), for
//! each interval and for the whole run, optionally one over every function (`--total`), in
//! the unit asked for, and the same as JSON events.

use std::time::{Duration, SystemTime};

use clap::ValueEnum;
use multiprobe::symbols::Function;
use serde::Serialize;

use super::Row;
use super::by::ByTable;
use crate::duration;
use crate::hist::{BucketJson, Histogram};
use crate::output::{self, hex_address};
use crate::probe;
use crate::select::module_name;
use crate::signals::{self, End};

/// The unit of histogram buckets and printed times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Unit {
    /// Nanoseconds.
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
}

impl Unit {
    /// Nanoseconds per unit.
    pub fn ns(self) -> u64 {
        match self {
            Unit::Ns => 1,
            Unit::Us => 1_000,
            Unit::Ms => 1_000_000,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Us => "us",
            Unit::Ms => "ms",
        }
    }
}

/// `ns` as text: in `unit`, or without one in the most readable unit.
fn show(ns: u64, unit: Option<Unit>) -> String {
    match unit {
        None => duration::nanos(ns),
        Some(Unit::Ns) => format!("{ns}ns"),
        Some(u) => format!("{:.1}{}", ns as f64 / u.ns() as f64, u.name()),
    }
}

/// The calls between two reads: histograms and sums subtract; the largest call of the
/// interval is not known (the kernel keeps the run's), so it is left out.
pub fn since(now: &[Row], then: &[Row]) -> Vec<Row> {
    now.iter().zip(then).map(|(n, t)| since_row(n, Some(t))).collect()
}

/// One row's calls since an earlier read of it (`None`: it had none).
pub fn since_row(now: &Row, then: Option<&Row>) -> Row {
    let mut hist = now.hist.clone();
    if let Some(t) = then {
        for (b, y) in hist.buckets.iter_mut().zip(t.hist.buckets) {
            *b = b.saturating_sub(y);
        }
    }
    let sum_ns = now.sum_ns.saturating_sub(then.map_or(0, |t| t.sum_ns));
    Row { function: now.function.clone(), hist, sum_ns, max_ns: None }
}

/// One histogram over every row: `TOTAL`.
pub fn total(rows: &[Row]) -> Row {
    let mut hist = Histogram::default();
    for r in rows {
        for (t, n) in hist.buckets.iter_mut().zip(r.hist.buckets) {
            *t += n;
        }
    }
    Row {
        function: Function { name: "TOTAL".into(), module: None, address: 0 },
        hist,
        sum_ns: rows.iter().map(|r| r.sum_ns).sum(),
        max_ns: rows.iter().map(|r| r.max_ns).try_fold(0, |m, x| x.map(|x| m.max(x))),
    }
}

/// The wall clock as `2026-12-05T07:55:01Z` (UTC).
pub fn timestamp(at: SystemTime) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// A report: of an interval, or of the whole run.
pub struct Report<'a> {
    pub rows: &'a [Row],
    /// With `--total`: the histogram over every function.
    pub total: Option<&'a Row>,
    pub unit: Option<Unit>,
    /// With `--timestamp`: the wall clock at the report.
    pub timestamp: Option<String>,
    /// With `--by`: histograms per function and key.
    pub by: Option<&'a ByTable>,
}

impl Report<'_> {
    /// One block per function with calls (`top` of them), the total first.
    pub fn blocks(&self, top: Option<usize>) -> String {
        let called: Vec<&Row> = self.rows.iter().filter(|r| r.count() > 0).collect();
        let mut s = String::new();
        if let Some(t) = &self.timestamp {
            s.push_str(&format!("[{t}]\n"));
        }
        if let Some(t) = self.total.filter(|t| t.count() > 0) {
            s.push_str(&self.block(t, "all functions"));
        }
        for r in called.iter().take(top.unwrap_or(usize::MAX)) {
            s.push_str(&self.block(r, module_name(&r.function)));
            for k in self.by.map(|b| b.of(&r.function)).unwrap_or_default() {
                let block = self.block(&k.row, module_name(&r.function));
                let mut lines = block.lines();
                let head = lines.next().unwrap_or_default();
                // `  comm=cat pid=12  calls ...`, its histogram indented under it.
                let stats = head.split_once("]  ").map_or(head, |(_, rest)| rest);
                s.push_str(&format!("  {}  {stats}\n", k.label()));
                for line in lines.filter(|l| !l.is_empty()) {
                    s.push_str(&format!("  {line}\n"));
                }
                s.push('\n');
            }
        }
        if let Some(b) = self.by {
            s.push_str(&b.note());
        }
        if let Some(hidden) = top.map(|n| called.len().saturating_sub(n)).filter(|&h| h > 0) {
            s.push_str(&format!("({hidden} more functions with calls not shown)\n"));
        }
        if called.is_empty() {
            s.push_str(&format!("no completed calls of any of the {} functions\n", self.rows.len()));
        }
        s
    }

    fn block(&self, r: &Row, module: &str) -> String {
        let scale = self.unit.map_or(1, Unit::ns);
        let pct = |p| r.hist.percentile(p).map_or("-".into(), |b| format!("<{}", show(b * scale, self.unit)));
        let max = r.max_ns.map(|m| format!("  max {}", show(m, self.unit))).unwrap_or_default();
        format!(
            "{} [{module}]  calls {}  avg {}  p50 {}  p90 {}  p99 {}{max}\n{}\n",
            r.function.name,
            r.count(),
            r.avg_ns().map_or("-".into(), |a| show(a, self.unit)),
            pct(50.0),
            pct(90.0),
            pct(99.0),
            r.hist.render(),
        )
    }

    /// The JSON of one function (or the total).
    fn function_json<'r>(&self, r: &'r Row, total: bool) -> FunctionJson<'r> {
        let scale = self.unit.map_or(1, Unit::ns);
        FunctionJson {
            function: &r.function.name,
            module: if total { "" } else { module_name(&r.function) },
            address: if total { String::new() } else { hex_address(r.function.address) },
            calls: r.count(),
            sum_ns: r.sum_ns,
            avg_ns: r.avg_ns(),
            max_ns: r.max_ns,
            p50_ns: r.hist.percentile(50.0).map(|b| b * scale),
            p90_ns: r.hist.percentile(90.0).map(|b| b * scale),
            p99_ns: r.hist.percentile(99.0).map(|b| b * scale),
            buckets: r
                .hist
                .json()
                .into_iter()
                .map(|b| BucketJson { low_ns: b.low_ns * scale, high_ns: b.high_ns * scale, count: b.count })
                .collect(),
        }
    }

    fn functions_json(&self, only_called: bool) -> Vec<FunctionJson<'_>> {
        self.rows.iter().filter(|r| !only_called || r.count() > 0).map(|r| self.function_json(r, false)).collect()
    }

    /// With `--by`: every (function, key) histogram, and the calls whose key did not fit.
    fn by_json(&self) -> Option<ByJson<'_>> {
        let b = self.by?;
        let mut rows: Vec<KeyJson<'_>> = b
            .rows
            .iter()
            .filter(|k| k.row.count() > 0)
            .map(|k| KeyJson { comm: k.comm.as_deref(), pid: k.pid, latency: self.function_json(&k.row, false) })
            .collect();
        rows.sort_by(|a, b| (a.latency.function, b.latency.calls).cmp(&(b.latency.function, a.latency.calls)));
        Some(ByJson { breakdown: rows, keys_not_fit_calls: b.overflow_calls() })
    }

    /// What an `interval` and the `summary` event both carry: the histograms (of the
    /// functions called only, or of every attached one).
    fn histograms_json(&self, only_called: bool) -> HistogramsJson<'_> {
        HistogramsJson {
            timestamp: self.timestamp.clone(),
            unit: self.unit.map(Unit::name),
            total: self.total.map(|t| self.function_json(t, true)),
            by: self.by_json(),
            functions: self.functions_json(only_called),
        }
    }

    /// An `interval` event: the functions called in it.
    pub fn interval_json(&self, elapsed: Duration, interval: Duration) -> IntervalEvent<'_> {
        IntervalEvent {
            event: "interval",
            elapsed_ms: duration::millis(elapsed),
            interval_ms: duration::millis(interval),
            histograms: self.histograms_json(true),
        }
    }
}

/// The whole run's report, with how it ran.
pub struct Summary<'a> {
    pub report: Report<'a>,
    pub mode: &'static str,
    pub end: End,
    pub attach: Duration,
    pub ran: Duration,
    /// `None` while a slow detach waits for the summary to be printed first.
    pub detach: Option<Duration>,
}

impl Summary<'_> {
    pub fn text(&self, top: Option<usize>) -> String {
        let mut s = self.report.blocks(top);
        let called = self.report.rows.iter().filter(|r| r.count() > 0).count();
        let unit = self.report.unit.map_or("ns", Unit::name);
        s.push_str(&format!(
            "{}: {called} with completed calls. Buckets in {unit}; percentiles are upper bounds of log2 buckets.\n\
             Attached in {} ({}), ran {}{}{}\n",
            output::functions(self.report.rows.len()),
            duration::human(self.attach),
            self.mode,
            duration::human(self.ran),
            match self.end {
                End::Duration => String::new(),
                End::Signal(sig) => format!(" (ended by {})", signals::name(sig)),
            },
            probe::detach_clause(self.detach),
        ));
        s
    }

    pub fn json(&self, mode: &'static str) -> SummaryEvent<'_> {
        SummaryEvent {
            event: "summary",
            end: match self.end {
                End::Duration => "duration",
                End::Signal(sig) => signals::name(sig),
            },
            mode,
            attach_ms: duration::millis(self.attach),
            run_ms: duration::millis(self.ran),
            detach_ms: duration::millis(self.detach.unwrap_or_default()),
            histograms: self.report.histograms_json(false),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct IntervalEvent<'a> {
    event: &'static str,
    elapsed_ms: f64,
    interval_ms: f64,
    #[serde(flatten)]
    histograms: HistogramsJson<'a>,
}

#[derive(Debug, Serialize)]
pub struct SummaryEvent<'a> {
    event: &'static str,
    end: &'static str,
    mode: &'static str,
    attach_ms: f64,
    run_ms: f64,
    detach_ms: f64,
    #[serde(flatten)]
    histograms: HistogramsJson<'a>,
}

/// The fields `interval` and `summary` events share, after their own.
#[derive(Debug, Serialize)]
struct HistogramsJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    /// The histograms' unit with `--unit` (bounds stay in ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'static str>,
    /// With `--total`: every function's calls in one histogram.
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<FunctionJson<'a>>,
    #[serde(flatten)]
    by: Option<ByJson<'a>>,
    /// The functions called in the interval (`interval`), every attached one (`summary`),
    /// in the report's order.
    functions: Vec<FunctionJson<'a>>,
}

/// What `--by` adds: `breakdown` rows (a function's latencies for one key, with `comm`
/// and/or `pid`) and the calls whose key did not fit.
#[derive(Debug, Serialize)]
struct ByJson<'a> {
    breakdown: Vec<KeyJson<'a>>,
    keys_not_fit_calls: u64,
}

#[derive(Debug, Serialize)]
struct KeyJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    comm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(flatten)]
    latency: FunctionJson<'a>,
}

/// Percentiles are the upper bounds (exclusive) of their log2 buckets; null without calls.
/// Times are in ns whatever the unit (bucket bounds are multiples of it).
#[derive(Debug, Serialize)]
struct FunctionJson<'a> {
    function: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    module: &'a str,
    #[serde(skip_serializing_if = "String::is_empty")]
    address: String,
    calls: u64,
    sum_ns: u64,
    avg_ns: Option<u64>,
    /// Left out of intervals: the kernel keeps the run's largest call only.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_ns: Option<u64>,
    p50_ns: Option<u64>,
    p90_ns: Option<u64>,
    p99_ns: Option<u64>,
    buckets: Vec<BucketJson>,
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
