//! `multiprobe latency`: how long each call of the selected functions takes, as a log2
//! histogram per function with percentiles.
//!
//! Where the kernel has kprobe sessions (6.10+), one session program runs at entry and
//! return of every call and keeps the entry time in the call's session cookie. Elsewhere a
//! kprobe.multi + kretprobe.multi pair keeps it in a hash keyed by thread and function, and
//! where even kprobe_multi is missing, the same pair goes in as per-function kprobes.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use multiprobe::kprobe_multi::{AttachMode, KprobeMulti, KprobeMultiLink};
use multiprobe::symbols::{Function, Listing};
use multiprobe::{Map, Object, ProgramKind};
use serde::Serialize;

use crate::duration;
use crate::error::CliError;
use crate::hist::{BUCKETS, BucketJson, Histogram};
use crate::output::{self, Output, hex_address};
use crate::probe::{self, Strategy};
use crate::run::{self, RunArgs};
use crate::select::{TargetArgs, module_name};
use crate::signals::{self, End, Stop};

/// The BPF object, built from bpf/latency.bpf.c by `cargo xtask bpf`.
pub const OBJECT: &[u8] = include_bytes!("../bpf/latency.bpf.o");
const SESSION: &str = "latency_session";
const ENTRY: &str = "latency_entry";
const RETURN: &str = "latency_return";

#[derive(Debug, Args)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Order of the functions in the report.
    #[arg(short = 's', long, value_enum, default_value_t = SortBy::Count)]
    pub sort: SortBy,
    /// Show only the first N functions of the report.
    #[arg(short = 't', long, value_name = "N")]
    pub top: Option<usize>,
    /// Use a kprobe.multi + kretprobe.multi pair even where the kernel has kprobe sessions.
    #[arg(long)]
    pub no_session: bool,
}

/// How the report is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    /// Most calls first.
    Count,
    /// Slowest 99th percentile first.
    P99,
    /// Slowest single call first.
    Max,
    /// Slowest average first.
    Avg,
    /// By function name.
    Name,
}

/// How entry and return are observed (`trace` observes them the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One kprobe session link.
    Session,
    /// An entry link and a return link.
    Pair(Strategy),
}

/// A kprobe session where the kernel has them and `no_session` is not set, else an entry +
/// return pair of kprobe_multi links or (unless `no_fallback`) per-function kprobes.
pub fn choose(no_session: bool, no_fallback: bool) -> Result<Method, CliError> {
    probe::require_bpf()?;
    if !no_session && probe::session_support().is_yes() {
        return Ok(Method::Session);
    }
    Ok(Method::Pair(probe::choose(no_fallback)?))
}

/// The names of an object's three programs for the three ways of [`Method`].
pub struct Programs {
    pub session: &'static str,
    pub entry: &'static str,
    pub ret: &'static str,
}

/// Loads only the programs `method` uses, as the kinds it needs.
pub fn select_programs(obj: &mut Object, method: Method, names: &Programs) {
    let mut set = |name: &str, load: bool, kind: Option<ProgramKind>| {
        let p = obj.program_mut(name).expect("the object has the program");
        p.set_autoload(load);
        if let Some(kind) = kind {
            p.set_kind(kind);
        }
    };
    match method {
        Method::Session => {
            set(names.session, true, None);
            set(names.entry, false, None);
            set(names.ret, false, None);
        }
        Method::Pair(strategy) => {
            set(names.session, false, None);
            set(names.entry, true, Some(strategy.entry_kind()));
            set(names.ret, true, Some(strategy.return_kind()));
        }
    }
}

/// Attaches the programs of `method` to `functions`, each with its cookie; functions the
/// kernel refuses are left out (`skip_rejected`). One link for a session, two for a pair
/// (entry first).
/// `listing` is how the traceable functions are read; `stop` cancels a per-function attach.
pub fn attach(
    method: Method,
    loaded: &multiprobe::LoadedObject,
    names: &Programs,
    functions: &[(Function, u64)],
    listing: &Listing,
    stop: &Stop,
) -> Result<Vec<KprobeMultiLink>, multiprobe::AttachError> {
    let program = |name: &str| loaded.program(name).expect("the object has the program");
    let spec = KprobeMulti::functions_with_cookies(functions.iter().cloned()).skip_rejected().listing(listing.clone());
    match method {
        Method::Session => Ok(vec![program(names.session).attach_kprobe_multi(&spec.session())?]),
        Method::Pair(strategy) => {
            let spec = spec.fallback(strategy.fallback()).cancel_on(stop.flag());
            let entry = program(names.entry).attach_kprobe_multi(&spec)?;
            let ret = program(names.ret).attach_kprobe_multi(&spec.retprobe())?;
            Ok(vec![entry, ret])
        }
    }
}

