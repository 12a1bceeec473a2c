//! `multiprobe count`: calls per function, from one program attached to every selected
//! function (one kprobe_multi link, or per-function kprobes where the kernel has none). Each
//! function has a slot in a per-CPU array of counters, found from its entry address (the
//! library's `AddressIndex`) or its attach cookie, and read once per interval; rates are
//! computed here, not in the kernel. With `--by`, another object counts per function and
//! key (`by.rs`, printed by `breakdown.rs`).

mod breakdown;
mod by;
mod report;

use std::time::{Duration, Instant};

use clap::Args;
use multiprobe::kprobe_multi::{KprobeMulti, KprobeMultiLink};
use multiprobe::symbols::{Function, Listing};
use multiprobe::{AddressIndex, Map, Object, Program};

use self::breakdown::{Breakdown, Stacks};
use self::by::{ByArgs, Snapshot, Tables};
use self::report::{AttachedEvent, Interval, Summary};
use crate::checked::Checked;
use crate::duration;
use crate::error::CliError;
use crate::output::{self, Output};
use crate::probe::{self, Strategy};
use crate::run::{self, RunArgs};
use crate::screen::{self, AltScreen};
use crate::select::TargetArgs;
use crate::signals::Stop;

/// The BPF object, built from bpf/count.bpf.c by `cargo xtask bpf`.
pub const OBJECT: &[u8] = include_bytes!("../../bpf/count.bpf.o");
pub(crate) const PROGRAM: &str = "count_calls";
pub(crate) const COUNTS: &str = "counts";
const SLOTS: &str = "slots";

/// Rows of the live table unless `--top` says otherwise.
const LIVE_ROWS: usize = 20;

#[derive(Debug, Args)]
pub struct CountArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Report every D while running (10ms at least). Default: every second on a terminal (a
    /// table redrawn in place), otherwise only the final summary.
    #[arg(short = 'i', long, value_name = "D", value_parser = Checked(duration::parse_interval), allow_hyphen_values = true)]
    pub interval: Option<Duration>,
    /// Show the N functions with the most calls (default: 20 while running, all at the end).
    #[arg(short = 't', long, value_name = "N")]
    pub top: Option<usize>,
    #[command(flatten)]
    pub by: ByArgs,
}

