//! The Markdown report of one kernel (what docs/benchmarks.md shows): a header, the tables
//! (attach_tables.rs, call_tables.rs, load here), the targets, what failed, the run time.

use std::fmt::Write as _;

use super::report::{Report, ms};

impl Report {
    /// The whole report; `command` is how to regenerate it.
    pub fn markdown(&self, command: &str) -> String {
        let mut md = String::new();
        self.header(&mut md, command);
        self.attach_table(&mut md);
        self.detach_table(&mut md);
        self.time_split(&mut md);
        self.alternatives_table(&mut md);
        self.load_table(&mut md);
        self.per_call_table(&mut md);
        self.per_call_by_table(&mut md);
        self.trace_tables(&mut md);
        self.cli_table(&mut md);
        self.targets_table(&mut md);
        md
    }

    /// The kernel, the listing's size, how to regenerate, the host's load.
    fn header(&self, md: &mut String, command: &str) {
        let machine = self.records.machine.as_ref();
        let release = machine.and_then(|m| m.kernel.as_deref()).unwrap_or(&self.version);
        let cpus = machine.and_then(|m| m.cpus).unwrap_or(0);
        let funcs = self.records.functions.as_ref();
        let traceable = funcs.and_then(|f| f.traceable).unwrap_or(0);
        let selected = funcs.and_then(|f| f.all_selected).unwrap_or(0);
        let _ = writeln!(
            md,
            "### Kernel {release} (QEMU TCG, {cpus} vCPUs): {traceable} traceable functions, {selected} without the deny list\n"
        );
        let _ =
            writeln!(md, "Regenerate: `{command}`. Times in ms, median (min) of the repetitions; ratios of medians.");
        if let Some(h) = &self.records.host {
            let _ = writeln!(
                md,
                "Host: {} CPUs, load average {:.1} before and {:.1} after the run.",
                h.host_cpus.unwrap_or(0),
                h.loadavg_before.unwrap_or(0.0),
                h.loadavg_after.unwrap_or(0.0)
            );
        }
        md.push('\n');
    }

    /// Object load times against libbpf, and the kernel BTF's read and parse.
    fn load_table(&self, md: &mut String) {
        let _ = writeln!(md, "\n#### Object load (parse + load, ms)\n");
        md.push_str(
            "| object | multiprobe cold | multiprobe warm | libbpf cold | libbpf warm | cold / libbpf cold | warm / libbpf warm |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        for o in self.cases("load") {
            let c = |imp| self.cell("load", &o, imp);
            let r = |x, y| self.ratio_cell(("load", &o, x), ("load", &o, y));
            let _ = writeln!(
                md,
                "| `{o}` | {} | {} | {} | {} | {} | {} |",
                c("multiprobe-cold"),
                c("multiprobe"),
                c("libbpf-cold"),
                c("libbpf"),
                r("multiprobe-cold", "libbpf-cold"),
                r("multiprobe", "libbpf")
            );
        }
        if let Some(read) = self.stat("btf", "vmlinux", "read") {
            let bytes = self.records.bytes.get("vmlinux btf").copied().unwrap_or(0);
            let _ = writeln!(
                md,
                "\nKernel BTF (`/sys/kernel/btf/vmlinux`, {bytes} bytes), needed by objects with CO-RE relocations or kfuncs: \
                 read {} ms, parsed by multiprobe (`Btf::parse`) in {}, by libbpf (`btf__new`) in {} ms ({}); \
                 the first lookup by name then takes {} ms in multiprobe (it builds its name index) and {} ms in libbpf \
                 (a scan).",
                ms(read.median),
                self.cell("btf", "vmlinux", "multiprobe"),
                self.cell("btf", "vmlinux", "libbpf"),
                self.ratio_cell(("btf", "vmlinux", "multiprobe"), ("btf", "vmlinux", "libbpf")),
                self.cell("btf", "vmlinux", "multiprobe-lookup"),
                self.cell("btf", "vmlinux", "libbpf-lookup"),
            );
        }
        md.push_str(
            "\ncold: first load in a fresh process; warm: after earlier loads in the same process (multiprobe keeps \
             the kernel's BTF once parsed; libbpf reads it again for every object that needs it).\n",
        );
    }

    /// The targets, what failed, and the benchmark's run time.
    fn targets_table(&self, md: &mut String) {
        let _ = writeln!(md, "\n#### Targets\n");
        md.push_str("| target | measured | met |\n|---|---|---|\n");
        for t in self.targets() {
            let (what, measured) = (&t.what, &t.measured);
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(md, "| {what} | {measured} | {met} |");
        }
        if !self.records.failures.is_empty() {
            let _ = writeln!(md, "\n#### Errors\n");
            for e in &self.records.failures {
                let _ = writeln!(md, "- {} {}: {}", e.case, e.imp, e.error);
            }
        }
        let boots = &self.records.boots;
        if !boots.is_empty() {
            let each: Vec<String> = boots.iter().map(|t| format!("{t:.0}")).collect();
            let _ = writeln!(
                md,
                "\nBenchmark run time in the VM: {:.0} s ({} boot(s): {} s).",
                boots.iter().sum::<f64>(),
                boots.len(),
                each.join(" + ")
            );
        }
    }
}
