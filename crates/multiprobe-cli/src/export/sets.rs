//! The probe sets an exporter runs (one from the flags, or those of `--config`), and how they
//! keep up with the machine: modules that load or unload, and the config file reloaded on
//! SIGHUP (unchanged sets keep their probes and counts, removed ones are detached, new and
//! changed ones attached).
//!
//! The sets sit behind a mutex that only scrapes and these changes take, never the probes;
//! attaching and detaching happen outside it, so scrapes go on meanwhile.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use multiprobe::symbols::{Listing, Selection};

use super::config::SetSpec;
use super::metrics::{SetValues, Snapshot};
use super::modules::Change;
use super::probes::{CallProbe, LatencyProbe, Probes};
use crate::error::CliError;
use crate::latency;
use crate::output;
use crate::probe::{self, Strategy};
use crate::select::{self, SelectArgs};
use crate::signals::Stop;

/// How sets are attached: the same for every set of a run.
pub struct Attacher<'a> {
    /// kprobe_multi or the per-function fallback, chosen once.
    pub strategy: Strategy,
    /// `--no-session`: latency from an entry/return pair even with sessions.
    pub no_session: bool,
    /// `--no-fallback`: fail without kprobe_multi.
    pub no_fallback: bool,
    /// The traceable functions, read again when modules change.
    pub listing: &'a Listing,
    /// Signals, which cancel a slow per-function attach.
    pub stop: &'a Stop,
}

/// One probe set, attached.
pub struct ProbeSet {
    /// What it was made from (compared on reload).
    pub spec: SetSpec,
    /// The labels every series of the set carries: `set` and the extra labels with
    /// `--config`, none for the flags' set.
    labels: Vec<(String, String)>,
    /// The calls' selection, for modules loaded later.
    selection: Selection,
    probes: Probes,
}

impl Attacher<'_> {
    /// Resolves and attaches a set. `named`: with the `set` label (config files).
    pub fn attach(&self, spec: SetSpec, named: bool) -> Result<ProbeSet, CliError> {
        let select = SelectArgs { exclude: spec.exclude.clone(), no_deny_list: spec.no_deny_list };
        let selection = select::selection(&spec.patterns, &select);
        let calls = select::resolve(&selection, self.listing)?.functions;
        let latency = if spec.latency.is_empty() {
            None
        } else {
            let method = latency::choose(self.no_session, self.no_fallback)?;
            let functions = select::resolve(&select::selection(&spec.latency, &select), self.listing)?.functions;
            Some((method, functions))
        };
        let calls = CallProbe::attach(self.strategy, &calls, self.listing, self.stop)?;
        // A failure here drops (detaches) the counting probe on the way out.
        let latency = latency.map(|(m, f)| LatencyProbe::attach(m, f, self.listing, self.stop)).transpose()?;
        let mut labels = Vec::new();
        if named {
            labels.push(("set".to_string(), spec.name.clone()));
            labels.extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(ProbeSet { spec, labels, selection, probes: Probes::new(calls, latency) })
    }
}

impl ProbeSet {
    /// Functions whose calls it counts.
    pub fn calls_len(&self) -> usize {
        self.probes.calls_len()
    }

    /// Functions whose latency it measures.
    pub fn latency_len(&self) -> usize {
        self.probes.latency.as_ref().map_or(0, LatencyProbe::len)
    }

    fn into_links(self) -> Vec<multiprobe::kprobe_multi::KprobeMultiLink> {
        self.probes.into_links()
    }
}

/// Every set of the exporter, shared by the server and the main loop.
pub struct Sets {
    sets: Mutex<Vec<ProbeSet>>,
    /// The running kernel's release, for `multiprobe_build_info`; it never changes.
    kernel: String,
}

