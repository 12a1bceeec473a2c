//! The exporter's probes: `count`'s program on the selected functions and, with
//! `--latency`, `latency`'s on the others, attached with those commands' own code and read
//! in one batch per map at each scrape.
//!
//! Calls are counted by one probe for the functions selected at start and one more per
//! module that loaded later (its own object and link), so that a module coming or going
//! touches no other probe's counts.

use std::collections::BTreeSet;
use std::sync::Arc;

use multiprobe::kprobe_multi::KprobeMultiLink;
use multiprobe::symbols::{Function, Listing};
use multiprobe::{LoadedObject, Map, Program};

use super::metrics::{Latency, ProbeValues};
use crate::count::{self, Counters};
use crate::error::CliError;
use crate::latency::{self, Method};
use crate::probe::{self, Strategy};
use crate::signals::Stop;

/// Calls per function: `count`'s object and link.
pub struct CallProbe {
    counters: Counters,
    functions: Arc<[Function]>,
    program: Program,
    link: KprobeMultiLink,
    /// The module it was attached for when that module loaded, `None` for the start's set.
    module: Option<String>,
    /// Modules that unloaded since: their functions are gone (their kprobes with them, on
    /// the per-function fallback; a kprobe_multi link holds its modules, so there they can
    /// only go once their probe is dropped) and no longer reported.
    gone: BTreeSet<String>,
}

/// Latency per function: `latency`'s object and its link(s).
pub struct LatencyProbe {
    map: Map,
    /// Every function selected, in counter order (`latency::read` indexes by it).
    selected: Vec<Function>,
    mask: Vec<bool>,
    functions: Arc<[Function]>,
    /// Each link with its program, for the missed counts.
    links: Vec<(KprobeMultiLink, Program)>,
}

/// Both probes, and what a scrape needs besides.
pub struct Probes {
    /// Always at least one: the main patterns' functions at start, then one per module
    /// loaded since that has matching functions.
    pub calls: Vec<CallProbe>,
    /// With `--latency`.
    pub latency: Option<LatencyProbe>,
}

impl CallProbe {
    /// Loads and attaches the counting program to `functions`, as `count` does.
    pub fn attach(
        strategy: Strategy,
        functions: &[Function],
        listing: &Listing,
        stop: &Stop,
    ) -> Result<CallProbe, CliError> {
        let (loaded, slots) = count::load_for(strategy, functions, None, listing, false)?;
        let program = loaded.program(count::PROGRAM).expect("the object has the program").clone();
        let map = loaded.map(count::COUNTS).expect("the object has the map").clone();
        let spec = count::spec(strategy, functions, slots.is_some(), listing).cancel_on(stop.flag());
        let (link, _) = probe::attach(
            functions.len(),
            || program.attach_kprobe_multi(&spec),
            |l| format!("{}, calls", probe::mode_text(l.attach_mode())),
        )?;
        let mask = probe::attached_mask(functions, link.skipped());
        let functions = probe::masked(functions, &mask).into();
        Ok(CallProbe {
            counters: Counters::new(map, mask),
            functions,
            program,
            link,
            module: None,
            gone: BTreeSet::new(),
        })
    }

    /// The same probe, marked as the one for `module`'s functions.
    pub fn for_module(self, module: &str) -> CallProbe {
        CallProbe { module: Some(module.to_string()), ..self }
    }

    /// How many functions it is attached to (those of unloaded modules left out).
    pub fn len(&self) -> usize {
        self.functions.iter().filter(|f| !self.is_gone(f)).count()
    }

    fn is_gone(&self, f: &Function) -> bool {
        f.module.as_ref().is_some_and(|m| self.gone.contains(m))
    }

    fn read(&self) -> Result<ProbeValues<u64>, CliError> {
        let values = self.counters.read()?;
        let (functions, values) = if self.gone.is_empty() {
            (self.functions.clone(), values)
        } else {
            let (f, v): (Vec<Function>, Vec<u64>) = self
                .functions
                .iter()
                .zip(values)
                .filter(|(f, _)| !self.is_gone(f))
                .map(|(f, v)| (f.clone(), v))
                .unzip();
            (f.into(), v)
        };
        Ok(ProbeValues { probe: "calls", functions, values, missed: count::missed(&self.link, &self.program) })
    }

    /// Its link, to drop (detach).
    pub fn into_links(self) -> Vec<KprobeMultiLink> {
        vec![self.link]
    }
}