pub(crate) const PROGRAMS: Programs = Programs { session: SESSION, entry: ENTRY, ret: RETURN };

pub fn run(args: &LatencyArgs, listing: &Listing, out: &mut Output) -> Result<(), CliError> {
    let stop = Stop::install()?;
    let method = choose(args.no_session, args.run.no_fallback)?;
    let resolved = args.targets.resolve(listing)?;
    let functions = resolved.functions;
    let n = functions.len();

    let load_start = Instant::now();
    let loaded = load(method, n, args.run.pid)?;
    let load_time = load_start.elapsed();
    let cookies: Vec<(Function, u64)> = functions.iter().cloned().zip(0u64..).collect();
    if stop.pending().is_some() {
        eprintln!("interrupted before attaching: nothing was attached");
        return Ok(());
    }
    let (links, attach_time) = probe::attach(
        n,
        || attach(method, &loaded, &PROGRAMS, &cookies, listing, &stop),
        |l| mode(method, l).0.into(),
    )?;
    let (mode_text, mode_json) = mode(method, &links);
    // Functions the kernel refused (on either link of a pair) are left out of the report.
    let refused: Vec<Function> = links.iter().flat_map(|l| l.skipped().iter().cloned()).collect();
    let mask = probe::attached_mask(&functions, &refused);
    if args.run.json {
        out.json(&AttachedEvent {
            event: "attached",
            functions: n,
            mode: mode_json,
            resolve_ms: duration::millis(resolved.took),
            load_ms: duration::millis(load_time),
            attach_ms: duration::millis(attach_time),
        })?;
    } else {
        eprintln!("tracing {} {}", output::functions(n), args.run.until());
    }

    let started = Instant::now();
    let end = run::run_until(&stop, started, args.run.duration, None, || Ok(()))?;
    let ran = started.elapsed();
    // Detach first, then read: the values stay in the map, and a read made while every
    // probed function still runs the program pays for its own page faults and syscalls
    // through those probes (minutes for `latency '*'` under emulation).
    let detach_time = probe::detach(links);
    let latencies = loaded.map("latencies").expect("the object has the map");
    let mut rows = probe::masked(&read(&functions, latencies)?, &mask);
    sort(&mut rows, args.sort);
    let report = Report { rows: &rows, mode: mode_text, end, attach: attach_time, ran, detach: detach_time };
    if args.run.json {
        out.json(&report.json(mode_json))?;
    } else {
        out.text(&report.text(args.top))?;
    }
    Ok(())
}

/// The programs of `method`'s links, in the order [`attach`] returns the links.
pub(crate) fn programs(method: Method) -> &'static [&'static str] {
    match method {
        Method::Session => &[SESSION],
        Method::Pair(_) => &[ENTRY, RETURN],
    }
}

/// How the links went in: for people and for JSON.
pub fn mode(method: Method, links: &[KprobeMultiLink]) -> (&'static str, &'static str) {
    let per_function = links.iter().any(|l| l.attach_mode() == AttachMode::PerFunctionKprobes);
    match method {
        Method::Session => ("kprobe session", "session"),
        Method::Pair(_) if per_function => ("per-function kprobes + kretprobes", "kprobes+kretprobes"),
        Method::Pair(_) => ("kprobe_multi + kretprobe_multi", "kprobe_multi+kretprobe_multi"),
    }
}

/// Kernel memory the per-CPU table may take before we refuse: it grows with functions times
/// CPUs, and `latency '*'` on a large machine would otherwise pin gigabytes.
const TABLE_LIMIT: u64 = 1 << 30;