pub fn run(args: &CountArgs, listing: &Listing, out: &mut Output) -> Result<(), CliError> {
    let keys = args.by.keys()?;
    let stop = Stop::install()?;
    let strategy = probe::choose(args.run.no_fallback)?;
    let resolved = args.targets.resolve_with_kprobe_only(listing)?;
    // Functions kprobe_multi cannot take come last, each with a kprobe of its own, and are
    // found by cookie (a plain kprobe's function address is not the slot table's).
    let kprobes = !resolved.kprobe_only.is_empty();
    let mut functions = resolved.functions;
    functions.extend(resolved.kprobe_only.iter().cloned());
    let n = functions.len();

    let load_start = Instant::now();
    let (loaded, slots, program) = if keys.is_empty() {
        let (loaded, slots) = load_for(strategy, &functions, args.run.pid, listing, kprobes)?;
        (loaded, slots, PROGRAM)
    } else {
        let (loaded, slots) =
            by::load_for(strategy, &functions, args.run.pid, listing, &keys, args.by.max_keys(), kprobes)?;
        (loaded, slots, by::PROGRAM)
    };
    let load_time = load_start.elapsed();
    let prog = loaded.program(program).expect("the object has the program").clone();

    if stop.pending().is_some() {
        eprintln!("interrupted before attaching: nothing was attached");
        return Ok(());
    }
    // Link info reads the kernel's BTF (thousands of vfs_read calls from sysfs): read it now,
    // before attaching, so the summary's missed count does not show up in the counts.
    let _ = multiprobe::features::kprobe_multi_link_info();
    let spec = spec(strategy, &functions, slots.is_some(), listing).cancel_on(stop.flag()).kprobe_refused();
    let (link, attach_time) = probe::attach(n, || prog.attach_kprobe_multi(&spec), probe::describe_link)?;
    let mode = link.attach_mode();
    // From here on only what is attached: counters stay indexed by position (all functions).
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
            kprobe_only: link.kprobe_only().iter().map(report::KprobeOnlyJson::of).collect(),
        })?;
    }

    // Live reports: on a terminal every second by default; JSON and pipes only when asked.
    let interval = args.interval.or((out.tty && !args.run.json).then_some(Duration::from_secs(1)));
    if interval.is_none() && !args.run.json {
        eprintln!("counting calls of {} {}", output::functions(n), args.run.until());
    }
    let mut counts = if keys.is_empty() {
        Tally::Plain(Counters::new(loaded.map(COUNTS).expect("the object has the map").clone(), mask))
    } else {
        Tally::By { tables: Tables::new(&loaded, &keys, &mask), last: Snapshot::default() }
    };
    let top_keys = args.by.top_keys.unwrap_or(breakdown::TOP_KEYS);
    // The live table on the alternate screen; the summary goes to the normal one.
    let live = out.tty && !args.run.json && interval.is_some();
    let screen = if live { Some(AltScreen::enter(out)?) } else { None };
    let started = Instant::now();
    let mut last_tick = started;
    let end = run::run_until(&stop, started, args.run.duration, interval, || {
        let now = Instant::now();
        let (calls, totals, delta) = counts.advance()?;
        let secs = (now - last_tick).as_secs_f64();
        let report = Interval { functions: &functions, calls: &calls, totals: &totals, secs };
        last_tick = now;
        if let (Some(delta), Tally::By { tables, .. }) = (&delta, &counts) {
            let stacks = Stacks::read(tables, delta)?;
            let b = Breakdown {
                functions: &functions,
                snapshot: delta,
                stacks: &stacks,
                keys: &keys,
                max_keys: args.by.max_keys(),
                top_keys: if args.run.json { usize::MAX } else { top_keys },
                secs,
            };
            if args.run.json {
                let mut event = report.json(now - started);
                event.breakdown = Some(b.json());
                out.json(&event)?;
            } else if !args.by.folded {
                let header = format!("[{}]\n", duration::human(now - started));
                let text = format!("{header}{}\n", b.text(Some(args.top.unwrap_or(LIVE_ROWS))));
                out.text(&if out.tty { screen::frame(&text) } else { text })?;
            }
        } else if args.run.json {
            out.json(&report.json(now - started))?;
        } else if out.tty {
            let header = format!(
                "count: {} ({}), {} elapsed; Ctrl-C to stop\n\n",
                output::functions(n),
                probe::mode_text(mode),
                duration::human(now - started)
            );
            out.text(&screen::frame(&format!("{header}{}", report.table(args.top.unwrap_or(LIVE_ROWS)))))?;
        } else {
            let header = format!("[{}]\n", duration::human(now - started));
            out.text(&format!("{header}{}\n", report.table(args.top.unwrap_or(LIVE_ROWS))))?;
        }
        Ok(())
    })?;
    drop(screen);
    // The counts of the run itself: per-function kprobes can take seconds to detach, and
    // calls made meanwhile would inflate the rates.
    let (totals, last) = counts.read()?;
    let ran = started.elapsed();
    let missed = missed(&link, &prog);
    // Stacks are read before detaching: the stack map goes with the program.
    let stacks = match (&counts, &last) {
        (Tally::By { tables, .. }, Some(s)) => Stacks::read(tables, s)?,
        _ => Stacks::default(),
    };
    let breakdown = last.as_ref().map(|snapshot| Breakdown {
        functions: &functions,
        snapshot,
        stacks: &stacks,
        keys: &keys,
        max_keys: args.by.max_keys(),
        top_keys,
        secs: ran.as_secs_f64(),
    });
    // Per-function kprobes take seconds to detach: the text summary comes first, the detach
    // time after it.
    let slow_detach = probe::slow_detach(std::slice::from_ref(&link)) && !args.run.json && breakdown.is_none();
    if slow_detach {
        let early = Summary {
            functions: &functions,
            totals: &totals,
            mode,
            end,
            attach: attach_time,
            ran,
            detach: Duration::ZERO,
            missed,
            breakdown: None,
        };
        out.text(&early.text_before_detach(args.top))?;
    }
    let detach_time = probe::detach(vec![link]);
    if slow_detach {
        out.text(&probe::detached_line(detach_time))?;
        return Ok(());
    }

    let summary = Summary {
        functions: &functions,
        totals: &totals,
        mode,
        end,
        attach: attach_time,
        ran,
        detach: detach_time,
        missed,
        breakdown: breakdown.as_ref(),
    };
    if args.run.json {
        out.json(&summary.json())?;
    } else if let Some(b) = breakdown.as_ref().filter(|_| args.by.folded) {
        // Only the stacks on stdout, for a flame-graph tool to read; the rest on stderr.
        out.text(&b.folded())?;
        eprint!("{}{}", b.notes(), summary.footer());
    } else {
        out.text(&summary.text(args.top))?;
    }
    Ok(())
}

/// The object with one counter per function of `functions` (by position), for this kernel
/// and pid filter, and the slot table when counters are found by entry address.
pub(crate) fn load_for(
    strategy: Strategy,
    functions: &[Function],
    pid: Option<u32>,
    listing: &Listing,
    cookies_only: bool,
) -> Result<(multiprobe::LoadedObject, Option<AddressIndex>), CliError> {
    let slots = if cookies_only { None } else { slots_for(strategy, functions, listing) };
    let n = functions.len();
    match load(strategy, n, pid, slots.as_ref()) {
        Ok(loaded) => Ok((loaded, slots)),
        // The slot table is only a speed-up: where its map cannot be had (a memory limit on
        // a table of up to 32 MiB), counters are found by cookie.
        Err(_) if slots.is_some() => Ok((load(strategy, n, pid, None)?, None)),
        Err(e) => Err(e),
    }
}

