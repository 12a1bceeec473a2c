//! What `multiprobe count` prints: the live table of an interval, the final summary, and
//! their JSON events.

use std::time::Duration;

use multiprobe::kprobe_multi::AttachMode;
use multiprobe::symbols::Function;
use serde::Serialize;

use super::breakdown::{Breakdown, BreakdownJson};
use crate::duration;
use crate::output::{self, hex_address};
use crate::probe;
use crate::select::module_name;
use crate::signals::{self, End};
use crate::table::{Align, Table};

/// Indices of the functions called at all: most calls in the interval first, then most in
/// total, then by name.
fn ranked(functions: &[Function], calls: &[u64], totals: &[u64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..functions.len()).filter(|&i| totals[i] > 0).collect();
    idx.sort_by(|&a, &b| {
        (calls[b], totals[b]).cmp(&(calls[a], totals[a])).then_with(|| functions[a].name.cmp(&functions[b].name))
    });
    idx
}

fn rate(calls: u64, secs: f64) -> f64 {
    if secs > 0.0 { ((calls as f64 / secs) * 10.0).round() / 10.0 } else { 0.0 }
}

/// One interval's report.
pub(super) struct Interval<'a> {
    pub(super) functions: &'a [Function],
    pub(super) calls: &'a [u64],
    pub(super) totals: &'a [u64],
    pub(super) secs: f64,
}

impl Interval<'_> {
    /// FUNCTION, MODULE, CALLS, RATE/s, TOTAL for the `top` busiest functions, a TOTAL row,
    /// and how many functions are not shown.
    pub(super) fn table(&self, top: usize) -> String {
        let order = ranked(self.functions, self.calls, self.totals);
        let mut t = Table::new(&[
            ("FUNCTION", Align::Left),
            ("MODULE", Align::Left),
            ("CALLS", Align::Right),
            ("RATE/s", Align::Right),
            ("TOTAL", Align::Right),
        ]);
        for &i in order.iter().take(top) {
            let f = &self.functions[i];
            t.row(vec![
                f.name.clone(),
                module_name(f).into(),
                self.calls[i].to_string(),
                format!("{:.1}", rate(self.calls[i], self.secs)),
                self.totals[i].to_string(),
            ]);
        }
        let calls: u64 = self.calls.iter().sum();
        t.row(vec![
            "TOTAL".into(),
            String::new(),
            calls.to_string(),
            format!("{:.1}", rate(calls, self.secs)),
            self.totals.iter().sum::<u64>().to_string(),
        ]);
        let mut s = t.render();
        let hidden = order.len().saturating_sub(top);
        let never = self.functions.len() - order.len();
        match (hidden, never) {
            (0, 0) => {}
            (0, never) => s.push_str(&format!("({never} functions not called yet)\n")),
            (hidden, never) => s.push_str(&format!("({hidden} more functions called, {never} not called yet)\n")),
        }
        s
    }

    pub(super) fn json(&self, elapsed: Duration) -> IntervalEvent<'_> {
        let order = ranked(self.functions, self.calls, self.totals);
        IntervalEvent {
            event: "interval",
            elapsed_ms: duration::millis(elapsed),
            interval_ms: (self.secs * 1e6).round() / 1e3,
            calls: self.calls.iter().sum(),
            breakdown: None,
            functions: order
                .into_iter()
                .filter(|&i| self.calls[i] > 0)
                .map(|i| IntervalFunction {
                    function: &self.functions[i].name,
                    module: module_name(&self.functions[i]),
                    calls: self.calls[i],
                    rate: rate(self.calls[i], self.secs),
                    total: self.totals[i],
                })
                .collect(),
        }
    }
}

/// What a run counted, after detach.
pub(super) struct Summary<'a> {
    pub(super) functions: &'a [Function],
    pub(super) totals: &'a [u64],
    pub(super) mode: AttachMode,
    pub(super) end: End,
    pub(super) attach: Duration,
    pub(super) ran: Duration,
    pub(super) detach: Duration,
    pub(super) missed: Option<u64>,
    /// With `--by`: calls per function and key.
    pub(super) breakdown: Option<&'a Breakdown<'a>>,
}

