//! `multiprobe trace`: one event per call of the selected functions (entry time, CPU, task,
//! function, duration, return value typed by BTF), through a BPF ring buffer.
//!
//! Entry and return are observed as `latency` observes them (one kprobe session link where
//! the kernel has sessions, else an entry + return pair of kprobe_multi links, else
//! per-function kprobes), and with its code. Every filter runs in the kernel: the task ones
//! at entry, duration and `--errors` at return, where the attach cookie tells the program how
//! the function's return value reads. A call that passes them and finds the ring full is
//! counted as lost and reported: never dropped silently. The ring is drained every
//! [`POLL`] without wakeups from the kernel.

mod args;
mod errno;
mod event;
mod protos;
mod ret;
mod shown;

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use multiprobe::kprobe_multi::KprobeMultiLink;
use multiprobe::symbols::{Function, Listing};
use multiprobe::{LoadedObject, Map, Object, RingBuf};
use serde::Serialize;

use self::event::{Columns, Layout};
use self::shown::Shown;
use crate::duration;
use crate::error::CliError;
use crate::latency::{self, Method, Programs};
use crate::output::{self, Output};
use crate::probe;
use crate::run::RunArgs;
use crate::select::{TargetArgs, module_name};
use crate::signals::{self, End, Stop};

/// The BPF object, built from bpf/trace.bpf.c by `cargo xtask bpf`.
pub const OBJECT: &[u8] = include_bytes!("../../bpf/trace.bpf.o");
const PROGRAMS: Programs = Programs { session: "trace_session", entry: "trace_entry", ret: "trace_return" };

/// How often the ring buffer is drained. The program asks for no wakeups (one per event
/// would cost an interrupt each); at this period the default ring holds over a million
/// events per second.
const POLL: Duration = Duration::from_millis(20);
/// How often lost events are checked for while running.
const LOST_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Only calls that failed: a negative errno from a function returning a signed integer,
    /// or an error pointer; `--errors=null` also counts NULL from functions returning
    /// pointers. Functions without a BTF prototype (module functions) never match.
    #[arg(long, value_enum, value_name = "WHAT", num_args = 0..=1, require_equals = true, default_missing_value = "errno")]
    pub errors: Option<Errors>,
    /// Only calls that took at least D (`10us`, `1ms`).
    #[arg(long, value_name = "D", value_parser = duration::parse)]
    pub min_duration: Option<Duration>,
    /// Only calls made by tasks (threads) of this name, as `ps -L -o comm` shows it (at most
    /// 15 bytes: the kernel keeps no more).
    #[arg(long, value_name = "NAME", value_parser = parse_comm)]
    pub comm: Option<Comm>,
    /// Stop after N events.
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Size of the ring buffer the events go through (`256K`, `4M`): a power of two, at
    /// least a page. A larger one absorbs longer bursts before events are lost.
    #[arg(long, value_name = "BYTES", default_value = "4M", value_parser = parse_buffer_size)]
    pub buffer_size: u32,
    /// Show the first six arguments of each call by name, read by the function's BTF
    /// prototype (integers, enum names, pointers in hex, `char *` as strings).
    #[arg(short = 'a', long)]
    pub args: bool,
    /// With --args: bytes kept of each string argument, its NUL included (0: show string
    /// pointers in hex). Strings are read at entry; longer ones are cut. At most 256: every
    /// call in progress holds six of them.
    #[arg(long, value_name = "BYTES", default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub string_size: u32,
    /// Show the kernel stack of each call (at its return: the caller's frame first), each
    /// frame as `function+0xoff [module]`, under the call's line (`"stack"` in JSON).
    #[arg(long)]
    pub kstack: bool,
    /// Use a kprobe.multi + kretprobe.multi pair even where the kernel has kprobe sessions.
    #[arg(long)]
    pub no_session: bool,
}

/// Which failures `--errors` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Errors {
    /// Negative errno values and error pointers.
    Errno,
    /// Those and NULL pointers.
    Null,
}

/// A task name as the kernel stores it: NUL-padded to 16 bytes, read as two words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comm([u64; 2]);

