//! `multiprobe latency`: how long each call of the selected functions takes, as a log2
//! histogram per function with percentiles.
//!
//! Where the kernel has kprobe sessions (6.10+), one session program runs at entry and
//! return of every call and keeps the entry time in the call's session cookie. Elsewhere a
//! kprobe.multi + kretprobe.multi pair keeps it in a hash keyed by thread and function, and
//! where even kprobe_multi is missing, the same pair goes in as per-function kprobes.
//!
//! `--interval` reads the histograms while attached and prints what each interval added;
//! `--unit` has the kernel bucket latencies in us or ms (as funclatency -u/-m); `--total`
//! adds one histogram over every function; `--by comm|pid` a histogram per function and key
//! (`by.rs`). What is printed is in `report.rs`.

mod by;
mod report;

use std::time::{Duration, Instant, SystemTime};

use clap::{Args, ValueEnum};
use multiprobe::kprobe_multi::{AttachMode, KprobeMulti, KprobeMultiLink};
use multiprobe::symbols::{Function, Listing};
use multiprobe::{Map, Object, ProgramKind};
use serde::Serialize;

use self::by::{ByArgs, ByTable};
use self::report::{Report, Summary, Unit};
use crate::checked::Checked;
use crate::duration;
use crate::error::CliError;
use crate::hist::{BUCKETS, Histogram};
use crate::output::{self, Output};
use crate::probe::{self, Strategy};
use crate::run::{self, RunArgs};
use crate::select::TargetArgs;
use crate::signals::Stop;

/// The BPF object, built from bpf/latency.bpf.c by `cargo xtask bpf`.
pub const OBJECT: &[u8] = include_bytes!("../../bpf/latency.bpf.o");
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
    /// Print the histograms of each interval of D (10ms at least), then start afresh
    /// (funclatency -i); the final summary covers the whole run.
    #[arg(short = 'i', long, value_name = "D", value_parser = Checked(duration::parse_interval), allow_hyphen_values = true)]
    pub interval: Option<Duration>,
    /// Start every report with the wall-clock time (UTC).
    #[arg(short = 'T', long)]
    pub timestamp: bool,
    /// Unit of the histograms' buckets and of the times printed (default: buckets in ns,
    /// times in the most readable unit).
    #[arg(short = 'u', long, value_enum)]
    pub unit: Option<Unit>,
    /// Also one histogram over every selected function together.
    #[arg(long)]
    pub total: bool,
    #[command(flatten)]
    pub by: ByArgs,
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
    let loaded = load_in(method, n, args.run.pid, args.unit.map_or(1, Unit::ns), &args.by)?;
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

    let latencies = loaded.map("latencies").expect("the object has the map");
    let by_keys = {
        let mut k = args.by.by.clone();
        k.sort();
        k.dedup();
        k
    };
    let read_by = || -> Result<Option<ByTable>, CliError> {
        if by_keys.is_empty() {
            return Ok(None);
        }
        let map = |name: &str| loaded.map(name).expect("the object has the map");
        Ok(Some(ByTable::read(&functions, map("by_latencies"), map("by_overflow"), &by_keys, args.by.max_keys())?))
    };
    let stamp = |on: bool| on.then(|| report::timestamp(SystemTime::now()));
    let started = Instant::now();
    // The first interval starts from the empty tables of the attach, not from a read made
    // after it: calls made meanwhile belong to it.
    let empty: Vec<Row> = functions.iter().map(|f| Row::empty(f.clone())).collect();
    let mut last = (started, probe::masked(&empty, &mask), (!by_keys.is_empty()).then(ByTable::default));
    let end = run::run_until(&stop, started, args.run.duration, args.interval, || {
        let now = (Instant::now(), probe::masked(&read(&functions, latencies)?, &mask), read_by()?);
        let mut rows = report::since(&now.1, &last.1);
        sort(&mut rows, args.sort);
        let total = args.total.then(|| report::total(&rows));
        let by = match (&now.2, &last.2) {
            (Some(n), Some(l)) => Some(n.since(l)),
            _ => None,
        };
        let report = Report {
            rows: &rows,
            total: total.as_ref(),
            unit: args.unit,
            timestamp: stamp(args.timestamp),
            by: by.as_ref(),
        };
        if args.run.json {
            out.json(&report.interval_json(now.0 - started, now.0 - last.0))?;
        } else {
            let header = format!("[{}]\n", duration::human(now.0 - started));
            out.text(&format!("{header}{}\n", report.blocks(args.top)))?;
        }
        last = now;
        Ok(())
    })?;
    let ran = started.elapsed();
    // Detach first, then read: the values stay in the map, and a read made while every
    // probed function still runs the program pays for its own page faults and syscalls
    // through those probes (minutes for `latency '*'` under emulation). But per-function
    // kprobes take seconds to detach: there the text summary comes first, read while they
    // are still attached, and the detach time after it.
    let mut links = links;
    let slow_detach = probe::slow_detach(&links) && !args.run.json;
    let detach_time = (!slow_detach).then(|| probe::detach(std::mem::take(&mut links)));
    let mut rows = probe::masked(&read(&functions, latencies)?, &mask);
    sort(&mut rows, args.sort);
    let total = args.total.then(|| report::total(&rows));
    let by = read_by()?;
    let summary = Summary {
        report: Report {
            rows: &rows,
            total: total.as_ref(),
            unit: args.unit,
            timestamp: stamp(args.timestamp),
            by: by.as_ref(),
        },
        mode: mode_text,
        end,
        attach: attach_time,
        ran,
        detach: detach_time,
    };
    if args.run.json {
        out.json(&summary.json(mode_json))?;
    } else {
        out.text(&summary.text(args.top))?;
    }
    if slow_detach {
        out.text(&probe::detached_line(probe::detach(links)))?;
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

/// The object for this method, sized for `functions`, with histograms in ns.
pub(crate) fn load(method: Method, functions: usize, pid: Option<u32>) -> Result<multiprobe::LoadedObject, CliError> {
    load_in(method, functions, pid, 1, &ByArgs { by: Vec::new(), max_keys: None })
}

/// The object for this method, sized for `functions`, bucketing latencies in units of
/// `unit_ns` nanoseconds, with the per-key table `by` asks for.
fn load_in(
    method: Method,
    functions: usize,
    pid: Option<u32>,
    unit_ns: u64,
    by: &ByArgs,
) -> Result<multiprobe::LoadedObject, CliError> {
    let cpus = multiprobe::map::possible_cpus();
    let keys = if by.by.is_empty() { 0 } else { u64::from(by.max_keys()) };
    let table = (functions as u64 + keys) * size_of::<PerCpu>() as u64 * cpus as u64;
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
    obj.set_global("unit_ns", &unit_ns)?;
    obj.set_global("by", &by.bits())?;
    obj.map_mut("by_overflow").expect("the object has the map").set_max_entries(functions as u32);
    if keys > 0 {
        obj.map_mut("by_latencies").expect("the object has the map").set_max_entries(keys as u32);
    }
    select_programs(&mut obj, method, &PROGRAMS);
    Ok(obj.load()?)
}

/// One function's latencies.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    function: Function,
    pub hist: Histogram,
    pub sum_ns: u64,
    /// The largest call; `None` in an interval's report (the kernel keeps the run's only).
    max_ns: Option<u64>,
}