impl Summary<'_> {
    pub(super) fn text(&self, top: Option<usize>) -> String {
        self.text_with(top, Some(self.detach))
    }

    /// The summary printed before a slow detach (per-function kprobes take seconds), ending
    /// in "detaching..." where the detach time would be; [`probe::detached_line`] follows it.
    pub(super) fn text_before_detach(&self, top: Option<usize>) -> String {
        self.text_with(top, None)
    }

    fn text_with(&self, top: Option<usize>, detach: Option<Duration>) -> String {
        let order = ranked(self.functions, self.totals, self.totals);
        let secs = self.ran.as_secs_f64();
        let mut s = String::new();
        if let Some(b) = self.breakdown.filter(|_| !order.is_empty()) {
            s.push_str(&b.text(top));
        } else if order.is_empty() {
            s.push_str(&format!("no calls to any of the {} functions\n", self.functions.len()));
        } else {
            let mut t = Table::new(&[
                ("FUNCTION", Align::Left),
                ("MODULE", Align::Left),
                ("CALLS", Align::Right),
                ("RATE/s", Align::Right),
            ]);
            for &i in order.iter().take(top.unwrap_or(usize::MAX)) {
                let f = &self.functions[i];
                let calls = self.totals[i];
                t.row(vec![
                    f.name.clone(),
                    module_name(f).into(),
                    calls.to_string(),
                    format!("{:.1}", rate(calls, secs)),
                ]);
            }
            let total: u64 = self.totals.iter().sum();
            t.row(vec!["TOTAL".into(), String::new(), total.to_string(), format!("{:.1}", rate(total, secs))]);
            s.push_str(&t.render());
            if let Some(hidden) = top.map(|n| order.len().saturating_sub(n)).filter(|&h| h > 0) {
                s.push_str(&format!("({hidden} more functions called)\n"));
            }
        }
        s.push_str(&self.footer_with(detach));
        s
    }

    /// The line on functions called, timings and missed calls that ends the summary.
    pub(super) fn footer(&self) -> String {
        self.footer_with(Some(self.detach))
    }

    /// [`Summary::footer`], with the detach time if the detach is over.
    fn footer_with(&self, detach: Option<Duration>) -> String {
        let called = self.totals.iter().filter(|&&c| c > 0).count();
        let mut s = String::new();
        s.push_str(&format!(
            "\n{}: {called} called, {} not called. Attached in {} ({}), ran {}{}{}\n",
            output::functions(self.functions.len()),
            self.functions.len() - called,
            duration::human(self.attach),
            probe::mode_text(self.mode),
            duration::human(self.ran),
            match self.end {
                End::Duration => String::new(),
                End::Signal(sig) => format!(" (ended by {})", signals::name(sig)),
            },
            probe::detach_clause(detach),
        ));
        if let Some(m) = self.missed.filter(|&m| m > 0) {
            s.push_str(&format!("{m} calls were missed (the kernel skips probes that would recurse).\n"));
        }
        s
    }

    pub(super) fn json(&self) -> SummaryEvent<'_> {
        let mut order: Vec<usize> = (0..self.functions.len()).collect();
        order.sort_by(|&a, &b| {
            self.totals[b].cmp(&self.totals[a]).then_with(|| self.functions[a].name.cmp(&self.functions[b].name))
        });
        SummaryEvent {
            event: "summary",
            end: match self.end {
                End::Duration => "duration",
                End::Signal(sig) => signals::name(sig),
            },
            mode: probe::mode_json(self.mode),
            called: self.totals.iter().filter(|&&c| c > 0).count(),
            total_calls: self.totals.iter().sum(),
            attach_ms: duration::millis(self.attach),
            run_ms: duration::millis(self.ran),
            detach_ms: duration::millis(self.detach),
            missed: self.missed,
            peak_rss_kib: peak_rss_kib(),
            breakdown: self.breakdown.map(Breakdown::json),
            functions: order
                .into_iter()
                .map(|i| SummaryFunction {
                    function: &self.functions[i].name,
                    module: module_name(&self.functions[i]),
                    address: hex_address(self.functions[i].address),
                    calls: self.totals[i],
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct AttachedEvent<'a> {
    pub(super) event: &'static str,
    pub(super) functions: usize,
    pub(super) mode: &'static str,
    pub(super) resolve_ms: f64,
    pub(super) load_ms: f64,
    pub(super) attach_ms: f64,
    /// How the program finds a function's counter: `address` (its 16-byte slot) or `cookie`.
    pub(super) lookup: &'static str,
    /// Functions the kernel refused, left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) skipped: Vec<&'a str>,
    /// Functions kprobe_multi could not take, attached by a kprobe each, with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) kprobe_only: Vec<KprobeOnlyJson<'a>>,
}

/// A function attached by its own kprobe next to the kprobe_multi link.
#[derive(Debug, Serialize)]
pub(super) struct KprobeOnlyJson<'a> {
    function: &'a str,
    module: &'a str,
    reason: &'a str,
}

impl<'a> KprobeOnlyJson<'a> {
    pub(super) fn of(k: &'a multiprobe::kprobe_multi::KprobeOnly) -> KprobeOnlyJson<'a> {
        KprobeOnlyJson {
            function: &k.function.name,
            module: k.function.module.as_deref().unwrap_or("vmlinux"),
            reason: &k.reason,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct IntervalEvent<'a> {
    event: &'static str,
    elapsed_ms: f64,
    interval_ms: f64,
    calls: u64,
    /// With `--by`: the interval's calls per function and key.
    #[serde(flatten)]
    pub(super) breakdown: Option<BreakdownJson<'a>>,
    /// Functions called in the interval.
    functions: Vec<IntervalFunction<'a>>,
}

#[derive(Debug, Serialize)]
struct IntervalFunction<'a> {
    function: &'a str,
    module: &'a str,
    calls: u64,
    rate: f64,
    total: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct SummaryEvent<'a> {
    event: &'static str,
    /// `duration`, `SIGINT` or `SIGTERM`.
    end: &'static str,
    mode: &'static str,
    called: usize,
    total_calls: u64,
    attach_ms: f64,
    run_ms: f64,
    detach_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    missed: Option<u64>,
    /// The most memory this process held (VmHWM), in KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_rss_kib: Option<u64>,
    /// With `--by`: calls per function and key.
    #[serde(flatten)]
    breakdown: Option<BreakdownJson<'a>>,
    /// Every attached function, most calls first.
    functions: Vec<SummaryFunction<'a>>,
}

#[derive(Debug, Serialize)]
struct SummaryFunction<'a> {
    function: &'a str,
    module: &'a str,
    address: String,
    calls: u64,
}

/// The most resident memory this process has held (VmHWM of /proc/self/status), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn funcs() -> Vec<Function> {
        ["vfs_read", "vfs_write", "vfs_open", "bm_status_read"]
            .iter()
            .enumerate()
            .map(|(i, n)| Function {
                name: n.to_string(),
                module: (i == 3).then(|| "binfmt_misc".into()),
                address: 0xffffffff81000000 + i as u64 * 16,
            })
            .collect()
    }

    #[test]
    fn interval_table_is_sorted_by_calls_with_rates_totals_and_what_is_hidden() {
        let f = funcs();
        let report = Interval { functions: &f, calls: &[10, 30, 0, 5], totals: &[100, 30, 7, 5], secs: 2.0 };
        assert_eq!(
            report.table(2),
            "FUNCTION   MODULE   CALLS  RATE/s  TOTAL\n\
             vfs_write  vmlinux     30    15.0     30\n\
             vfs_read   vmlinux     10     5.0    100\n\
             TOTAL                  45    22.5    142\n\
             (2 more functions called, 0 not called yet)\n"
        );
    }

    #[test]
    fn interval_json_lists_functions_called_in_the_interval() {
        let f = funcs();
        let report = Interval { functions: &f, calls: &[3, 0, 0, 0], totals: &[3, 1, 0, 0], secs: 1.0 };
        let v = serde_json::to_value(report.json(Duration::from_millis(1500))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "interval", "elapsed_ms": 1500.0, "interval_ms": 1000.0, "calls": 3,
                "functions": [{"function": "vfs_read", "module": "vmlinux", "calls": 3, "rate": 3.0, "total": 3}]})
        );
    }

    fn summary<'a>(f: &'a [Function], totals: &'a [u64], end: End) -> Summary<'a> {
        Summary {
            functions: f,
            totals,
            mode: AttachMode::KprobeMulti,
            end,
            attach: Duration::from_millis(33),
            ran: Duration::from_secs(5),
            detach: Duration::from_millis(70),
            missed: Some(0),
            breakdown: None,
        }
    }

    #[test]
    fn a_slow_detach_comes_after_the_summary() {
        let f = funcs();
        let s = summary(&f, &[3, 5, 0, 0], End::Duration);
        let early = s.text_before_detach(None);
        assert!(early.ends_with("ran 5.0s; detaching...\n"), "{early}");
        assert!(early.starts_with("FUNCTION"), "{early}");
        assert_eq!(probe::detached_line(Duration::from_millis(7100)), "Detached in 7.1s.\n");
    }

    #[test]
    fn summary_text_has_totals_zero_calls_and_timings() {
        let f = funcs();
        let s = summary(&f, &[3, 5, 0, 0], End::Signal(2));
        assert_eq!(
            s.text(None),
            "FUNCTION   MODULE   CALLS  RATE/s\n\
             vfs_write  vmlinux      5     1.0\n\
             vfs_read   vmlinux      3     0.6\n\
             TOTAL                   8     1.6\n\
             \n\
             4 functions: 2 called, 2 not called. Attached in 33ms (kprobe_multi), ran 5.0s (ended by SIGINT), detached in 70ms.\n"
        );
        let empty = summary(&f, &[0, 0, 0, 0], End::Duration);
        assert!(empty.text(None).starts_with("no calls to any of the 4 functions\n"), "{}", empty.text(None));
    }

    #[test]
    fn summary_json_carries_every_function_with_module_and_calls() {
        let f = funcs();
        let v = serde_json::to_value(summary(&f, &[3, 5, 0, 1], End::Duration).json()).unwrap();
        assert_eq!(v["event"], "summary");
        assert_eq!(v["end"], "duration");
        assert_eq!(v["mode"], "kprobe_multi");
        assert_eq!(v["total_calls"], 9);
        assert_eq!(v["called"], 3);
        assert_eq!(v["detach_ms"], 70.0);
        let fs = v["functions"].as_array().unwrap();
        assert_eq!(fs.len(), 4);
        assert_eq!(
            fs[0],
            serde_json::json!({"function": "vfs_write", "module": "vmlinux", "address": "0xffffffff81000010", "calls": 5})
        );
        assert_eq!(fs[1]["function"], "vfs_read");
        assert_eq!(fs[2]["module"], "binfmt_misc");
        assert_eq!(fs[3]["calls"], 0);
    }
}
