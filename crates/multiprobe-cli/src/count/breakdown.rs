//! What `count --by` prints: keys grouped under their function (a table, or blocks with
//! stacks), the `breakdown` rows of the JSON events, folded stacks for flame graphs, and the
//! notes on calls whose key did not fit or whose stack was lost.

use std::collections::{BTreeMap, HashMap};

use multiprobe::symbols::Function;
use serde::Serialize;

use super::by::{By, Key, Snapshot, Tables};
use crate::error::CliError;
use crate::select::module_name;
use crate::stack::KernelSymbols;
use crate::table::{Align, Table};

/// Keys shown under each function unless `--top-keys` says otherwise.
pub const TOP_KEYS: usize = 10;

/// Kernel stacks of a snapshot, read from the stack map and symbolized.
#[derive(Debug, Default)]
pub struct Stacks {
    /// Frames innermost first: (`name+0xoff [module]`, function name if known).
    frames: HashMap<u32, Vec<(String, Option<String>)>>,
}

impl Stacks {
    /// Reads every stack `snapshot` names and symbolizes them against kallsyms read once;
    /// where it cannot be read (or hides its addresses) every frame stays in hex.
    pub fn read(tables: &Tables, snapshot: &Snapshot) -> Result<Stacks, CliError> {
        let mut raw: HashMap<u32, Vec<u64>> = HashMap::new();
        for id in snapshot.rows.iter().filter_map(|r| r.key.stack.flatten()) {
            if let std::collections::hash_map::Entry::Vacant(e) = raw.entry(id) {
                e.insert(tables.stack(id)?);
            }
        }
        let symbols = KernelSymbols::read().unwrap_or_default();
        Ok(Stacks::from_addresses(raw, &symbols))
    }

    pub fn from_addresses(raw: HashMap<u32, Vec<u64>>, symbols: &KernelSymbols) -> Stacks {
        let frames = raw
            .into_iter()
            .map(|(id, addrs)| {
                let frames = addrs
                    .iter()
                    .map(|&a| match symbols.frame(a) {
                        Some(f) => (f.to_string(), Some(f.name.into_owned())),
                        None => (format!("{a:#x}"), None),
                    })
                    .collect();
                (id, frames)
            })
            .collect();
        Stacks { frames }
    }

    /// Frames of a key's stack as text, innermost first; `None` when the stack was lost.
    fn texts(&self, stack: Option<u32>) -> Option<Vec<&str>> {
        let id = stack?;
        Some(self.frames.get(&id).map(|f| f.iter().map(|(t, _)| t.as_str()).collect()).unwrap_or_default())
    }

    /// Frame names outermost first for a folded line, ending in `function` (unless the
    /// innermost frame is the function itself, as where the probe fires on its entry).
    fn folded(&self, stack: Option<u32>, function: &str) -> Vec<String> {
        let Some(id) = stack else { return vec!["[stack_lost]".into(), function.into()] };
        let frames = self.frames.get(&id).map(Vec::as_slice).unwrap_or_default();
        let mut names: Vec<String> =
            frames.iter().rev().map(|(text, name)| name.clone().unwrap_or_else(|| text.clone())).collect();
        if frames.first().and_then(|(_, n)| n.as_deref()) != Some(function) {
            names.push(function.into());
        }
        names
    }
}

/// A function (index), its calls, and its keys with their calls, most first.
type Group<'k> = (usize, u64, Vec<(&'k Key, u64)>);

/// The breakdown of a run or an interval.
pub struct Breakdown<'a> {
    pub functions: &'a [Function],
    pub snapshot: &'a Snapshot,
    pub stacks: &'a Stacks,
    pub keys: &'a [By],
    pub max_keys: u32,
    pub top_keys: usize,
    pub secs: f64,
}

