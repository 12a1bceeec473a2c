//! `latency --by comm|pid`: a histogram per function and key besides the per-function
//! ones, from a bounded table in the kernel (`--max-keys`); calls whose key did not fit are
//! counted per function and reported, never dropped silently.

use std::collections::HashMap;

use clap::{Args, ValueEnum};
use multiprobe::Map;
use multiprobe::symbols::Function;

use super::{PerCpu, Row, add_cpus};
use crate::error::CliError;

/// (function, key) histograms the kernel keeps unless `--max-keys` says otherwise.
pub const DEFAULT_MAX_KEYS: u32 = 1024;
/// The most `--max-keys` takes: each key holds a histogram (528 bytes) per CPU.
const MAX_MAX_KEYS: u32 = 16384;

/// What latencies can be broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum By {
    /// The calling task's name.
    Comm,
    /// The calling process id.
    Pid,
}

/// The options of `latency` that break calls down.
#[derive(Debug, Clone, Args)]
pub struct ByArgs {
    /// Also a histogram per function and KEY (repeatable: `--by comm --by pid`).
    #[arg(long, value_enum, value_name = "KEY")]
    pub by: Vec<By>,
    /// Most (function, key) histograms the kernel keeps with --by (default 1024, at most
    /// 16384); calls whose key does not fit are counted per function and reported.
    #[arg(long, value_name = "N", requires = "by", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_MAX_KEYS)))]
    pub max_keys: Option<u32>,
}

impl ByArgs {
    /// The `by` bits of bpf/latency.bpf.c.
    pub fn bits(&self) -> u32 {
        self.by.iter().fold(0, |b, k| {
            b | match k {
                By::Comm => 1,
                By::Pid => 2,
            }
        })
    }

    pub fn max_keys(&self) -> u32 {
        self.max_keys.unwrap_or(DEFAULT_MAX_KEYS)
    }
}

/// One function and key's latencies.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub comm: Option<String>,
    pub pid: Option<u32>,
    pub row: Row,
}

impl KeyRow {
    fn id(&self) -> (&Function, Option<&str>, Option<u32>) {
        (&self.row.function, self.comm.as_deref(), self.pid)
    }

    /// `comm=cat pid=12`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.comm {
            parts.push(format!("comm={c}"));
        }
        if let Some(p) = self.pid {
            parts.push(format!("pid={p}"));
        }
        parts.join(" ")
    }
}

/// The per-key histograms at one read, and per function the calls whose key did not fit.
#[derive(Debug, Clone, Default)]
pub struct ByTable {
    pub rows: Vec<KeyRow>,
    pub overflow: HashMap<Function, u64>,
    pub max_keys: u32,
}

impl ByTable {
    /// Reads the kernel's tables; `keys` says which fields of the key are meaningful.
    pub fn read(
        functions: &[Function],
        table: &Map,
        overflow: &Map,
        keys: &[By],
        max_keys: u32,
    ) -> Result<ByTable, CliError> {
        let mut rows = Vec::new();
        for (raw, cpus) in table.dump_per_cpu::<[u32; 6], PerCpu>()? {
            let Some(f) = functions.get(raw[0] as usize) else { continue };
            let mut row = Row::empty(f.clone());
            add_cpus(&mut row, &cpus);
            let comm = keys.contains(&By::Comm).then(|| {
                let bytes: Vec<u8> = raw[2..6].iter().flat_map(|w| w.to_ne_bytes()).collect();
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                String::from_utf8_lossy(&bytes[..end]).into_owned()
            });
            rows.push(KeyRow { comm, pid: keys.contains(&By::Pid).then_some(raw[1]), row });
        }
        let mut lost = HashMap::new();
        for (index, cpus) in overflow.dump_per_cpu::<u32, u64>()? {
            let n: u64 = cpus.iter().sum();
            if let Some(f) = functions.get(index as usize).filter(|_| n > 0) {
                lost.insert(f.clone(), n);
            }
        }
        Ok(ByTable { rows, overflow: lost, max_keys })
    }

    /// What happened since an earlier read.
    pub fn since(&self, earlier: &ByTable) -> ByTable {
        let before: HashMap<_, &Row> = earlier.rows.iter().map(|k| (k.id(), &k.row)).collect();
        let rows = self
            .rows
            .iter()
            .map(|k| KeyRow {
                comm: k.comm.clone(),
                pid: k.pid,
                row: super::report::since_row(&k.row, before.get(&k.id()).copied()),
            })
            .filter(|k| k.row.count() > 0)
            .collect();
        let overflow = self
            .overflow
            .iter()
            .map(|(f, n)| (f.clone(), n.saturating_sub(*earlier.overflow.get(f).unwrap_or(&0))))
            .filter(|(_, n)| *n > 0)
            .collect();
        ByTable { rows, overflow, max_keys: self.max_keys }
    }

    /// The keys of `function`, most calls first.
    pub fn of(&self, function: &Function) -> Vec<&KeyRow> {
        let mut keys: Vec<&KeyRow> =
            self.rows.iter().filter(|k| k.row.function == *function && k.row.count() > 0).collect();
        keys.sort_by(|a, b| b.row.count().cmp(&a.row.count()).then_with(|| (&a.comm, a.pid).cmp(&(&b.comm, b.pid))));
        keys
    }

    /// Calls whose key did not fit, in all.
    pub fn overflow_calls(&self) -> u64 {
        self.overflow.values().sum()
    }

    /// The note on keys that did not fit, if any did.
    pub fn note(&self) -> String {
        match self.overflow_calls() {
            0 => String::new(),
            n => format!(
                "{n} calls in keys that did not fit (the kernel keeps {} keys): in their function's histogram only; raise --max-keys to see them\n",
                self.max_keys
            ),
        }
    }
}