fn parse_comm(text: &str) -> Result<Comm, String> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err("the task name is empty".into());
    }
    if bytes.len() > 15 {
        return Err(format!(
            "`{text}` is {} bytes; the kernel keeps a task's name to 15 (TASK_COMM_LEN), so no task has it: \
             give its first 15 bytes",
            bytes.len()
        ));
    }
    if bytes.contains(&0) {
        return Err("a task name cannot contain NUL".into());
    }
    let mut padded = [0u8; 16];
    padded[..bytes.len()].copy_from_slice(bytes);
    Ok(Comm([
        u64::from_le_bytes(padded[..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(padded[8..].try_into().expect("8 bytes")),
    ]))
}

/// The largest ring buffer accepted: the kernel's limit is higher, but the ring is locked
/// kernel memory.
const MAX_BUFFER: u64 = 1 << 30;

fn parse_buffer_size(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (digits, scale) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1),
        Some((i, _)) => (
            &t[..i],
            match t[i..].to_ascii_uppercase().as_str() {
                "K" | "KB" | "KIB" => 1 << 10,
                "M" | "MB" | "MIB" => 1 << 20,
                "G" | "GB" | "GIB" => 1 << 30,
                unit => return Err(format!("`{text}`: unknown unit `{unit}` (K, M, G)")),
            },
        ),
    };
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size (examples: 256K, 4M)"))?;
    let bytes = n.checked_mul(scale).filter(|&b| b <= MAX_BUFFER).ok_or(format!("`{text}`: at most 1G"))?;
    if bytes < 4096 || !bytes.is_power_of_two() {
        return Err(format!("`{text}`: the ring buffer's size must be a power of two of at least 4K (4K, 64K, 4M)"));
    }
    Ok(bytes as u32)
}

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Run(End),
    /// `--limit` events were shown.
    Limit,
}

impl Ending {
    fn json(self) -> &'static str {
        match self {
            Ending::Run(End::Duration) => "duration",
            Ending::Run(End::Signal(sig)) => signals::name(sig),
            Ending::Limit => "limit",
        }
    }
}

pub fn run(args: &TraceArgs, listing: &Listing, out: &mut Output) -> Result<(), CliError> {
    let stop = Stop::install()?;
    let method = latency::choose(args.no_session, args.run.no_fallback)?;
    let resolved = args.targets.resolve(listing)?;
    let functions = resolved.functions;
    let n = functions.len();
    if u32::try_from(n).is_err() {
        return Err(CliError::new(format!("{n} functions are too many to tell apart in a cookie")));
    }
    let protos::Prototypes { types, params, user_tags } = protos::read(&functions, args.args);
    protos::warn_unknown(&types, args.errors.is_some());
    let symbols =
        args.kstack.then(crate::stack::KernelSymbols::read).transpose().map_err(|e| {
            CliError::new(format!("--kstack names frames by /proc/kallsyms, which could not be read: {e}"))
        })?;
    let masks: Vec<u64> = match &params {
        Some(params) if args.string_size > 0 => params.iter().map(|p| args::string_mask(p)).collect(),
        _ => vec![0; n],
    };
    // No string argument anywhere: no room kept for strings at all.
    let string_size = if masks.iter().any(|&m| m != 0) { args.string_size } else { 0 };
    let cookies: Vec<(Function, u64)> = functions
        .iter()
        .cloned()
        .zip(types.iter().zip(&masks).zip(0u32..).map(|((t, &m), i)| t.cookie(i) | m << STRINGS_SHIFT))
        .collect();

    let load_start = Instant::now();
    let layout = Layout { args: args.args, string_size: string_size as usize, kstack: args.kstack };
    let loaded = load(args, method, &layout, user_tags)?;
    let load_time = load_start.elapsed();
    if stop.pending().is_some() {
        eprintln!("interrupted before attaching: nothing was attached");
        return Ok(());
    }
    let (links, attach_time) = probe::attach(
        n,
        || latency::attach(method, &loaded, &PROGRAMS, &cookies, listing, &stop),
        |l| latency::mode(method, l).0.into(),
    )?;
    let (mode_text, mode_json) = latency::mode(method, &links);
    let refused: Vec<Function> = links.iter().flat_map(|l| l.skipped().iter().cloned()).collect();
    let attached = n - probe::attached_mask(&functions, &refused).iter().filter(|&&m| !m).count();
    let columns = Columns::new(&functions);
    if args.run.json {
        out.json(&AttachedEvent {
            event: "attached",
            functions: attached,
            mode: mode_json,
            resolve_ms: duration::millis(resolved.took),
            load_ms: duration::millis(load_time),
            attach_ms: duration::millis(attach_time),
            skipped: refused.iter().map(|f| f.name.as_str()).collect(),
        })?;
    } else {
        eprintln!("tracing {} {}", output::functions(attached), args.run.until());
        out.text(&columns.header())?;
    }

    let map = |name: &str| loaded.map(name).expect("the object has the map");
    let mut ring = RingBuf::new(map("events"))?;
    let mut shown = Shown::new(&functions, &types, params.as_deref(), columns, args.run.json, args.limit);
    shown.layout = layout;
    shown.symbols = symbols.as_ref();
    let started = Instant::now();
    let ending = poll(&stop, started, args.run.duration, &mut ring, map("lost"), &mut shown, out)?;
    let ran = started.elapsed();
    let missed = missed(&links, &loaded, method);
    // Per-function kprobes take seconds to detach: there the text summary comes first and
    // the detach time after it; events of the detach's seconds (after the run) are not shown.
    let mut links = links;
    let slow_detach = probe::slow_detach(&links) && !args.run.json;
    let detach_time = (!slow_detach).then(|| probe::detach(std::mem::take(&mut links)));
    // Calls that returned before the links went away are still in the ring.
    shown.drain(&mut ring, out)?;
    let lost = read_lost(map("lost"))?;

    let summary = Summary {
        events: shown.events,
        per_function: &shown.per_function,
        functions: &functions,
        attached,
        lost,
        missed,
        mode: mode_text,
        ending,
        attach: attach_time,
        ran,
        detach: detach_time,
    };
    if args.run.json {
        out.json(&summary.json(mode_json))?;
    } else {
        out.text(&summary.text())?;
    }
    if slow_detach {
        out.text(&probe::detached_line(probe::detach(links)))?;
    }
    Ok(())
}

