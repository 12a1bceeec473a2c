//! `multiprobe count`: calls per function, from one program attached to every selected
//! function (one kprobe_multi link, or per-function kprobes where the kernel has none). Each
//! function has a slot in a per-CPU array of counters, found from its entry address (see
//! `slots`) or its attach cookie, and read once per interval; rates are computed here, not
//! in the kernel.

use std::time::{Duration, Instant};

use clap::Args;
use multiprobe::kprobe_multi::{AttachMode, Function, KprobeMulti, KprobeMultiLink};
use multiprobe::{Map, Object, Program};
use serde::Serialize;

use crate::duration;
use crate::error::CliError;
use crate::output::{self, Output, hex_address};
use crate::probe::{self, Strategy};
use crate::run::{self, RunArgs};
use crate::select::{self, SelectArgs, module_name};
use crate::signals::{self, End, Stop};
use crate::slots::Slots;
use crate::table::{Align, Table};

/// The BPF object, built from bpf/count.bpf.c by `cargo xtask bpf`.
pub const OBJECT: &[u8] = include_bytes!("../../../bpf/count.bpf.o");
const PROGRAM: &str = "count_calls";
const COUNTS: &str = "counts";
const SLOTS: &str = "slots";

/// Rows of the live table unless `--top` says otherwise.
const LIVE_ROWS: usize = 20;

