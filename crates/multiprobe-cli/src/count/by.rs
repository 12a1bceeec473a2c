//! `count --by KEY`: calls per function and key (comm, pid, tid, cpu, kernel stack), from
//! bpf/breakdown.bpf.c, a separate object so plain `count` keeps its cheaper program. The
//! kernel keeps a bounded table of keys (`--max-keys`); calls whose key did not fit, and
//! stacks the stack map lost, are counted per function and reported, never dropped silently.

use std::collections::HashMap;

use clap::{Args, ValueEnum};
use multiprobe::symbols::Function;
use multiprobe::{AddressIndex, Map, Object};

use crate::error::CliError;
use crate::probe::Strategy;

/// The BPF object, built from bpf/breakdown.bpf.c by `cargo xtask bpf`.
pub const OBJECT: &[u8] = include_bytes!("../../bpf/breakdown.bpf.o");
pub(crate) const PROGRAM: &str = "count_by";

/// Keys the kernel keeps unless `--max-keys` says otherwise: as many as bcc's stackcount
/// keeps stacks, a few MiB of kernel memory.
pub const DEFAULT_MAX_KEYS: u32 = 10240;
/// The most `--max-keys` takes: the per-CPU table then holds some hundred MiB.
const MAX_MAX_KEYS: u32 = 1 << 20;
/// Stacks the stack map keeps at most (each 1016 bytes): 64 MiB.
const MAX_STACKS: u32 = 1 << 16;
/// Entries at most of the kernel side's per-CPU memory of each function's last key (48 bytes
/// each, per CPU): functions share an entry beyond that, at some cost, never a wrong count.
const MAX_RECENT: u32 = 1024;
/// Frames of a kernel stack (PERF_MAX_STACK_DEPTH), as the object's stack map is sized.
const STACK_DEPTH: usize = 127;

/// What calls can be broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum By {
    /// The calling task's name.
    Comm,
    /// The calling process (thread group) id.
    Pid,
    /// The calling thread id.
    Tid,
    /// The CPU the call ran on.
    Cpu,
    /// The kernel stack of the call.
    Kstack,
}

impl By {
    /// The bit the BPF program tests (`BY_*` in breakdown.bpf.c).
    fn bit(self) -> u32 {
        match self {
            By::Comm => 1,
            By::Pid => 2,
            By::Tid => 4,
            By::Cpu => 8,
            By::Kstack => 16,
        }
    }
}

/// The options of `count` that break calls down.
#[derive(Debug, Clone, Args)]
pub struct ByArgs {
    /// Break calls down by KEY as well as by function (repeatable: `--by comm --by kstack`).
    #[arg(long, value_enum, value_name = "KEY")]
    pub by: Vec<By>,
    /// Most distinct keys the kernel keeps with --by (default 10240, at most 1048576); calls
    /// whose key does not fit are counted per function and reported.
    #[arg(long, value_name = "N", requires = "by", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_MAX_KEYS)))]
    pub max_keys: Option<u32>,
    /// Keys shown under each function with --by (default 10; every key in --json).
    #[arg(long, value_name = "N", requires = "by")]
    pub top_keys: Option<usize>,
    /// Print folded stacks for flame graphs instead of the summary table, one line per stack:
    /// `[comm;]outermost;...;innermost;function COUNT`. Needs `--by kstack` (and `--by comm`
    /// at most besides).
    #[arg(long, requires = "by", conflicts_with = "json")]
    pub folded: bool,
}

impl ByArgs {
    /// The keys asked for, each once, in a fixed order, or an error for `--folded` with keys
    /// a folded line has no place for.
    pub fn keys(&self) -> Result<Vec<By>, CliError> {
        let mut keys = self.by.clone();
        keys.sort();
        keys.dedup();
        if self.folded {
            if !keys.contains(&By::Kstack) {
                return Err(CliError::new("--folded prints kernel stacks: it needs --by kstack")
                    .hint("add `--by kstack` (and `--by comm` to start each stack with the task's name)"));
            }
            if let Some(k) = keys.iter().find(|k| !matches!(k, By::Kstack | By::Comm)) {
                let name = k.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
                return Err(CliError::new(format!("--folded lines have no place for `--by {name}`")).hint(
                    "with --folded, break down by kstack and comm only; use the table or --json for the other keys",
                ));
            }
        }
        Ok(keys)
    }

    pub fn max_keys(&self) -> u32 {
        self.max_keys.unwrap_or(DEFAULT_MAX_KEYS)
    }
}