/// The object for this method, sized for `functions`.
pub(crate) fn load(method: Method, functions: usize, pid: Option<u32>) -> Result<multiprobe::LoadedObject, CliError> {
    let cpus = multiprobe::map::possible_cpus();
    let table = functions as u64 * size_of::<PerCpu>() as u64 * cpus as u64;
    if table > TABLE_LIMIT {
        return Err(CliError::new(format!(
            "{functions} functions on {cpus} CPUs need {} MiB of per-CPU histograms (the limit is {} MiB)",
            table >> 20,
            TABLE_LIMIT >> 20
        ))
        .hint("select fewer functions: a narrower pattern, --exclude, or MODULE:PATTERN"));
    }
    let mut obj = Object::parse("latency", OBJECT)?;
    obj.map_mut("latencies").expect("the object has the map").set_max_entries(functions as u32);
    obj.set_global("target_tgid", &pid.unwrap_or(0))?;
    select_programs(&mut obj, method, &PROGRAMS);
    Ok(obj.load()?)
}

/// One function's latencies.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    function: Function,
    pub hist: Histogram,
    pub sum_ns: u64,
    max_ns: u64,
}

impl Row {
    fn count(&self) -> u64 {
        self.hist.count()
    }

    fn avg_ns(&self) -> Option<u64> {
        self.sum_ns.checked_div(self.count())
    }
}

/// One function's latencies on one CPU, as `struct latency` in bpf/latency.bpf.c.
#[derive(Debug, Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C)]
struct PerCpu {
    sum_ns: u64,
    max_ns: u64,
    buckets: [u64; BUCKETS],
}

/// Sums every CPU's values into one row per function.
pub(crate) fn read(functions: &[Function], latencies: &Map) -> Result<Vec<Row>, CliError> {
    let mut rows: Vec<Row> = functions
        .iter()
        .map(|f| Row { function: f.clone(), hist: Histogram::default(), sum_ns: 0, max_ns: 0 })
        .collect();
    for (index, cpus) in latencies.dump_per_cpu::<u32, PerCpu>()? {
        let Some(row) = rows.get_mut(index as usize) else { continue };
        for cpu in &cpus {
            for (total, n) in row.hist.buckets.iter_mut().zip(cpu.buckets) {
                *total += n;
            }
            row.sum_ns += cpu.sum_ns;
            row.max_ns = row.max_ns.max(cpu.max_ns);
        }
    }
    Ok(rows)
}

fn sort(rows: &mut [Row], by: SortBy) {
    let key = |r: &Row| -> u64 {
        match by {
            SortBy::Count | SortBy::Name => r.count(),
            SortBy::P99 => r.hist.percentile(99.0).unwrap_or(0),
            SortBy::Max => r.max_ns,
            SortBy::Avg => r.avg_ns().unwrap_or(0),
        }
    };
    rows.sort_by(|a, b| {
        let named = a.function.name.cmp(&b.function.name).then_with(|| a.function.module.cmp(&b.function.module));
        match by {
            SortBy::Name => named,
            _ => key(b).cmp(&key(a)).then_with(|| b.count().cmp(&a.count())).then(named),
        }
    });
}

/// The final report.
struct Report<'a> {
    rows: &'a [Row],
    mode: &'static str,
    end: End,
    attach: Duration,
    ran: Duration,
    detach: Duration,
}