impl LatencyProbe {
    /// Loads and attaches `latency`'s program for `method` to `functions`.
    pub fn attach(
        method: Method,
        functions: Vec<Function>,
        listing: &Listing,
        stop: &Stop,
    ) -> Result<LatencyProbe, CliError> {
        let loaded: LoadedObject = latency::load(method, functions.len(), None)?;
        let cookies: Vec<(Function, u64)> = functions.iter().cloned().zip(0u64..).collect();
        let (links, _) = probe::attach(
            functions.len(),
            || latency::attach(method, &loaded, &latency::PROGRAMS, &cookies, listing, stop),
            |l| format!("{}, latency", latency::mode(method, l).0),
        )?;
        let refused: Vec<Function> = links.iter().flat_map(|l| l.skipped().iter().cloned()).collect();
        let mask = probe::attached_mask(&functions, &refused);
        let programs = latency::programs(method)
            .iter()
            .map(|name| loaded.program(name).expect("the object has the program").clone());
        Ok(LatencyProbe {
            map: loaded.map("latencies").expect("the object has the map").clone(),
            functions: probe::masked(&functions, &mask).into(),
            selected: functions,
            mask,
            links: links.into_iter().zip(programs).collect(),
        })
    }

    fn read(&self) -> Result<ProbeValues<Latency>, CliError> {
        let rows = probe::masked(&latency::read(&self.selected, &self.map)?, &self.mask);
        let missed = self.links.iter().map(|(l, p)| count::missed(l, p)).fold(None, |total, m| match (total, m) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        });
        Ok(ProbeValues {
            probe: "latency",
            functions: self.functions.clone(),
            values: rows.into_iter().map(|r| Latency { hist: r.hist, sum_ns: r.sum_ns }).collect(),
            missed,
        })
    }

    /// How many functions it is attached to.
    pub fn len(&self) -> usize {
        self.functions.len()
    }

    fn into_links(self) -> Vec<KprobeMultiLink> {
        self.links.into_iter().map(|(l, _)| l).collect()
    }
}

impl Probes {
    /// The attached probes, ready to be read.
    pub fn new(calls: CallProbe, latency: Option<LatencyProbe>) -> Probes {
        Probes { calls: vec![calls], latency }
    }

    /// Every value, now: one batched read per map, no lock held that the probes take (the
    /// kernel's per-CPU arrays are read without stopping them).
    pub fn read(&self) -> Result<(ProbeValues<u64>, Option<ProbeValues<Latency>>), CliError> {
        Ok((self.read_calls()?, self.latency.as_ref().map(LatencyProbe::read).transpose()?))
    }

    /// Every call probe's values as one list: the metrics do not tell the probes apart.
    fn read_calls(&self) -> Result<ProbeValues<u64>, CliError> {
        if let [only] = self.calls.as_slice() {
            return only.read();
        }
        let (mut functions, mut values, mut missed) = (Vec::new(), Vec::new(), None);
        for probe in &self.calls {
            let part = probe.read()?;
            functions.extend(part.functions.iter().cloned());
            values.extend(part.values);
            missed = match (missed, part.missed) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
            };
        }
        Ok(ProbeValues { probe: "calls", functions: functions.into(), values, missed })
    }

    /// How many functions the calls are counted for.
    pub fn calls_len(&self) -> usize {
        self.calls.iter().map(CallProbe::len).sum()
    }

    /// Adds the probe attached for a module that loaded.
    pub fn add_module_probe(&mut self, probe: CallProbe) {
        self.calls.push(probe);
    }

    /// Stops reporting `module`'s functions, which went away with it: returns its own probe,
    /// if it had one, for the caller to drop (detach) outside any lock, and how many functions
    /// were dropped in all.
    pub fn module_unloaded(&mut self, module: &str) -> (Vec<CallProbe>, usize) {
        let before = self.calls_len();
        let (own, kept): (Vec<CallProbe>, Vec<CallProbe>) =
            std::mem::take(&mut self.calls).into_iter().partition(|p| p.module.as_deref() == Some(module));
        self.calls = kept;
        for probe in &mut self.calls {
            probe.gone.insert(module.to_string());
        }
        let dropped = before - self.calls_len();
        (own, dropped)
    }

    /// The links, in the order to drop them: entry links before return links, so calls in
    /// flight still find their start time.
    pub fn into_links(self) -> Vec<KprobeMultiLink> {
        let mut links: Vec<KprobeMultiLink> = self.calls.into_iter().flat_map(CallProbe::into_links).collect();
        links.extend(self.latency.map(LatencyProbe::into_links).unwrap_or_default());
        links
    }
}