impl Breakdown<'_> {
    /// Keys of each function, most calls first, functions by total calls.
    fn groups(&self, top: Option<usize>) -> Vec<Group<'_>> {
        let totals = self.snapshot.totals();
        let mut by_func: BTreeMap<usize, Vec<(&Key, u64)>> = BTreeMap::new();
        for r in self.snapshot.rows.iter().filter(|r| r.calls > 0) {
            by_func.entry(r.key.func).or_default().push((&r.key, r.calls));
        }
        let mut order: Vec<usize> = (0..self.functions.len()).filter(|&i| totals[i] > 0).collect();
        order.sort_by(|&a, &b| {
            totals[b].cmp(&totals[a]).then_with(|| self.functions[a].name.cmp(&self.functions[b].name))
        });
        order
            .into_iter()
            .take(top.unwrap_or(usize::MAX))
            .map(|f| {
                let mut keys = by_func.remove(&f).unwrap_or_default();
                keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                (f, totals[f], keys)
            })
            .collect()
    }

    /// The grouped table (or, with stacks, one block per function), then the notes.
    pub fn text(&self, top: Option<usize>) -> String {
        let mut s = if self.keys.contains(&By::Kstack) { self.blocks(top) } else { self.table(top) };
        s.push_str(&self.notes());
        s
    }

    fn table(&self, top: Option<usize>) -> String {
        let mut columns = vec![("FUNCTION", Align::Left), ("MODULE", Align::Left)];
        for k in self.keys {
            columns.push(match k {
                By::Comm => ("COMM", Align::Left),
                By::Pid => ("PID", Align::Right),
                By::Tid => ("TID", Align::Right),
                By::Cpu => ("CPU", Align::Right),
                By::Kstack => ("STACK", Align::Left),
            });
        }
        columns.extend([("CALLS", Align::Right), ("RATE/s", Align::Right)]);
        let mut t = Table::new(&columns);
        let blank = self.keys.len();
        for (f, total, keys) in self.groups(top) {
            let func = &self.functions[f];
            let mut row = vec![func.name.clone(), module_name(func).into()];
            row.extend(std::iter::repeat_n(String::new(), blank));
            row.extend([total.to_string(), rate(total, self.secs)]);
            t.row(row);
            for (key, calls) in keys.iter().take(self.top_keys) {
                let mut row = vec![String::new(), String::new()];
                row.extend(self.keys.iter().map(|k| key_cell(key, *k)));
                row.extend([calls.to_string(), rate(*calls, self.secs)]);
                t.row(row);
            }
            let mut extra = |label: String, calls: u64| {
                let mut row = vec![String::new(), String::new(), label];
                row.extend(std::iter::repeat_n(String::new(), blank - 1));
                row.extend([calls.to_string(), rate(calls, self.secs)]);
                t.row(row);
            };
            if keys.len() > self.top_keys {
                let rest = &keys[self.top_keys..];
                extra(format!("({} more)", rest.len()), rest.iter().map(|(_, c)| c).sum());
            }
            if self.snapshot.overflow[f] > 0 {
                extra("(did not fit)".into(), self.snapshot.overflow[f]);
            }
        }
        t.render()
    }

    fn blocks(&self, top: Option<usize>) -> String {
        let mut s = String::new();
        for (f, total, keys) in self.groups(top) {
            // A blank line between functions (none after the last: the summary adds its own).
            if !s.is_empty() {
                s.push('\n');
            }
            let func = &self.functions[f];
            s.push_str(&format!(
                "{} ({}): {total} calls, {}/s\n",
                func.name,
                module_name(func),
                rate(total, self.secs)
            ));
            let width = keys.first().map_or(1, |(_, c)| c.to_string().len());
            for (key, calls) in keys.iter().take(self.top_keys) {
                let who: Vec<String> = self
                    .keys
                    .iter()
                    .filter(|&&k| k != By::Kstack)
                    .map(|&k| format!("{}={}", key_name(k), key_cell(key, k)))
                    .collect();
                s.push_str(&format!("  {calls:>width$}  {}\n", who.join(" ")).replace(" \n", "\n"));
                match self.stacks.texts(key.stack.flatten()) {
                    Some(frames) => {
                        for frame in frames {
                            s.push_str(&format!("  {:width$}    {frame}\n", ""));
                        }
                    }
                    None => s.push_str(&format!("  {:width$}    [stack lost]\n", "")),
                }
            }
            if keys.len() > self.top_keys {
                let rest = &keys[self.top_keys..];
                let calls: u64 = rest.iter().map(|(_, c)| c).sum();
                s.push_str(&format!("  ({} more stacks: {calls} calls)\n", rest.len()));
            }
            if self.snapshot.overflow[f] > 0 {
                s.push_str(&format!("  ({} calls in keys that did not fit)\n", self.snapshot.overflow[f]));
            }
        }
        s
    }

    /// Calls in keys that did not fit and stacks lost, in total, with what to do.
    pub fn notes(&self) -> String {
        let mut s = String::new();
        let overflow: u64 = self.snapshot.overflow.iter().sum();
        if overflow > 0 {
            s.push_str(&format!(
                "{overflow} calls in keys that did not fit (the kernel keeps {} keys): counted in their function's total; raise --max-keys to see them\n",
                self.max_keys
            ));
        }
        let lost: u64 = self.snapshot.lost_stacks.iter().sum();
        if lost > 0 {
            s.push_str(&format!(
                "{lost} calls whose kernel stack the stack map lost (full, or two stacks in one bucket): shown as [stack lost]\n"
            ));
        }
        s
    }

    /// `[comm;]outermost;...;innermost;function COUNT`, one line per stack, sorted.
    pub fn folded(&self) -> String {
        let mut lines: BTreeMap<String, u64> = BTreeMap::new();
        for r in self.snapshot.rows.iter().filter(|r| r.calls > 0) {
            let function = &self.functions[r.key.func].name;
            let mut parts: Vec<String> = r.key.comm.iter().map(|c| c.replace([';', ' '], "_")).collect();
            parts.extend(self.stacks.folded(r.key.stack.flatten(), function).into_iter().map(|f| f.replace(' ', "_")));
            *lines.entry(parts.join(";")).or_default() += r.calls;
        }
        lines.into_iter().map(|(stack, calls)| format!("{stack} {calls}\n")).collect()
    }

    /// The JSON form: every key of every function, most calls first, and the notes' numbers.
    pub fn json(&self) -> BreakdownJson<'_> {
        let rows = self
            .groups(None)
            .into_iter()
            .flat_map(|(f, _, keys)| keys.into_iter().map(move |(k, c)| (f, k, c)))
            .map(|(f, key, calls)| RowJson {
                function: &self.functions[f].name,
                module: module_name(&self.functions[f]),
                calls,
                comm: key.comm.as_deref(),
                pid: key.pid,
                tid: key.tid,
                cpu: key.cpu,
                stack: key.stack.map(|s| self.stacks.texts(s)),
            })
            .collect();
        BreakdownJson {
            breakdown: rows,
            keys_not_fit_calls: self.snapshot.overflow.iter().sum(),
            lost_stack_calls: self.snapshot.lost_stacks.iter().sum(),
        }
    }
}