/// Where the string masks sit in the attach cookie (bits 48-53 strings, 54-59 `__user`).
const STRINGS_SHIFT: u32 = 48;
/// `struct start` in bpf/trace.bpf.c; its strings follow it.
const START_SIZE: u32 = 64;

/// Frames of the kernel stack kept per event with `--kstack`.
const KSTACK_DEPTH: u32 = 32;

/// The object with the filters of `args` set, its programs chosen for `method`; room for
/// six strings of `layout.string_size` bytes per call in progress.
fn load(args: &TraceArgs, method: Method, layout: &Layout, user_tags: bool) -> Result<LoadedObject, CliError> {
    let string_size = layout.string_size as u32;
    let mut obj = Object::parse("trace", OBJECT)?;
    obj.map_mut("events").expect("the object has the map").set_max_entries(args.buffer_size);
    if string_size > 0 {
        for name in ["starts", "scratch"] {
            obj.map_mut(name).expect("the object has the map").set_value_size(START_SIZE + 6 * string_size);
        }
    }
    obj.set_global("string_size", &string_size)?;
    obj.set_global("user_tags", &u8::from(user_tags))?;
    obj.set_global("kstack_depth", &if layout.kstack { KSTACK_DEPTH } else { 0 })?;
    obj.set_global("target_tgid", &args.run.pid.unwrap_or(0))?;
    obj.set_global("target_comm", &args.comm.map_or([0u64; 2], |c| c.0))?;
    let errors: u32 = match args.errors {
        None => 0,
        Some(Errors::Errno) => 1,
        Some(Errors::Null) => 2,
    };
    obj.set_global("errors", &errors)?;
    let min_ns = args.min_duration.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    obj.set_global("min_duration_ns", &min_ns)?;
    obj.set_global("limit", &args.limit.unwrap_or(0))?;
    obj.set_global("capture_args", &u8::from(args.args))?;
    latency::select_programs(&mut obj, method, &PROGRAMS);
    Ok(obj.load()?)
}

/// Drains the ring every [`POLL`] until the duration passes, a signal comes or the limit is
/// reached; says on stderr when events are lost.
fn poll(
    stop: &Stop,
    started: Instant,
    duration: Option<Duration>,
    ring: &mut RingBuf,
    lost: &Map,
    shown: &mut Shown,
    out: &mut Output,
) -> Result<Ending, CliError> {
    let deadline = duration.map(|d| started + d);
    let mut next_lost_check = started + LOST_CHECK;
    let mut lost_reported = 0;
    loop {
        if shown.drain(ring, out)? {
            return Ok(Ending::Limit);
        }
        let now = Instant::now();
        if now >= next_lost_check {
            next_lost_check = now + LOST_CHECK;
            let total = read_lost(lost)?;
            if total > lost_reported {
                eprintln!("lost {} events (no room in the ring buffer: see --buffer-size)", total - lost_reported);
                lost_reported = total;
            }
            // Lost events count against the limit as the kernel counts them.
            if shown.limit.is_some_and(|l| shown.events + total >= l) {
                return Ok(Ending::Limit);
            }
        }
        if deadline.is_some_and(|d| now >= d) {
            return Ok(Ending::Run(End::Duration));
        }
        let wake = deadline.map_or(now + POLL, |d| d.min(now + POLL));
        if let Some(end) = stop.wait_until(Some(wake)) {
            return Ok(Ending::Run(end));
        }
    }
}

