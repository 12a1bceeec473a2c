//! What the benchmark binary prints (bench/src/report.rs and its callers), typed: one JSON
//! object per line, either a series of samples or, with `group` "info" or "error", facts
//! about the run. The lines are kept as printed too, for the JSON file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One series of samples (`report::Series` in the bench).
#[derive(Debug, Clone, Deserialize)]
pub struct Series {
    /// What is measured: `attach`, `attach-detach`, `load`, `listing`, `per_call`, `cli`, ...
    pub group: String,
    /// A pattern, an object, a syscall loop, a command.
    pub case: String,
    /// Which implementation or metric: `multiprobe`, `libbpf-cold`, `floor`, `peak_rss_kib`, ...
    #[serde(rename = "impl")]
    pub imp: String,
    /// Functions involved, where it applies.
    #[serde(default)]
    pub matches: Option<u64>,
    /// Raw samples (ns, ps or KiB as the bench's `unit` says).
    #[serde(default)]
    pub samples: Vec<f64>,
}

/// The VM (`info` case `machine`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Machine {
    /// The kernel's release (`uname -r`).
    pub kernel: Option<String>,
    /// Its CPUs.
    pub cpus: Option<u64>,
}

/// The size of the listing (`info` case `functions`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Functions {
    /// Traceable functions.
    pub traceable: Option<u64>,
    /// What `*` selects: less the deny list.
    pub all_selected: Option<u64>,
}

/// How busy the host was (`info` case `host`; written by xtask, not by the bench).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Host {
    /// The host's CPUs.
    pub host_cpus: Option<u64>,
    /// 1-minute load average before the first boot.
    pub loadavg_before: Option<f64>,
    /// And after the last.
    pub loadavg_after: Option<f64>,
}

impl Host {
    /// The record as the bench would print it.
    pub fn record(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("a struct of numbers serializes");
        v["group"] = "info".into();
        v["case"] = "host".into();
        v["impl"] = "".into();
        v
    }
}

/// A file's size (`info` cases `listing <case>` and `vmlinux btf`).
#[derive(Debug, Clone, Default, Deserialize)]
struct Bytes {
    bytes: Option<u64>,
}

/// What a per-call case counted (`info` case `per_call <case>`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PerCall {
    /// The probed function, or `*sys_* (N functions)`.
    pub function: Option<String>,
    /// The function whose counter is checked.
    pub counted_function: Option<String>,
    /// Calls the loop made while each program was attached, in all.
    pub calls_made: Option<u64>,
    /// What count's cookie mode counted.
    pub counted_cookie: Option<u64>,
    /// What its address mode counted (`None` where it could not run).
    pub counted_address: Option<u64>,
    /// What `count --by comm`'s and `--by kstack`'s programs counted.
    pub counted_by_comm: Option<u64>,
    pub counted_by_kstack: Option<u64>,
}

/// One run of the CLI (`info` case `cli <case>`, one per repetition).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CliRun {
    /// Its `attached.lookup`: `address` or `cookie` (`count` only).
    pub lookup: Option<String>,
}

/// One run of `trace` or bpftrace (`info` cases `trace getppid`, one per repetition and
/// tool, and `trace paced`, one per rate and tool).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TraceRun {
    /// `trace`, `bpftrace`, `bpftrace-entry` (`count` and `none` runs carry no events).
    #[serde(rename = "impl", default)]
    pub imp: String,
    /// The paced runs' offered rate, calls per second.
    pub rate: Option<u64>,
    /// Calls the loop made while the tool ran.
    pub calls_made: Option<u64>,
    /// Events the tool printed, and those it reported lost.
    pub events: Option<u64>,
    pub lost: Option<u64>,
}

/// The time of one boot's benchmark (`info` case `total`).
#[derive(Debug, Clone, Default, Deserialize)]
struct Total {
    seconds: Option<f64>,
}

/// Something that failed, and the run went on (`report::emit_error`).
#[derive(Debug, Clone, Deserialize)]
pub struct Failure {
    /// `<group> <case>`.
    pub case: String,
    /// The implementation.
    #[serde(rename = "impl", default)]
    pub imp: String,
    /// The error's message.
    #[serde(default)]
    pub error: String,
}

/// The group and case every record has.
#[derive(Debug, Deserialize)]
struct Head {
    #[serde(default)]
    group: String,
    #[serde(default)]
    case: String,
}

/// Every record of one kernel, typed; where a case repeats, the first counts.
#[derive(Debug, Default)]
pub struct Records {
    /// The records as printed, in order.
    pub raw: Vec<Value>,
    /// Every series, in order.
    pub series: Vec<Series>,
    /// The VM.
    pub machine: Option<Machine>,
    /// The listing's size.
    pub functions: Option<Functions>,
    /// The host.
    pub host: Option<Host>,
    /// File sizes by info case (`listing addrs`, `vmlinux btf`, ...).
    pub bytes: BTreeMap<String, u64>,
    /// By per-call case (the name after `per_call `).
    pub per_call: BTreeMap<String, PerCall>,
    /// By CLI case (the name after `cli `): its first run.
    pub cli: BTreeMap<String, CliRun>,
    /// The trace part's runs that carry events: the unpaced ones, and the paced ones.
    pub trace_runs: Vec<TraceRun>,
    pub trace_paced: Vec<TraceRun>,
    /// Each boot's benchmark time, s.
    pub boots: Vec<f64>,
    /// What failed.
    pub failures: Vec<Failure>,
}

impl Records {
    /// Types the records; one that does not fit its type is left out and named on stderr.
    pub fn parse(raw: Vec<Value>) -> Records {
        let mut r = Records::default();
        for v in &raw {
            if let Err(e) = r.add(v) {
                eprintln!("xtask: a bench record left out ({e}): {v}");
            }
        }
        r.raw = raw;
        r
    }

    fn add(&mut self, v: &Value) -> Result<(), serde_json::Error> {
        let head = Head::deserialize(v)?;
        match head.group.as_str() {
            "error" => self.failures.push(Failure::deserialize(v)?),
            "info" => self.add_info(&head.case, v)?,
            _ => self.series.push(Series::deserialize(v)?),
        }
        Ok(())
    }

    fn add_info(&mut self, case: &str, v: &Value) -> Result<(), serde_json::Error> {
        fn first<T>(slot: &mut Option<T>, value: T) {
            slot.get_or_insert(value);
        }
        match case {
            "machine" => first(&mut self.machine, Machine::deserialize(v)?),
            "functions" => first(&mut self.functions, Functions::deserialize(v)?),
            "host" => first(&mut self.host, Host::deserialize(v)?),
            "total" => self.boots.extend(Total::deserialize(v)?.seconds),
            "trace paced" => self.trace_paced.push(TraceRun::deserialize(v)?),
            _ if case.starts_with("trace ") => {
                let run = TraceRun::deserialize(v)?;
                if run.events.is_some() {
                    self.trace_runs.push(run);
                }
            }
            _ if case.starts_with("listing ") || case == "vmlinux btf" => {
                let bytes = Bytes::deserialize(v)?.bytes.unwrap_or(0);
                self.bytes.entry(case.to_string()).or_insert(bytes);
            }
            _ => {
                if let Some(c) = case.strip_prefix("per_call ") {
                    let p = PerCall::deserialize(v)?;
                    self.per_call.entry(c.to_string()).or_insert(p);
                } else if let Some(c) = case.strip_prefix("cli ") {
                    let run = CliRun::deserialize(v)?;
                    self.cli.entry(c.to_string()).or_insert(run);
                }
            }
        }
        Ok(())
    }
}
