//! The per-call, trace and CLI tables: what a probe costs each call of the probed function,
//! with count's two ways of finding its counter, what `trace` and bpftrace add to a call and
//! deliver, and the shipped command's own times and memory.

use std::fmt::Write as _;

use super::report::{Report, ms};

impl Report {
    /// Per-call overhead per syscall loop, and whether count counted exactly.
    pub(super) fn per_call_table(&self, md: &mut String) {
        let _ = writeln!(md, "\n#### Per-call overhead (ns per syscall, median (min))\n");
        md.push_str(
            "| loop | probed | no probe | empty | increment only | count, address mode | address / empty overhead | cookie only | count, cookie mode | cookie / empty overhead | counted exactly |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for case in self.cases("per_call") {
            let ns = |imp| match self.stat("per_call", &case, imp) {
                Some(s) => format!("{:.0} ({:.0})", s.median / 1000.0, s.min / 1000.0),
                None => "-".into(),
            };
            let info = self.records.per_call.get(&case);
            let function = info.and_then(|v| v.function.as_deref()).unwrap_or("?").replace('*', "\\*");
            let overhead =
                |imp| self.overhead_ratio(&case, imp).map_or("-".into(), |(r, min)| format!("{r:.2}x ({min:.2}x)"));
            let exact = info.map_or("-".into(), |v| {
                let made = v.calls_made.unwrap_or(0);
                let judge = |c: Option<u64>| match c {
                    Some(c) if c == made => "yes".to_string(),
                    Some(c) => format!("**no**: {c} of {made}"),
                    None => "-".into(),
                };
                format!(
                    "{}: address {}, cookie {}",
                    v.counted_function.as_deref().unwrap_or("?"),
                    judge(v.counted_address),
                    judge(v.counted_cookie)
                )
            });
            let _ = writeln!(
                md,
                "| {case} | {function} | {} | {} | {} | {} | {} | {} | {} | {} | {exact} |",
                ns("none"),
                ns("empty"),
                ns("increment"),
                ns("count-address"),
                overhead("count-address"),
                ns("cookie"),
                ns("count-cookie"),
                overhead("count-cookie"),
            );
        }
        md.push_str(
            "\nOverhead: (program - none) / (empty - none), on medians (on minimums). count = the CLI's object \
             (bpf/count.bpf.o), set up as the CLI sets it up: address mode (the CLI's choice with a kprobe_multi \
             link) = `bpf_get_func_ip` -> 16-byte slot -> counter index -> per-CPU counter, attached without \
             cookies; cookie mode (its fallback) = `bpf_get_attach_cookie` -> per-CPU counter. References \
             (bpf/bench.bpf.c): increment only = one per-CPU counter incremented, no lookup; cookie only = \
             `bpf_get_attach_cookie` alone. Counted exactly: the probed function's counter equals the calls the \
             loop made while the program was attached.\n",
        );
    }