/// Loads the breakdown object for `functions` (by position), finding functions through the
/// slot table when given, else by cookie.
pub(crate) fn load(
    strategy: Strategy,
    functions: usize,
    pid: Option<u32>,
    slots: Option<&AddressIndex>,
    keys: &[By],
    max_keys: u32,
) -> Result<multiprobe::LoadedObject, CliError> {
    let mut obj = Object::parse("breakdown", OBJECT)?;
    let entries = u32::try_from(functions).map_err(|_| CliError::new(format!("{functions} functions are too many")))?;
    obj.map_mut("keys").expect("the object has the map").set_max_entries(max_keys);
    obj.map_mut("calls").expect("the object has the map").set_max_entries(max_keys);
    obj.set_global("max_keys", &max_keys)?;
    let recent = entries.clamp(1, MAX_RECENT).next_power_of_two();
    obj.map_mut("recent").expect("the object has the map").set_max_entries(recent);
    obj.set_global("recent_mask", &(recent - 1))?;
    obj.map_mut("overflow").expect("the object has the map").set_max_entries(entries);
    obj.map_mut("lost_stacks").expect("the object has the map").set_max_entries(entries);
    // Without --by kstack the stack map is never written: the smallest will do.
    let stacks = if keys.contains(&By::Kstack) { max_keys.min(MAX_STACKS) } else { 1 };
    obj.map_mut("stacks").expect("the object has the map").set_max_entries(stacks);
    obj.set_global("target_tgid", &pid.unwrap_or(0))?;
    obj.set_global("by", &keys.iter().fold(0u32, |b, k| b | k.bit()))?;
    if let Some(s) = slots {
        obj.map_mut("slots").expect("the object has the map").set_max_entries(s.slot_count());
        obj.set_global("slot_base", &s.base())?;
    }
    obj.program_mut(PROGRAM).expect("the object has the program").set_kind(strategy.entry_kind());
    let loaded = obj.load()?;
    if let Some(s) = slots {
        let map = loaded.map("slots").expect("the object has the map");
        map.update_batch(s.keys(), s.values(), multiprobe::UpdateFlags::Any)?;
    }
    Ok(loaded)
}

/// The key struct of breakdown.bpf.c as ten u32 words: func, pid, tid, cpu, stack, pad,
/// comm (16 bytes).
type RawKey = [u32; 10];

/// One key of the table: a function (index among the attached ones) and the keys asked for.
/// Ordered field by field, for a stable order among keys with as many calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub func: usize,
    pub comm: Option<String>,
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    pub cpu: Option<u32>,
    /// The stack map's id; `Some(None)` when the stack map lost the stack.
    pub stack: Option<Option<u32>>,
}

/// One key and its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: Key,
    pub calls: u64,
}

/// What the tables held at one read: calls per key, and per function the calls whose key
/// did not fit and those whose stack was lost (indexed like the attached functions).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub rows: Vec<Row>,
    pub overflow: Vec<u64>,
    pub lost_stacks: Vec<u64>,
}

impl Snapshot {
    /// Calls per function: its keys' calls plus those whose key did not fit.
    pub fn totals(&self) -> Vec<u64> {
        let mut t = self.overflow.clone();
        for r in &self.rows {
            if let Some(x) = t.get_mut(r.key.func) {
                *x += r.calls;
            }
        }
        t
    }

    /// This snapshot minus an earlier one: what happened in between.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let before: HashMap<&Key, u64> = earlier.rows.iter().map(|r| (&r.key, r.calls)).collect();
        let minus = |now: &[u64], then: &[u64]| -> Vec<u64> {
            now.iter().enumerate().map(|(i, n)| n.saturating_sub(then.get(i).copied().unwrap_or(0))).collect()
        };
        Snapshot {
            rows: self
                .rows
                .iter()
                .map(|r| Row { key: r.key.clone(), calls: r.calls.saturating_sub(*before.get(&r.key).unwrap_or(&0)) })
                .filter(|r| r.calls > 0)
                .collect(),
            overflow: minus(&self.overflow, &earlier.overflow),
            lost_stacks: minus(&self.lost_stacks, &earlier.lost_stacks),
        }
    }
}

/// The breakdown object's maps, read as snapshots.
pub struct Tables {
    keys_map: Map,
    calls: Map,
    overflow: Map,
    lost_stacks: Map,
    stacks: Map,
    keys: Vec<By>,
    /// Index among the attached functions of each selected function (None: not attached).
    position: Vec<Option<usize>>,
    attached: usize,
}