/// What `--by` adds to the `summary` and `interval` events.
#[derive(Debug, Serialize)]
pub struct BreakdownJson<'a> {
    /// Calls per function and key.
    pub breakdown: Vec<RowJson<'a>>,
    /// Calls whose key did not fit in the kernel's table (counted in the functions' calls).
    pub keys_not_fit_calls: u64,
    /// Calls whose stack the stack map lost (rows with `"stack": null`).
    pub lost_stack_calls: u64,
}

#[derive(Debug, Serialize)]
pub struct RowJson<'a> {
    function: &'a str,
    module: &'a str,
    calls: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<u32>,
    /// Frames innermost first; `null` when the stack map lost the stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<Option<Vec<&'a str>>>,
}

fn rate(calls: u64, secs: f64) -> String {
    if secs > 0.0 { format!("{:.1}", calls as f64 / secs) } else { "0.0".into() }
}

fn key_name(k: By) -> &'static str {
    match k {
        By::Comm => "comm",
        By::Pid => "pid",
        By::Tid => "tid",
        By::Cpu => "cpu",
        By::Kstack => "stack",
    }
}

fn key_cell(key: &Key, k: By) -> String {
    match k {
        By::Comm => key.comm.clone().unwrap_or_default(),
        By::Pid => key.pid.map(|v| v.to_string()).unwrap_or_default(),
        By::Tid => key.tid.map(|v| v.to_string()).unwrap_or_default(),
        By::Cpu => key.cpu.map(|v| v.to_string()).unwrap_or_default(),
        By::Kstack => match key.stack {
            Some(Some(id)) => format!("#{id}"),
            Some(None) => "[stack lost]".into(),
            None => String::new(),
        },
    }
}

#[cfg(test)]
#[path = "breakdown_tests.rs"]
mod tests;