/// The slot table for `functions` where a kprobe_multi link can find them by entry address.
/// Where they cannot (a set spanning modules, shared slots), cookies do, as JSON's
/// `attached.lookup` tells.
pub(crate) fn slots_for(strategy: Strategy, functions: &[Function], listing: &Listing) -> Option<AddressIndex> {
    match strategy {
        Strategy::KprobeMulti => {
            listing.entry_addresses(functions).ok().and_then(|e| AddressIndex::for_functions(functions, &e).ok())
        }
        Strategy::PerFunction => None,
    }
}

/// What to attach the counting program to: every function, found by entry address
/// (`by_address`) or by cookie = position. A function the kernel refuses is left out (and
/// named) rather than failing the set.
pub(crate) fn spec(strategy: Strategy, functions: &[Function], by_address: bool, listing: &Listing) -> KprobeMulti {
    let spec = if by_address {
        KprobeMulti::functions(functions.iter().cloned())
    } else {
        KprobeMulti::functions_with_cookies(functions.iter().cloned().zip(0u64..))
    };
    spec.fallback(strategy.fallback()).skip_rejected().listing(listing.clone())
}

/// The object with one counter per function, for this kernel and pid filter, and its slot
/// table filled when counters are found by address.
fn load(
    strategy: Strategy,
    functions: usize,
    pid: Option<u32>,
    slots: Option<&AddressIndex>,
) -> Result<multiprobe::LoadedObject, CliError> {
    let mut obj = Object::parse("count", OBJECT)?;
    let entries = u32::try_from(functions).map_err(|_| CliError::new(format!("{functions} functions are too many")))?;
    obj.map_mut(COUNTS).expect("the object has the map").set_max_entries(entries);
    obj.set_global("target_tgid", &pid.unwrap_or(0))?;
    if let Some(s) = slots {
        obj.map_mut(SLOTS).expect("the object has the map").set_max_entries(s.slot_count());
        obj.set_global("slot_base", &s.base())?;
    }
    obj.program_mut(PROGRAM).expect("the object has the program").set_kind(strategy.entry_kind());
    let loaded = obj.load()?;
    if let Some(s) = slots {
        let map = loaded.map(SLOTS).expect("the object has the map");
        map.update_batch(s.keys(), s.values(), multiprobe::UpdateFlags::Any)?;
    }
    Ok(loaded)
}

/// Runs the kernel skipped: the link's missed count (6.7+) plus the program's recursion misses.
pub(crate) fn missed(link: &KprobeMultiLink, prog: &Program) -> Option<u64> {
    let link_missed = link.info().ok().and_then(|i| i.missed);
    let recursion = prog.info().ok().map(|i| i.recursion_misses);
    match (link_missed, recursion) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// Calls per function in the interval, in total, and the breakdown of the interval.
type Advance = (Vec<u64>, Vec<u64>, Option<Snapshot>);

/// Calls per function, from the plain counters or the breakdown's tables.
enum Tally {
    Plain(Counters),
    By { tables: Tables, last: Snapshot },
}

impl Tally {
    /// Calls per attached function so far, and the breakdown's snapshot.
    fn read(&self) -> Result<(Vec<u64>, Option<Snapshot>), CliError> {
        match self {
            Tally::Plain(c) => Ok((c.read()?, None)),
            Tally::By { tables, .. } => {
                let s = tables.read()?;
                Ok((s.totals(), Some(s)))
            }
        }
    }

    /// Calls since the last call (per function), totals, and the breakdown of the calls since.
    fn advance(&mut self) -> Result<Advance, CliError> {
        match self {
            Tally::Plain(c) => {
                let (calls, totals) = c.advance()?;
                Ok((calls, totals, None))
            }
            Tally::By { tables, last } => {
                let now = tables.read()?;
                let delta = now.since(last);
                let totals = now.totals();
                *last = now;
                Ok((delta.totals(), totals, Some(delta)))
            }
        }
    }
}

/// The per-CPU counters, summed, and what they were at the last read.
pub(crate) struct Counters {
    map: Map,
    /// Which counters (indices of the functions selected) belong to attached functions.
    mask: Vec<bool>,
    last: Vec<u64>,
}

impl Counters {
    pub(crate) fn new(map: Map, mask: Vec<bool>) -> Counters {
        let attached = mask.iter().filter(|&&m| m).count();
        Counters { map, mask, last: vec![0; attached] }
    }

    /// Calls per attached function so far: one batched read of every CPU's counters.
    pub(crate) fn read(&self) -> Result<Vec<u64>, CliError> {
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