#[derive(Debug, Args)]
pub struct CountArgs {
    /// Function patterns: NAME_GLOB, MODULE_GLOB:NAME_GLOB or vmlinux:NAME_GLOB.
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Report every D while running. Default: every second on a terminal (a table redrawn in
    /// place), otherwise only the final summary.
    #[arg(short = 'i', long, value_name = "D", value_parser = duration::parse_nonzero)]
    pub interval: Option<Duration>,
    /// Show the N functions with the most calls (default: 20 while running, all at the end).
    #[arg(short = 't', long, value_name = "N")]
    pub top: Option<usize>,
}

pub fn run(args: &CountArgs, out: &mut Output) -> Result<(), CliError> {
    let stop = Stop::install()?;
    let strategy = probe::choose(args.run.no_fallback)?;
    let resolved = select::resolve(&select::selection(&args.patterns, &args.select))?;
    let functions = resolved.functions;
    let n = functions.len();

    // A kprobe_multi link finds counters by entry address when the functions allow it.
    let slots = match strategy {
        Strategy::KprobeMulti => {
            multiprobe::kprobe_multi::entry_addresses(&functions).ok().and_then(|e| Slots::build(&functions, &e))
        }
        Strategy::PerFunction => None,
    };

    let load_start = Instant::now();
    let loaded = load(strategy, n, args.run.pid, slots.as_ref())?;
    let load_time = load_start.elapsed();
    let prog = loaded.program(PROGRAM).expect("the object has the program").clone();
    let map = loaded.map(COUNTS).expect("the object has the map").clone();

    if stop.pending().is_some() {
        eprintln!("interrupted before attaching: nothing was attached");
        return Ok(());
    }
    // Link info reads the kernel's BTF (thousands of vfs_read calls from sysfs): read it now,
    // before attaching, so the summary's missed count does not show up in the counts.
    let _ = multiprobe::features::kprobe_multi_link_info();
    // A function the kernel refuses is left out (and named) rather than failing the set.
    let spec = match &slots {
        Some(_) => KprobeMulti::functions(functions.iter().cloned()),
        None => KprobeMulti::functions_with_cookies(functions.iter().cloned().zip(0u64..)),
    };
    let spec = spec.fallback(strategy.fallback()).skip_rejected();
    let (link, attach_time) =
        probe::attach(n, || prog.attach_kprobe_multi(&spec), |l| probe::mode_text(l.attach_mode()).into())?;
    let mode = link.attach_mode();
    // From here on only what is attached: counters stay indexed by cookie (all functions).
    let mask = probe::attached_mask(&functions, link.skipped());
    let skipped: Vec<&str> = link.skipped().iter().map(|f| f.name.as_str()).collect();
    let functions = probe::masked(&functions, &mask);
    let n = functions.len();
    if args.run.json {
        out.json(&AttachedEvent {
            event: "attached",
            functions: n,
            mode: probe::mode_json(mode),
            resolve_ms: duration::millis(resolved.took),
            load_ms: duration::millis(load_time),
            attach_ms: duration::millis(attach_time),
            lookup: if slots.is_some() { "address" } else { "cookie" },
            skipped,
        })?;
    }

    // Live reports: on a terminal every second by default; JSON and pipes only when asked.
    let interval = args.interval.or((out.tty && !args.run.json).then_some(Duration::from_secs(1)));
    if interval.is_none() && !args.run.json {
        eprintln!("counting calls of {} {}", output::functions(n), args.run.until());
    }
    let mut counts = Counters::new(map, mask);
    let started = Instant::now();
    let mut last_tick = started;
    let end = run::run_until(&stop, started, args.run.duration, interval, || {
        let now = Instant::now();
        let (calls, totals) = counts.advance()?;
        let report =
            Interval { functions: &functions, calls: &calls, totals: &totals, secs: (now - last_tick).as_secs_f64() };
        last_tick = now;
        if args.run.json {
            out.json(&report.json(now - started))?;
        } else if out.tty {
            let header = format!(
                "count: {} ({}), {} elapsed; Ctrl-C to stop\n\n",
                output::functions(n),
                probe::mode_text(mode),
                duration::human(now - started)
            );
            out.text(&format!("{CLEAR}{header}{}", report.table(args.top.unwrap_or(LIVE_ROWS))))?;
        } else {
            let header = format!("[{}]\n", duration::human(now - started));
            out.text(&format!("{header}{}\n", report.table(args.top.unwrap_or(LIVE_ROWS))))?;
        }
        Ok(())
    })?;
    // The counts of the run itself: per-function kprobes can take seconds to detach, and
    // calls made meanwhile would inflate the rates.
    let totals = counts.read()?;
    let ran = started.elapsed();
    let missed = missed(&link, &prog);
    let detach_time = probe::detach(vec![link]);

    let summary = Summary {
        functions: &functions,
        totals: &totals,
        mode,
        end,
        attach: attach_time,
        ran,
        detach: detach_time,
        missed,
    };
    if args.run.json {
        out.json(&summary.json())?;
    } else {
        let clear = if out.tty && interval.is_some() { CLEAR } else { "" };
        out.text(&format!("{clear}{}", summary.text(args.top)))?;
    }
    Ok(())
}

/// The most resident memory this process has held (VmHWM of /proc/self/status), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Clears a terminal and puts the cursor top left, for a table redrawn in place.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// The object with one counter per function, for this kernel and pid filter, and its slot
/// table filled when counters are found by address.
fn load(
    strategy: Strategy,
    functions: usize,
    pid: Option<u32>,
    slots: Option<&Slots>,
) -> Result<multiprobe::LoadedObject, CliError> {
    let mut obj = Object::parse("count", OBJECT)?;
    let entries = u32::try_from(functions).map_err(|_| CliError::new(format!("{functions} functions are too many")))?;
    obj.map_mut(COUNTS).expect("the object has the map").set_max_entries(entries);
    obj.set_global("target_tgid", &pid.unwrap_or(0))?;
    if let Some(s) = slots {
        obj.map_mut(SLOTS).expect("the object has the map").set_max_entries(s.len);
        obj.set_global("slot_base", &s.base)?;
    }
    obj.program_mut(PROGRAM).expect("the object has the program").set_kind(strategy.entry_kind());
    let loaded = obj.load()?;
    if let Some(s) = slots {
        let map = loaded.map(SLOTS).expect("the object has the map");
        map.update_batch(&s.keys, &s.values, multiprobe::UpdateFlags::Any)?;
    }
    Ok(loaded)
}

/// Runs the kernel skipped: the link's missed count (6.7+) plus the program's recursion misses.
fn missed(link: &KprobeMultiLink, prog: &Program) -> Option<u64> {
    let link_missed = link.info().ok().and_then(|i| i.missed);
    let recursion = prog.info().ok().map(|i| i.recursion_misses);
    match (link_missed, recursion) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// The per-CPU counters, summed, and what they were at the last read.
struct Counters {
    map: Map,
    /// Which cookies (indices of the functions selected) are attached.
    mask: Vec<bool>,
    last: Vec<u64>,
}

impl Counters {
    fn new(map: Map, mask: Vec<bool>) -> Counters {
        let attached = mask.iter().filter(|&&m| m).count();
        Counters { map, mask, last: vec![0; attached] }
    }

    /// Calls per attached function so far: one batched read of every CPU's counters.
    fn read(&self) -> Result<Vec<u64>, CliError> {
        let mut by_cookie = vec![0u64; self.mask.len()];
        for (index, cpus) in self.map.dump_per_cpu::<u32, u64>()? {
            if let Some(t) = by_cookie.get_mut(index as usize) {
                *t = cpus.iter().sum();
            }
        }
        Ok(probe::masked(&by_cookie, &self.mask))
    }

    /// Calls since the last call (per function) and totals.
    fn advance(&mut self) -> Result<(Vec<u64>, Vec<u64>), CliError> {
        let totals = self.read()?;
        let calls = totals.iter().zip(&self.last).map(|(t, l)| t.saturating_sub(*l)).collect();
        self.last.clone_from(&totals);
        Ok((calls, totals))
    }
}

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
struct Interval<'a> {
    functions: &'a [Function],
    calls: &'a [u64],
    totals: &'a [u64],
    secs: f64,
}

impl Interval<'_> {
    /// FUNCTION, MODULE, CALLS, RATE/s, TOTAL for the `top` busiest functions, a TOTAL row,
    /// and how many functions are not shown.
    fn table(&self, top: usize) -> String {
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

    fn json(&self, elapsed: Duration) -> IntervalEvent<'_> {
        let order = ranked(self.functions, self.calls, self.totals);
        IntervalEvent {
            event: "interval",
            elapsed_ms: duration::millis(elapsed),
            interval_ms: (self.secs * 1e6).round() / 1e3,
            calls: self.calls.iter().sum(),
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
struct Summary<'a> {
    functions: &'a [Function],
    totals: &'a [u64],
    mode: AttachMode,
    end: End,
    attach: Duration,
    ran: Duration,
    detach: Duration,
    missed: Option<u64>,
}

impl Summary<'_> {
    fn text(&self, top: Option<usize>) -> String {
        let order = ranked(self.functions, self.totals, self.totals);
        let secs = self.ran.as_secs_f64();
        let mut s = String::new();
        if order.is_empty() {
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
        let called = order.len();
        s.push_str(&format!(
            "\n{}: {called} called, {} not called. Attached in {} ({}), ran {}{}, detached in {}.\n",
            output::functions(self.functions.len()),
            self.functions.len() - called,
            duration::human(self.attach),
            probe::mode_text(self.mode),
            duration::human(self.ran),
            match self.end {
                End::Duration => String::new(),
                End::Signal(sig) => format!(" (ended by {})", signals::name(sig)),
            },
            duration::human(self.detach),
        ));
        if let Some(m) = self.missed.filter(|&m| m > 0) {
            s.push_str(&format!("{m} calls were missed (the kernel skips probes that would recurse).\n"));
        }
        s
    }

    fn json(&self) -> SummaryEvent<'_> {
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
struct AttachedEvent<'a> {
    event: &'static str,
    functions: usize,
    mode: &'static str,
    resolve_ms: f64,
    load_ms: f64,
    attach_ms: f64,
    /// How the program finds a function's counter: `address` (its 16-byte slot) or `cookie`.
    lookup: &'static str,
    /// Functions the kernel refused, left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<&'a str>,
}

#[derive(Debug, Serialize)]
struct IntervalEvent<'a> {
    event: &'static str,
    elapsed_ms: f64,
    interval_ms: f64,
    calls: u64,
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
struct SummaryEvent<'a> {
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
        }
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