/// Events that passed the filters and found the ring full, on every CPU.
fn read_lost(map: &Map) -> Result<u64, CliError> {
    Ok(map.get_per_cpu::<u32, u64>(&0)?.map_or(0, |cpus| cpus.iter().sum()))
}

/// Probe runs the kernel skipped (recursion, kretprobe instances): the links' missed counts
/// (6.7+) and the programs' recursion misses; `None` where the kernel tells neither.
fn missed(links: &[KprobeMultiLink], loaded: &LoadedObject, method: Method) -> Option<u64> {
    let from_links = links.iter().filter_map(|l| l.info().ok().and_then(|i| i.missed));
    let names: &[&str] = match method {
        Method::Session => &[PROGRAMS.session],
        Method::Pair(_) => &[PROGRAMS.entry, PROGRAMS.ret],
    };
    let from_programs =
        names.iter().filter_map(|n| loaded.program(n)).filter_map(|p| p.info().ok().map(|i| i.recursion_misses));
    let all: Vec<u64> = from_links.chain(from_programs).collect();
    (!all.is_empty()).then(|| all.iter().sum())
}

/// The end of a run.
struct Summary<'a> {
    events: u64,
    per_function: &'a [u64],
    functions: &'a [Function],
    /// Functions attached: those selected but the ones the kernel refused.
    attached: usize,
    lost: u64,
    missed: Option<u64>,
    mode: &'static str,
    ending: Ending,
    attach: Duration,
    ran: Duration,
    /// `None` while a slow detach waits for the summary to be printed first.
    detach: Option<Duration>,
}

impl Summary<'_> {
    fn text(&self) -> String {
        let called = self.per_function.iter().filter(|&&c| c > 0).count();
        let mut s = format!(
            "\n{} events from {} of {}, lost {} events.\nAttached in {} ({}), ran {}{}{}\n",
            self.events,
            called,
            output::functions(self.attached),
            self.lost,
            duration::human(self.attach),
            self.mode,
            duration::human(self.ran),
            match self.ending {
                Ending::Run(End::Duration) => String::new(),
                Ending::Run(End::Signal(sig)) => format!(" (ended by {})", signals::name(sig)),
                Ending::Limit => " (ended by --limit)".into(),
            },
            probe::detach_clause(self.detach),
        );
        if self.lost > 0 {
            s.push_str("Events are lost when there is no room for them in the ring buffer: raise --buffer-size or narrow the filters.\n");
        }
        if let Some(m) = self.missed.filter(|&m| m > 0) {
            s.push_str(&format!("{m} calls were missed (the kernel skips probes that would recurse).\n"));
        }
        s
    }

    fn json(&self, mode: &'static str) -> SummaryEvent<'_> {
        let mut order: Vec<usize> = (0..self.functions.len()).filter(|&i| self.per_function[i] > 0).collect();
        order.sort_by(|&a, &b| {
            self.per_function[b]
                .cmp(&self.per_function[a])
                .then_with(|| self.functions[a].name.cmp(&self.functions[b].name))
        });
        SummaryEvent {
            event: "summary",
            end: self.ending.json(),
            mode,
            events: self.events,
            lost: self.lost,
            missed: self.missed,
            attach_ms: duration::millis(self.attach),
            run_ms: duration::millis(self.ran),
            detach_ms: duration::millis(self.detach.unwrap_or_default()),
            functions: order
                .into_iter()
                .map(|i| FunctionJson {
                    function: &self.functions[i].name,
                    module: module_name(&self.functions[i]),
                    events: self.per_function[i],
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
    /// Functions the kernel refused, left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<&'a str>,
}

#[derive(Debug, Serialize)]
struct SummaryEvent<'a> {
    event: &'static str,
    /// `duration`, `SIGINT`, `SIGTERM` or `limit`.
    end: &'static str,
    mode: &'static str,
    events: u64,
    /// Calls that passed the filters but found the ring buffer full.
    lost: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    missed: Option<u64>,
    attach_ms: f64,
    run_ms: f64,
    detach_ms: f64,
    /// The functions with events, most first.
    functions: Vec<FunctionJson<'a>>,
}

#[derive(Debug, Serialize)]
struct FunctionJson<'a> {
    function: &'a str,
    module: &'a str,
    events: u64,
}

#[cfg(test)]
mod tests;