impl Report<'_> {
    fn text(&self, top: Option<usize>) -> String {
        let called: Vec<&Row> = self.rows.iter().filter(|r| r.count() > 0).collect();
        let mut s = String::new();
        for r in called.iter().take(top.unwrap_or(usize::MAX)) {
            let pct = |p| r.hist.percentile(p).map_or("-".into(), |ns| format!("<{}", duration::nanos(ns)));
            s.push_str(&format!(
                "{} [{}]  calls {}  avg {}  p50 {}  p90 {}  p99 {}  max {}\n",
                r.function.name,
                module_name(&r.function),
                r.count(),
                r.avg_ns().map_or("-".into(), duration::nanos),
                pct(50.0),
                pct(90.0),
                pct(99.0),
                duration::nanos(r.max_ns),
            ));
            s.push_str(&r.hist.render());
            s.push('\n');
        }
        if let Some(hidden) = top.map(|n| called.len().saturating_sub(n)).filter(|&h| h > 0) {
            s.push_str(&format!("({hidden} more functions with calls not shown)\n"));
        }
        if called.is_empty() {
            s.push_str(&format!("no completed calls of any of the {} functions\n", self.rows.len()));
        }
        s.push_str(&format!(
            "{}: {} with completed calls. Latencies in ns; percentiles are upper bounds of log2 buckets.\n\
             Attached in {} ({}), ran {}{}, detached in {}.\n",
            output::functions(self.rows.len()),
            called.len(),
            duration::human(self.attach),
            self.mode,
            duration::human(self.ran),
            match self.end {
                End::Duration => String::new(),
                End::Signal(sig) => format!(" (ended by {})", signals::name(sig)),
            },
            duration::human(self.detach),
        ));
        s
    }

    fn json(&self, mode: &'static str) -> SummaryEvent<'_> {
        SummaryEvent {
            event: "summary",
            end: match self.end {
                End::Duration => "duration",
                End::Signal(sig) => signals::name(sig),
            },
            mode,
            attach_ms: duration::millis(self.attach),
            run_ms: duration::millis(self.ran),
            detach_ms: duration::millis(self.detach),
            functions: self
                .rows
                .iter()
                .map(|r| FunctionJson {
                    function: &r.function.name,
                    module: module_name(&r.function),
                    address: hex_address(r.function.address),
                    calls: r.count(),
                    sum_ns: r.sum_ns,
                    avg_ns: r.avg_ns(),
                    max_ns: r.max_ns,
                    p50_ns: r.hist.percentile(50.0),
                    p90_ns: r.hist.percentile(90.0),
                    p99_ns: r.hist.percentile(99.0),
                    buckets: r.hist.json(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct AttachedEvent {
    event: &'static str,
    functions: usize,
    mode: &'static str,
    resolve_ms: f64,
    load_ms: f64,
    attach_ms: f64,
}

#[derive(Debug, Serialize)]
struct SummaryEvent<'a> {
    event: &'static str,
    end: &'static str,
    mode: &'static str,
    attach_ms: f64,
    run_ms: f64,
    detach_ms: f64,
    /// Every attached function, in the report's order.
    functions: Vec<FunctionJson<'a>>,
}

/// Percentiles are the upper bounds (exclusive) of their log2 buckets; null without calls.
#[derive(Debug, Serialize)]
struct FunctionJson<'a> {
    function: &'a str,
    module: &'a str,
    address: String,
    calls: u64,
    sum_ns: u64,
    avg_ns: Option<u64>,
    max_ns: u64,
    p50_ns: Option<u64>,
    p90_ns: Option<u64>,
    p99_ns: Option<u64>,
    buckets: Vec<BucketJson>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, buckets: &[(usize, u64)], sum_ns: u64, max_ns: u64) -> Row {
        let mut hist = Histogram::default();
        for &(b, n) in buckets {
            hist.buckets[b] = n;
        }
        Row {
            function: Function { name: name.into(), module: None, address: 0xffffffff81000000 },
            hist,
            sum_ns,
            max_ns,
        }
    }

    fn rows() -> Vec<Row> {
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

    fn report(rows: &[Row]) -> Report<'_> {
        Report {
            rows,
            mode: "kprobe session",
            end: End::Duration,
            attach: Duration::from_millis(40),
            ran: Duration::from_secs(3),
            detach: Duration::from_millis(60),
        }
    }

    #[test]
    fn text_report_has_a_header_and_histogram_per_called_function() {
        let r = rows();
        let text = report(&r).text(None);
        assert!(
            text.starts_with(
                "fast [vmlinux]  calls 100  avg 700ns  p50 <1.0us  p90 <1.0us  p99 <2.0us  max 1.5us\n[512, 1K) 90 |"
            ),
            "{text}"
        );
        assert!(text.contains("\nslow [vmlinux]  calls 5  avg 600.0us  p50 <1.0ms"), "{text}");
        assert!(!text.contains("idle ["), "functions without calls get no histogram: {text}");
        assert!(text.contains("3 functions: 2 with completed calls."), "{text}");
        assert!(text.contains("percentiles are upper bounds of log2 buckets"));
        assert!(report(&r).text(Some(1)).contains("(1 more functions with calls not shown)"));
    }

    #[test]
    fn json_shape() {
        let r = rows();
        let v = serde_json::to_value(report(&r).json("session")).unwrap();
        assert_eq!(v["event"], "summary");
        assert_eq!(v["mode"], "session");
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
}