impl Sets {
    /// The attached sets, ready to be scraped.
    pub fn new(sets: Vec<ProbeSet>) -> Sets {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| r.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Sets { sets: Mutex::new(sets), kernel }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<ProbeSet>> {
        self.sets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every value, now: one batched read per map. The lock is held for the reads so that a
    /// probe cannot be detached halfway through them; the BPF side never takes it.
    pub fn snapshot(&self) -> Result<Snapshot, CliError> {
        let sets = self.lock();
        let values = sets
            .iter()
            .map(|s| {
                let (calls, latency) = s.probes.read()?;
                Ok(SetValues { labels: s.labels.clone(), calls, latency })
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        Ok(Snapshot { kernel: self.kernel.clone(), sets: values, previous: None })
    }

    /// (calls, latency) function counts over all sets, for messages.
    pub fn lens(&self) -> (usize, usize) {
        let sets = self.lock();
        (sets.iter().map(ProbeSet::calls_len).sum(), sets.iter().map(ProbeSet::latency_len).sum())
    }

    /// Every link, in the order to drop them.
    pub fn into_links(self) -> Vec<multiprobe::kprobe_multi::KprobeMultiLink> {
        let sets = self.sets.into_inner().unwrap_or_else(|e| e.into_inner());
        sets.into_iter().flat_map(ProbeSet::into_links).collect()
    }

    /// Drops the functions of unloaded modules from the metrics (detaching their own
    /// probes) and attaches a probe to each set's matching functions of each module that
    /// loaded. A failure is a warning: the service goes on with what it has.
    pub fn follow_modules(&self, change: &Change, attacher: &Attacher) {
        for module in &change.unloaded {
            let mut own = Vec::new();
            let mut dropped = 0;
            for set in self.lock().iter_mut() {
                let (probes, n) = set.probes.module_unloaded(module);
                own.extend(probes);
                dropped += n;
            }
            // Detached outside the lock: scrapes go on meanwhile.
            probe::detach(own.into_iter().flat_map(CallProbe::into_links).collect());
            if dropped > 0 {
                eprintln!("module {module} unloaded: dropped {}", output::functions(dropped));
            }
        }
        if change.loaded.is_empty() {
            return;
        }
        // The listing is read again: its key holds the loaded modules.
        let all = match attacher.listing.read() {
            Ok(all) => all,
            Err(e) => {
                crate::error::warning(format_args!(
                    "{} loaded, but reading the traceable functions failed: {e}",
                    change.loaded.join(", ")
                ));
                return;
            }
        };
        let selections: Vec<(String, Selection)> =
            self.lock().iter().map(|s| (s.spec.name.clone(), s.selection.clone())).collect();
        for (name, selection) in selections {
            let functions = selection.select(&all);
            for module in &change.loaded {
                let theirs: Vec<_> =
                    functions.iter().filter(|f| f.module.as_deref() == Some(module.as_str())).cloned().collect();
                if theirs.is_empty() {
                    continue;
                }
                match CallProbe::attach(attacher.strategy, &theirs, attacher.listing, attacher.stop) {
                    Ok(probe) => {
                        eprintln!("module {module} loaded: attached to {}", output::functions(probe.len()));
                        let probe = probe.for_module(module);
                        let leftover = match self.lock().iter_mut().find(|s| s.spec.name == name) {
                            Some(set) => {
                                set.probes.add_module_probe(probe);
                                None
                            }
                            None => Some(probe),
                        };
                        if let Some(probe) = leftover {
                            probe::detach(probe.into_links());
                        }
                    }
                    Err(e) => crate::error::warning(format_args!(
                        "module {module} loaded, but attaching failed: {}",
                        e.message
                    )),
                }
            }
        }
    }

    /// Reads the config file again and applies it: sets whose spec is unchanged keep their
    /// probes and counts, removed ones are detached, new and changed ones attached (a changed
    /// set starts counting from zero). A file with an error changes nothing; a set that fails
    /// to attach keeps its running version, if any.
    pub fn reload(&self, path: &Path, attacher: &Attacher) {
        let specs = match super::config::load(path) {
            Ok(specs) => specs,
            Err(e) => {
                crate::error::warning(format_args!("SIGHUP: {}; the running sets stay", e.message));
                return;
            }
        };
        let running: Vec<SetSpec> = self.lock().iter().map(|s| s.spec.clone()).collect();
        let mut attached = Vec::new();
        for spec in specs.iter().filter(|s| !running.contains(s)) {
            match attacher.attach(spec.clone(), true) {
                Ok(set) => attached.push(set),
                Err(e) => crate::error::warning(format_args!("SIGHUP: set {} not attached: {}", spec.name, e.message)),
            }
        }
        let (mut kept, added) = (0, attached.len());
        let removed = {
            let mut sets = self.lock();
            let mut old = std::mem::take(&mut *sets);
            for spec in &specs {
                let take = |list: &mut Vec<ProbeSet>, same: &dyn Fn(&ProbeSet) -> bool| {
                    list.iter().position(same).map(|at| list.remove(at))
                };
                if let Some(set) = take(&mut old, &|s| &s.spec == spec) {
                    kept += 1;
                    sets.push(set);
                } else if let Some(set) = take(&mut attached, &|s| &s.spec == spec) {
                    sets.push(set);
                } else if let Some(set) = take(&mut old, &|s| s.spec.name == spec.name) {
                    // Its new version failed to attach: the old one goes on.
                    sets.push(set);
                }
            }
            old
        };
        let dropped = removed.len();
        probe::detach(removed.into_iter().flat_map(ProbeSet::into_links).collect());
        eprintln!(
            "reloaded {}: {kept} set{} unchanged, {added} attached, {dropped} detached",
            path.display(),
            if kept == 1 { "" } else { "s" }
        );
    }
}
