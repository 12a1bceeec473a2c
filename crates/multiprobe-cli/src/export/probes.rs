//! The exporter's probes: `count`'s program on the selected functions and, with
//! `--latency`, `latency`'s on the others, attached with those commands' own code and read
//! in one batch per map at each scrape.

use std::sync::Arc;

use multiprobe::kprobe_multi::KprobeMultiLink;
use multiprobe::symbols::{Function, Listing};
use multiprobe::{LoadedObject, Map, Program};

use super::metrics::{Latency, ProbeValues, Snapshot};
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
    /// Always there: the main patterns.
    pub calls: CallProbe,
    /// With `--latency`.
    pub latency: Option<LatencyProbe>,
    kernel: String,
}

impl CallProbe {
    /// Loads and attaches the counting program to `functions`, as `count` does.
    pub fn attach(
        strategy: Strategy,
        functions: &[Function],
        listing: &Listing,
        stop: &Stop,
    ) -> Result<CallProbe, CliError> {
        let (loaded, slots) = count::load_for(strategy, functions, None, listing)?;
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
        Ok(CallProbe { counters: Counters::new(map, mask), functions, program, link })
    }

    /// How many functions it is attached to.
    pub fn len(&self) -> usize {
        self.functions.len()
    }

    fn read(&self) -> Result<ProbeValues<u64>, CliError> {
        Ok(ProbeValues {
            probe: "calls",
            functions: self.functions.clone(),
            values: self.counters.read()?,
            missed: count::missed(&self.link, &self.program),
        })
    }

    fn into_links(self) -> Vec<KprobeMultiLink> {
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
        // The release never changes while the process runs: read it once.
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| r.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Probes { calls, latency, kernel }
    }

    /// Every value, now: one batched read per map, no lock held (the probes take none of
    /// ours, and the kernel's per-CPU arrays are read without stopping them).
    pub fn snapshot(&self) -> Result<Snapshot, CliError> {
        Ok(Snapshot {
            kernel: self.kernel.clone(),
            calls: self.calls.read()?,
            latency: self.latency.as_ref().map(LatencyProbe::read).transpose()?,
        })
    }

    /// The links, in the order to drop them: entry links before return links, so calls in
    /// flight still find their start time.
    pub fn into_links(self) -> Vec<KprobeMultiLink> {
        let mut links = self.calls.into_links();
        links.extend(self.latency.map(LatencyProbe::into_links).unwrap_or_default());
        links
    }
}