impl Tables {
    pub fn new(loaded: &multiprobe::LoadedObject, keys: &[By], mask: &[bool]) -> Tables {
        let map = |name: &str| loaded.map(name).expect("the object has the map").clone();
        let mut next = 0;
        let position = mask
            .iter()
            .map(|&m| {
                m.then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        Tables {
            keys_map: map("keys"),
            calls: map("calls"),
            overflow: map("overflow"),
            lost_stacks: map("lost_stacks"),
            stacks: map("stacks"),
            keys: keys.to_vec(),
            position,
            attached: next,
        }
    }

    /// The tables now: one batched read of each. The kernel gives each key a slot once and
    /// counts its calls at `calls[slot]`; the counters are read before the keys, so every
    /// call counted in this read has its key in it.
    pub fn read(&self) -> Result<Snapshot, CliError> {
        let has = |k: By| self.keys.contains(&k);
        let per_slot: HashMap<u32, u64> =
            self.calls.dump_per_cpu::<u32, u64>()?.into_iter().map(|(slot, cpus)| (slot, cpus.iter().sum())).collect();
        let mut rows = Vec::new();
        for (raw, slot) in self.keys_map.dump::<RawKey, u32>()? {
            let calls = per_slot.get(&slot).copied().unwrap_or(0);
            let Some(&Some(func)) = self.position.get(raw[0] as usize) else { continue };
            let comm = has(By::Comm).then(|| {
                let bytes: Vec<u8> = raw[6..10].iter().flat_map(|w| w.to_ne_bytes()).collect();
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                String::from_utf8_lossy(&bytes[..end]).into_owned()
            });
            let key = Key {
                func,
                comm,
                pid: has(By::Pid).then_some(raw[1]),
                tid: has(By::Tid).then_some(raw[2]),
                cpu: has(By::Cpu).then_some(raw[3]),
                stack: has(By::Kstack).then(|| (raw[4] as i32 >= 0).then_some(raw[4])),
            };
            rows.push(Row { key, calls });
        }
        Ok(Snapshot {
            rows,
            overflow: self.per_function(&self.overflow)?,
            lost_stacks: self.per_function(&self.lost_stacks)?,
        })
    }

    fn per_function(&self, map: &Map) -> Result<Vec<u64>, CliError> {
        let mut out = vec![0u64; self.attached];
        for (index, cpus) in map.dump_per_cpu::<u32, u64>()? {
            if let Some(&Some(i)) = self.position.get(index as usize) {
                out[i] = cpus.iter().sum();
            }
        }
        Ok(out)
    }

    /// The return addresses of stack `id`, innermost first (empty if the map lost it since).
    pub fn stack(&self, id: u32) -> Result<Vec<u64>, CliError> {
        let Some(bytes) = self.stacks.get_bytes(&id.to_ne_bytes())? else { return Ok(Vec::new()) };
        Ok(bytes
            .chunks_exact(8)
            .take(STACK_DEPTH)
            .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
            .take_while(|&a| a != 0)
            .collect())
    }
}

/// What loading needs besides the functions: the strategy's choice of slots, as `count`
/// makes it.
pub(crate) fn load_for(
    strategy: Strategy,
    functions: &[Function],
    pid: Option<u32>,
    listing: &multiprobe::symbols::Listing,
    keys: &[By],
    max_keys: u32,
    cookies_only: bool,
) -> Result<(multiprobe::LoadedObject, Option<AddressIndex>), CliError> {
    let slots = if cookies_only { None } else { super::slots_for(strategy, functions, listing) };
    let n = functions.len();
    match load(strategy, n, pid, slots.as_ref(), keys, max_keys) {
        Ok(loaded) => Ok((loaded, slots)),
        Err(_) if slots.is_some() => Ok((load(strategy, n, pid, None, keys, max_keys)?, None)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(func: usize, comm: &str) -> Key {
        Key { func, comm: Some(comm.into()), pid: None, tid: None, cpu: None, stack: None }
    }

    #[test]
    fn totals_include_keys_that_did_not_fit_and_intervals_subtract() {
        let then =
            Snapshot { rows: vec![Row { key: key(0, "a"), calls: 3 }], overflow: vec![0, 1], lost_stacks: vec![0, 0] };
        let now = Snapshot {
            rows: vec![Row { key: key(0, "a"), calls: 5 }, Row { key: key(1, "b"), calls: 2 }],
            overflow: vec![0, 4],
            lost_stacks: vec![0, 0],
        };
        assert_eq!(now.totals(), [5, 6]);
        let d = now.since(&then);
        assert_eq!(d.rows, [Row { key: key(0, "a"), calls: 2 }, Row { key: key(1, "b"), calls: 2 }]);
        assert_eq!(d.overflow, [0, 3]);
        assert_eq!(d.totals(), [2, 5]);
    }

    #[test]
    fn folded_needs_kstack_and_takes_comm_only() {
        let args = |by: &[By], folded| ByArgs { by: by.to_vec(), max_keys: None, top_keys: None, folded };
        assert_eq!(args(&[By::Kstack, By::Comm, By::Kstack], true).keys().unwrap(), [By::Comm, By::Kstack]);
        assert!(args(&[By::Comm], true).keys().unwrap_err().message.contains("needs --by kstack"));
        assert!(args(&[By::Kstack, By::Pid], true).keys().unwrap_err().message.contains("`--by pid`"));
        assert_eq!(args(&[By::Cpu, By::Pid], false).keys().unwrap(), [By::Pid, By::Cpu]);
    }
}