impl Row {
    /// A function without calls yet.
    fn empty(function: Function) -> Row {
        Row { function, hist: Histogram::default(), sum_ns: 0, max_ns: Some(0) }
    }

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
    let mut rows: Vec<Row> = functions.iter().map(|f| Row::empty(f.clone())).collect();
    for (index, cpus) in latencies.dump_per_cpu::<u32, PerCpu>()? {
        let Some(row) = rows.get_mut(index as usize) else { continue };
        add_cpus(row, &cpus);
    }
    Ok(rows)
}

/// Adds every CPU's values to `row`.
fn add_cpus(row: &mut Row, cpus: &[PerCpu]) {
    for cpu in cpus {
        for (total, n) in row.hist.buckets.iter_mut().zip(cpu.buckets) {
            *total += n;
        }
        row.sum_ns += cpu.sum_ns;
        row.max_ns = row.max_ns.max(Some(cpu.max_ns));
    }
}

fn sort(rows: &mut [Row], by: SortBy) {
    let key = |r: &Row| -> u64 {
        match by {
            SortBy::Count | SortBy::Name => r.count(),
            SortBy::P99 => r.hist.percentile(99.0).unwrap_or(0),
            SortBy::Max => r.max_ns.unwrap_or(0),
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

#[derive(Debug, Serialize)]
struct AttachedEvent {
    event: &'static str,
    functions: usize,
    mode: &'static str,
    resolve_ms: f64,
    load_ms: f64,
    attach_ms: f64,
}

#[cfg(test)]
pub(crate) mod tests;