    /// `count --by` per call: the breakdown programs against plain count and the empty
    /// program (only where the run measured them).
    pub(super) fn per_call_by_table(&self, md: &mut String) {
        let cases: Vec<String> =
            self.cases("per_call").into_iter().filter(|c| self.stat("per_call", c, "by-comm").is_some()).collect();
        if cases.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "\n#### `count --by` per call (ns per syscall, median (min); overhead relative to the empty program)\n"
        );
        md.push_str(
            "| loop | no probe | empty | count | count overhead | --by comm | --by comm overhead | --by kstack | --by kstack overhead | counted exactly |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for case in cases {
            let ns = |imp| match self.stat("per_call", &case, imp) {
                Some(s) => format!("{:.0} ({:.0})", s.median / 1000.0, s.min / 1000.0),
                None => "-".into(),
            };
            let overhead =
                |imp| self.overhead_ratio(&case, imp).map_or("-".into(), |(r, min)| format!("{r:.2}x ({min:.2}x)"));
            let info = self.records.per_call.get(&case);
            let exact = info.map_or("-".into(), |v| {
                let made = v.calls_made.unwrap_or(0);
                let judge = |c: Option<u64>| match c {
                    Some(c) if c == made => "yes".to_string(),
                    Some(c) => format!("**no**: {c} of {made}"),
                    None => "-".into(),
                };
                format!("comm {}, kstack {}", judge(v.counted_by_comm), judge(v.counted_by_kstack))
            });
            let _ = writeln!(
                md,
                "| {case} | {} | {} | {} | {} | {} | {} | {} | {} | {exact} |",
                ns("none"),
                ns("empty"),
                ns("count-address"),
                overhead("count-address"),
                ns("by-comm"),
                overhead("by-comm"),
                ns("by-kstack"),
                overhead("by-kstack"),
            );
        }
        md.push_str(
            "\nbreakdown = bpf/breakdown.bpf.o as `count --by` sets it up (address mode, 10240 keys): \
             --by comm = `bpf_get_current_comm` and a per-CPU hash lookup keyed by function and comm; \
             --by kstack = `bpf_get_stackid` (a kernel stack walk, a stack map insert) and the hash lookup.\n",
        );
    }

    /// `trace` against `count` and bpftrace per call, and the paced runs' deliveries.
    pub(super) fn trace_tables(&self, md: &mut String) {
        let Some(none) = self.stat("trace", "getppid", "none") else { return };
        let _ = writeln!(md, "\n#### `trace` per call (ns per getppid, median (min))\n");
        md.push_str("| tool | ns per call | added to the call | shown / lost per run |\n|---|---:|---:|---|\n");
        let label = |imp: &str| match imp {
            "none" => "no probe",
            "count" => "`count`",
            "trace" => "`trace --json --buffer-size 16M`",
            "bpftrace" => "bpftrace, what trace shows (kprobe + kretprobe, duration, retval)",
            "bpftrace-entry" => "bpftrace, entry only (`kprobe { printf(pid, tid, comm) }`)",
            _ => "?",
        };
        for imp in ["none", "count", "trace", "bpftrace", "bpftrace-entry"] {
            let Some(s) = self.stat("trace", "getppid", imp) else { continue };
            let added = if imp == "none" { String::new() } else { format!("{:.0}", (s.median - none.median) / 1000.0) };
            let runs: Vec<String> = self
                .records
                .trace_runs
                .iter()
                .filter(|r| r.imp == imp)
                .map(|r| format!("{} / {}", r.events.unwrap_or(0), r.lost.unwrap_or(0)))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {:.0} ({:.0}) | {added} | {} |",
                label(imp),
                s.median / 1000.0,
                s.min / 1000.0,
                runs.join(", ")
            );
        }
        if !self.records.trace_paced.is_empty() {
            let _ = writeln!(md, "\n#### Events delivered at a paced call rate (each tool as it ships)\n");
            md.push_str("| tool | offered calls/s | calls | shown | lost (reported) | neither |\n|---|---:|---:|---:|---:|---:|\n");
            for r in &self.records.trace_paced {
                let (made, shown, lost) = (r.calls_made.unwrap_or(0), r.events.unwrap_or(0), r.lost.unwrap_or(0));
                let _ = writeln!(
                    md,
                    "| {} | {} | {made} | {shown} | {lost} | {} |",
                    r.imp,
                    r.rate.unwrap_or(0),
                    made.saturating_sub(shown + lost)
                );
            }
        }
        md.push_str(
            "\nadded to the call: the tool's median minus no probe's. shown / lost: events printed and events the \
             tool reported lost; calls neither shown nor reported lost are silent drops. The per-call runs give \
             every tool room for every event of a run (trace `--buffer-size 16M`, bpftrace \
             `BPFTRACE_PERF_RB_PAGES=4096`), so that what a call costs includes delivering its event.\n",
        );
    }

    /// The CLI's runs, and the memory of its link-info feature check.
    pub(super) fn cli_table(&self, md: &mut String) {
        let cli_cases = self.cases("cli");
        if !cli_cases.is_empty() {
            let _ = writeln!(md, "\n#### The CLI (`/bin/multiprobe ... --duration 0s --json`, static release build)\n");
            md.push_str(
                "| command | functions | counter lookup | resolve | load | attach | run 0 s + final read | detach | whole command | peak RSS (summary) | max RSS (wait4) |\n\
                 |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            );
            for case in &cli_cases {
                let t = |m| self.cell("cli", case, m);
                let kib = |m| match self.stat("cli", case, m) {
                    Some(s) if s.n > 1 => format!("{:.1} ({:.1}) MiB", s.median / 1024.0, s.min / 1024.0),
                    Some(s) => format!("{:.1} MiB", s.median / 1024.0),
                    None => "-".into(),
                };
                let n = self.stats.iter().find(|(k, _)| k.0 == "cli" && k.1 == *case).and_then(|(_, (_, m))| *m);
                let lookup = self.records.cli.get(case).and_then(|v| v.lookup.as_deref()).unwrap_or("-");
                let _ = writeln!(
                    md,
                    "| `{case}` | {} | {lookup} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    n.unwrap_or(0),
                    t("resolve"),
                    t("load"),
                    t("attach"),
                    t("run"),
                    t("detach"),
                    t("wall"),
                    kib("peak_rss_kib"),
                    kib("maxrss_kib"),
                );
            }
            md.push_str(
                "\nTimes in ms as the command reports them (resolve, load, attach: its `attached` event; run: its \
                 summary's `run_ms`, which with `--duration 0s` is the final read of the maps; detach: its summary) \
                 and from spawn to exit (whole command); peak RSS: the summary's `peak_rss_kib` (VmHWM, read \
                 before printing the summary) and the kernel's `ru_maxrss` of the process. First of the boot: \
                 `/run/multiprobe` removed before the run, so the command reads the kernel's listing and \
                 `/proc/kallsyms` and writes the per-boot files; per-boot file: a later command of the same boot.\n",
            );
            if let (Some(before), Some(after)) = (
                self.median("memory", "kprobe_multi_link_info", "hwm_before_kib"),
                self.median("memory", "kprobe_multi_link_info", "hwm_after_kib"),
            ) {
                let _ = writeln!(
                    md,
                    "\nThe link-info feature check `count` makes before attaching (`features::kprobe_multi_link_info`, \
                     which reads the kernel's BTF and finds one struct in it), alone in a fresh process: {} ms, peak memory \
                     {:.1} -> {:.1} MiB.",
                    self.median("memory", "kprobe_multi_link_info", "ns").map_or("-".into(), ms),
                    before / 1024.0,
                    after / 1024.0
                );
            }
        }
    }
}
