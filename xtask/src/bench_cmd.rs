//! `cargo xtask bench`: multiprobe against libbpf 1.7 and the kernel floor, and the shipped
//! CLI, in two VM boots per kernel (the library's parts, then the CLI's; docs/benchmarks.md).
//!
//! The benchmark (`bench/`, a crate outside the workspace so that the workspace's builds
//! never compile libbpf's C code) is built static, runs as the VM's only program and prints
//! JSON lines between sentinels; we collect them and write `target/bench/<kernel>.json`
//! (raw samples, statistics, targets) and `target/bench/<kernel>.md` (the tables).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::guest::{self, Guest};
use crate::kernels::{self, Kernel};
use crate::qemu::Vm;
use crate::static_build::{self, TestBinary};
use crate::tools::{self, Tool};

const BEGIN: &str = "MPBENCH-BEGIN";
const LINE: &str = "MPBENCH ";
const END: &str = "MPBENCH-END";
const EXIT: &str = "MPBENCH-EXIT ";

/// libbpf-sys builds libbpf from its vendored sources (make, a C compiler) and links libelf
/// and zlib statically.
const LIBELF_A: Tool = Tool { command: "/usr/lib/x86_64-linux-gnu/libelf.a", package: "libelf-dev" };
const LIBZ_A: Tool = Tool { command: "/usr/lib/x86_64-linux-gnu/libz.a", package: "zlib1g-dev" };
const MAKE: Tool = Tool { command: "make", package: "make" };
const CC: Tool = Tool { command: "cc", package: "gcc" };
const PKG_CONFIG: Tool = Tool { command: "pkg-config", package: "pkgconf" };

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Kernel to boot (6.12, 7.2 or a vmlinuz path); repeatable; default 6.12.
    #[arg(long = "kernel", value_name = "K")]
    kernels: Vec<String>,
    /// Repetitions of each small measurement (default 9).
    #[arg(long)]
    reps: Option<usize>,
    /// Repetitions of the "all functions" attaches (default 3; each takes ~20 s per
    /// implementation under emulation).
    #[arg(long)]
    all_reps: Option<usize>,
    /// Syscalls per per-call-overhead sample (default 300000).
    #[arg(long)]
    calls: Option<u64>,
    /// Leave out the "all functions" cases and the CLI runs (`count '*'`, `latency '*'`).
    #[arg(long)]
    no_all: bool,
    /// Run only these parts (comma-separated, one boot): load, attach (listing, patterns,
    /// prototypes), per-call, all (every function), cli; for working on one of them.
    #[arg(long, value_name = "PARTS")]
    only: Option<String>,
    /// Two repetitions, one "all", fewer syscalls: a smoke run of the whole benchmark.
    #[arg(long)]
    quick: bool,
    /// Time limit per kernel (s, m or h suffix).
    #[arg(long, default_value = "30m", value_parser = crate::parse_duration)]
    timeout: Duration,
    /// Keep the initramfs and the console log.
    #[arg(long)]
    keep: bool,
}

impl BenchArgs {
    fn bench_argv(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.quick {
            v.push("--quick".to_string());
        }
        for (flag, value) in [
            ("--reps", self.reps.map(|n| n as u64)),
            ("--all-reps", self.all_reps.map(|n| n as u64)),
            ("--calls", self.calls),
        ] {
            if let Some(n) = value {
                v.extend([flag.to_string(), n.to_string()]);
            }
        }
        if self.no_all {
            v.push("--no-all".to_string());
        }
        v
    }

    /// The bench's arguments for each boot. A full run takes two: the library's parts, then
    /// the CLI's. Each attach or detach of every function patches 40,000+ call sites, which
    /// now and then kills an emulated kernel (see `run`); two shorter boots lose less to a
    /// crash, and neither part's numbers are compared with the other's.
    fn boots(&self) -> Vec<Vec<String>> {
        let base = self.bench_argv();
        let with = |parts: &str| [base.clone(), vec!["--only".to_string(), parts.to_string()]].concat();
        match &self.only {
            Some(parts) => vec![with(parts)],
            None if self.no_all => vec![base],
            None => vec![with("load,attach,per-call,all"), with("cli")],
        }
    }
}

/// Runs `cargo xtask bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    tools::ensure(&[tools::QEMU, tools::BUSYBOX, tools::XZ, tools::DPKG_DEB])?;
    tools::ensure(&[LIBELF_A, LIBZ_A, MAKE, CC, PKG_CONFIG])?;
    let root = crate::workspace_root();
    let bin = build(&root)?;
    // The shipped CLI too: the benchmark runs `multiprobe count '*'` for its own attach time
    // and peak memory.
    let cli = static_build::build_cli(&root, true)?;
    let work = crate::target_dir().join("vm");
    let out_dir = crate::target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let specs = if args.kernels.is_empty() { vec!["6.12".to_string()] } else { args.kernels.clone() };
    for spec in &specs {
        let kernel = kernels::resolve(spec, &work)?;
        eprintln!("xtask: benchmarking on {} ({})", kernel.label, kernel.version);
        let load_before = loadavg();
        let mut records = Vec::new();
        for argv in args.boots() {
            // Emulated kernels now and then die of an int3 Oops while patching kernel text
            // (at boot, or while attaching thousands of functions): QEMU's TCG and
            // cross-CPU code modification, not the code under test. A part's results must
            // come from one boot, so a crashed part starts again, twice at most.
            let mut attempt = 0;
            loop {
                match run_vm(&kernel, &bin, &cli, &argv, args, &work)? {
                    Ok(r) => {
                        records.extend(r);
                        break;
                    }
                    Err(e) if attempt < 2 => {
                        attempt += 1;
                        eprintln!("xtask: the VM crashed ({e}); running this part again");
                    }
                    Err(e) => bail!(e),
                }
            }
        }
        // Other VMs on the host (other sessions' test runs) steal the emulator's CPU time:
        // the load average tells how quiet the host was.
        records.push(json!({
            "group": "info", "case": "host", "impl": "",
            "loadavg_before": load_before, "loadavg_after": loadavg(),
            "host_cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        }));
        let report = Report::new(&kernel, records);
        let json_path = out_dir.join(format!("{}.json", kernel.label));
        let md_path = out_dir.join(format!("{}.md", kernel.label));
        std::fs::write(&json_path, serde_json::to_string_pretty(&report.to_json())?)?;
        let md = report.markdown(&format!("cargo xtask bench --kernel {}", kernel.label));
        std::fs::write(&md_path, &md)?;
        println!("{md}");
        eprintln!("xtask: wrote {} and {}", json_path.display(), md_path.display());
    }
    Ok(())
}

/// The host's 1-minute load average.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Builds the benchmark static, in its own target directory (it is not a workspace member).
fn build(root: &Path) -> Result<PathBuf> {
    let target_dir = crate::target_dir().join("bench-build");
    let status = static_build::cargo()
        .current_dir(root.join("bench"))
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // libbpf-sys links libelf and zlib statically from here (Debian's multiarch path).
        .env("LIBBPF_SYS_LIBRARY_PATH", Path::new(LIBELF_A.command).parent().unwrap())
        .args(["build", "--release", "--locked", "--target", static_build::TARGET, "--target-dir"])
        .arg(&target_dir)
        .status()
        .context("running cargo build for bench/")?;
    if !status.success() {
        bail!("building bench/ failed (see cargo's messages above)");
    }
    Ok(target_dir.join(static_build::TARGET).join("release").join("multiprobe-bench"))
}

/// Boots the kernel with the benchmark as the only program; returns its JSON records, or
/// (inner error) how the kernel crashed.
fn run_vm(
    kernel: &Kernel,
    bin: &Path,
    cli: &Path,
    bench_argv: &[String],
    args: &BenchArgs,
    work: &Path,
) -> Result<Result<Vec<Value>, String>> {
    let dir = work.join("run").join(format!("bench-{}", kernel.label));
    let initramfs = dir.join("initramfs.cpio.gz");
    let tests = [TestBinary { name: "multiprobe-bench".into(), path: bin.to_path_buf() }];
    let argv: Vec<String> = bench_argv.iter().map(|a| guest::shell_quote(a)).collect();
    let mut init = guest::init_preamble(kernel);
    init.push_str(&format!("/tests/multiprobe-bench {} </dev/null\necho \"{EXIT}$?\"\npoweroff -f\n", argv.join(" ")));
    let guest = Guest { kernel, multiprobe: Some(cli), tests: &tests, init, scripts: Vec::new() };
    guest.write_initramfs(&initramfs)?;
    let vm = Vm {
        vmlinuz: kernel.vmlinuz.clone(),
        initramfs,
        append: Vec::new(),
        timeout: args.timeout,
        // Attaching every function can keep the console quiet for a minute or two.
        inactivity: Duration::from_secs(600),
        log: work.join("logs").join(format!("bench-{}.log", kernel.label)),
        done_marker: EXIT.to_string(),
    };
    let prefix = format!("[{}] ", kernel.label);
    let mut records = Vec::new();
    let mut bad = Vec::new();
    let (mut began, mut ended) = (false, false);
    let console = vm.run(&mut |line| {
        if line.contains(BEGIN) {
            began = true;
        } else if line.contains(END) {
            ended = true;
        } else if let Some(at) = line.find(LINE) {
            match serde_json::from_str::<Value>(&line[at + LINE.len()..]) {
                Ok(v) => records.push(v),
                Err(_) => bad.push(line.to_string()),
            }
            return;
        }
        eprintln!("{prefix}{line}");
    })?;
    if let Some(failure) = &console.failure {
        let message = format!("{failure}; console log: {}\n  {}", vm.log.display(), console.tail(30).join("\n  "));
        if failure.starts_with("kernel crash") {
            return Ok(Err(message));
        }
        bail!("{message}");
    }
    if !began || !ended {
        bail!("the benchmark did not run to its end; console log: {}", vm.log.display());
    }
    if !bad.is_empty() {
        // A kernel message printed into the middle of a result line garbles it.
        eprintln!("xtask: {} garbled result line(s) dropped:\n  {}", bad.len(), bad.join("\n  "));
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&vm.log);
    }
    Ok(Ok(records))
}

/// Minimum and median of a series.
#[derive(Debug, Clone, Copy)]
struct Stat {
    min: f64,
    median: f64,
    n: usize,
}

impl Stat {
    fn of(samples: &[f64]) -> Option<Stat> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let mid = s.len() / 2;
        let median = if s.len() % 2 == 1 { s[mid] } else { (s[mid - 1] + s[mid]) / 2.0 };
        Some(Stat { min: s[0], median, n: s.len() })
    }
}

/// The results of one kernel.
struct Report {
    label: String,
    version: String,
    records: Vec<Value>,
    /// (group, case, impl) -> statistics of the samples (ns, ps or kB as recorded).
    stats: BTreeMap<(String, String, String), (Stat, Option<u64>)>,
}

fn key(group: &str, case: &str, imp: &str) -> (String, String, String) {
    (group.to_string(), case.to_string(), imp.to_string())
}

/// Milliseconds with a precision that suits the size.
fn ms(ns: f64) -> String {
    let v = ns / 1e6;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

/// The patterns in table order.
const PATTERNS: &[&str] = &["vfs_read", "vfs_*", "tcp_*", "*sys_*", "*", "* (cookies)"];

impl Report {
    fn new(kernel: &Kernel, records: Vec<Value>) -> Report {
        let mut stats = BTreeMap::new();
        for r in &records {
            let Some(samples) = r["samples"].as_array() else { continue };
            let samples: Vec<f64> = samples.iter().filter_map(Value::as_f64).collect();
            if let Some(st) = Stat::of(&samples) {
                let k = key(
                    r["group"].as_str().unwrap_or(""),
                    r["case"].as_str().unwrap_or(""),
                    r["impl"].as_str().unwrap_or(""),
                );
                stats.insert(k, (st, r["matches"].as_u64()));
            }
        }
        Report { label: kernel.label.clone(), version: kernel.version.clone(), records, stats }
    }

    fn stat(&self, group: &str, case: &str, imp: &str) -> Option<Stat> {
        self.stats.get(&key(group, case, imp)).map(|(s, _)| *s)
    }

    fn matches(&self, group: &str, case: &str, imp: &str) -> Option<u64> {
        self.stats.get(&key(group, case, imp)).and_then(|(_, m)| *m)
    }

    fn info(&self, case: &str) -> Option<&Value> {
        self.records.iter().find(|r| r["group"] == "info" && r["case"] == case)
    }

    /// "median (min)" in ms, or "-".
    fn cell(&self, group: &str, case: &str, imp: &str) -> String {
        match self.stat(group, case, imp) {
            Some(s) if s.n > 1 => format!("{} ({})", ms(s.median), ms(s.min)),
            Some(s) => ms(s.median),
            None => "-".into(),
        }
    }

    /// Ratio of medians, or "-".
    fn ratio_cell(&self, a: (&str, &str, &str), b: (&str, &str, &str)) -> String {
        match (self.stat(a.0, a.1, a.2), self.stat(b.0, b.1, b.2)) {
            (Some(x), Some(y)) => ratio(x.median, y.median),
            _ => "-".into(),
        }
    }

    fn median(&self, group: &str, case: &str, imp: &str) -> Option<f64> {
        self.stat(group, case, imp).map(|s| s.median)
    }

    /// `a / b` on medians and on minimums: "1.23x (min 1.10x)".
    fn ratios(&self, group: &str, case: &str, a: &str, b: &str) -> Option<(f64, String)> {
        let (x, y) = (self.stat(group, case, a)?, self.stat(group, case, b)?);
        let r = x.median / y.median;
        Some((r, format!("{r:.2}x (min {:.2}x)", x.min / y.min)))
    }

    /// `a / b` on medians and on minimums, for series of different groups.
    fn ratios_of(&self, a: (&str, &str, &str), b: (&str, &str, &str)) -> Option<(f64, String)> {
        let (x, y) = (self.stat(a.0, a.1, a.2)?, self.stat(b.0, b.1, b.2)?);
        let r = x.median / y.median;
        Some((r, format!("{r:.2}x (min {:.2}x)", x.min / y.min)))
    }

    /// Each target: (what, measured, met); judged on medians.
    fn targets(&self) -> Vec<(String, String, Option<bool>)> {
        let mut out = Vec::new();
        for p in ["vfs_*", "tcp_*", "*sys_*"] {
            let n = self.matches("attach", p, "floor").unwrap_or(0);
            for (imp, label, lb) in [("multiprobe", "warm", "libbpf"), ("multiprobe-cold", "cold", "libbpf-cold")] {
                if let Some((r, text)) = self.ratios("attach", p, imp, "floor") {
                    let libbpf = self.ratios("attach", p, lb, "floor").map_or("-".into(), |(_, t)| t);
                    out.push((
                        format!("`{p}` ({n} functions), multiprobe {label} <= 1.5x floor"),
                        format!("{text}; {lb} {libbpf}"),
                        Some(r <= 1.5),
                    ));
                }
            }
            let file = ("attach-alt", p, "multiprobe-cold-diskcache");
            if let Some((r, text)) = self.ratios_of(file, ("attach", p, "floor")) {
                out.push((
                    format!("`{p}` ({n} functions), multiprobe cold with the per-boot file <= 1.5x floor"),
                    text,
                    Some(r <= 1.5),
                ));
            }
        }
        for (imp, label, lb) in [("multiprobe", "warm", "libbpf"), ("multiprobe-cold", "cold", "libbpf-cold")] {
            if let Some((r, text)) = self.ratios("attach", "vfs_read", imp, lb) {
                out.push((
                    format!("exact name `vfs_read`, multiprobe {label} <= {lb} (fast path)"),
                    text,
                    // Both send the one name to the kernel: the same work, so 5% is noise.
                    Some(r <= 1.05),
                ));
            }
        }
        for (imp, label) in [("multiprobe", "warm"), ("multiprobe-cold", "cold")] {
            if let Some((r, text)) = self.ratios("attach", "*", imp, "floor") {
                out.push((format!("all functions, multiprobe {label} <= 1.05x floor"), text, Some(r <= 1.05)));
            }
        }
        let file = ("attach-alt", "*", "multiprobe-cold-diskcache");
        if let Some((r, text)) = self.ratios_of(file, ("attach", "*", "floor")) {
            out.push((
                "all functions, multiprobe cold with the per-boot file <= 1.05x floor".into(),
                text,
                Some(r <= 1.05),
            ));
        }
        for o in self.cases("load") {
            for (imp, label, lb) in [("multiprobe", "warm", "libbpf"), ("multiprobe-cold", "cold", "libbpf-cold")] {
                if let Some((r, text)) = self.ratios("load", &o, imp, lb) {
                    out.push((format!("load `{o}`, multiprobe {label} <= 0.5x {lb}"), text, Some(r <= 0.5)));
                }
            }
        }
        // Judged on the mode the CLI uses with a kprobe_multi link (address); cookie mode,
        // its fallback, is shown beside it.
        for case in self.cases("per_call") {
            let cookie = self
                .overhead_ratio(&case, "count-cookie")
                .map_or("-".into(), |(r, min)| format!("{r:.2}x (min {min:.2}x)"));
            if let Some((r, min)) = self.overhead_ratio(&case, "count-address") {
                out.push((
                    format!("`count` per-call overhead <= 1.10x empty's ({case})"),
                    format!("address mode {r:.2}x (min {min:.2}x); cookie mode {cookie}"),
                    Some(r <= 1.10),
                ));
            }
        }
        out
    }

    /// (count - none) / (empty - none), on medians and on minimums.
    fn overhead_ratio(&self, case: &str, program: &str) -> Option<(f64, f64)> {
        let none = self.stat("per_call", case, "none")?;
        let empty = self.stat("per_call", case, "empty")?;
        let count = self.stat("per_call", case, program)?;
        Some((
            (count.median - none.median) / (empty.median - none.median),
            (count.min - none.min) / (empty.min - none.min),
        ))
    }

    /// The cases of a group, in first-seen order.
    fn cases(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.records {
            if r["group"] == group
                && let Some(c) = r["case"].as_str()
                && !out.iter().any(|x| x == c)
            {
                out.push(c.to_string());
            }
        }
        out
    }

    fn to_json(&self) -> Value {
        let stats: Vec<Value> = self
            .stats
            .iter()
            .map(|((g, c, i), (s, m))| {
                json!({"group": g, "case": c, "impl": i, "matches": m, "n": s.n, "min": s.min, "median": s.median})
            })
            .collect();
        let targets: Vec<Value> = self
            .targets()
            .into_iter()
            .map(|(what, measured, met)| json!({"target": what, "measured": measured, "met": met}))
            .collect();
        json!({
            "kernel": self.label,
            "version": self.version,
            "records": self.records,
            "stats": stats,
            "targets": targets,
        })
    }

    fn markdown(&self, command: &str) -> String {
        let mut md = String::new();
        let machine = self.info("machine");
        let release = machine.and_then(|m| m["kernel"].as_str()).unwrap_or(&self.version);
        let cpus = machine.and_then(|m| m["cpus"].as_u64()).unwrap_or(0);
        let funcs = self.info("functions");
        let traceable = funcs.and_then(|f| f["traceable"].as_u64()).unwrap_or(0);
        let selected = funcs.and_then(|f| f["all_selected"].as_u64()).unwrap_or(0);
        let _ = writeln!(
            md,
            "### Kernel {release} (QEMU TCG, {cpus} vCPUs): {traceable} traceable functions, {selected} without the deny list\n"
        );
        let _ =
            writeln!(md, "Regenerate: `{command}`. Times in ms, median (min) of the repetitions; ratios of medians.");
        if let Some(h) = self.info("host") {
            let _ = writeln!(
                md,
                "Host: {} CPUs, load average {:.1} before and {:.1} after the run.",
                h["host_cpus"].as_u64().unwrap_or(0),
                h["loadavg_before"].as_f64().unwrap_or(0.0),
                h["loadavg_after"].as_f64().unwrap_or(0.0)
            );
        }
        md.push('\n');

        // Attach.
        let _ = writeln!(md, "#### Attach\n");
        md.push_str(
            "| pattern | functions | multiprobe cold | cold + per-boot file | multiprobe warm | libbpf cold | libbpf | kernel floor | cold / floor | cold + file / floor | warm / floor | libbpf / floor | cold / libbpf cold | warm / libbpf |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for p in PATTERNS {
            if self.stat("attach", p, "floor").is_none() {
                continue;
            }
            let a = |imp| self.cell("attach", p, imp);
            let r = |x, y| self.ratio_cell(("attach", p, x), ("attach", p, y));
            let file = self.cell("attach-alt", p, "multiprobe-cold-diskcache");
            let file_ratio = self.ratio_cell(("attach-alt", p, "multiprobe-cold-diskcache"), ("attach", p, "floor"));
            let _ = writeln!(
                md,
                "| `{p}` | {} | {} | {file} | {} | {} | {} | {} | {} | {file_ratio} | {} | {} | {} | {} |",
                self.matches("attach", p, "floor").unwrap_or(0),
                a("multiprobe-cold"),
                a("multiprobe"),
                a("libbpf-cold"),
                a("libbpf"),
                a("floor"),
                r("multiprobe-cold", "floor"),
                r("multiprobe", "floor"),
                r("libbpf", "floor"),
                r("multiprobe-cold", "libbpf-cold"),
                r("multiprobe", "libbpf"),
            );
        }
        md.push_str(
            "\ncold: the first attach of a fresh process (multiprobe reads the listing; code and heap pages are \
             faulted in); cold + per-boot file: the same with the listing file an earlier process left in a \
             cache directory (`set_listing_cache_dir`; the CLI's `/run/multiprobe`); warm: later attaches in the same process (multiprobe keeps the listing in memory, checked \
             against boot id and module list). libbpf reads the listing on every attach. `*`: every traceable function less the deny list; libbpf and the floor get the address list \
             multiprobe resolved (a libbpf pattern cannot exclude).\n\n",
        );

        // Detach.
        let _ = writeln!(md, "#### Detach\n");
        md.push_str("| pattern | multiprobe | libbpf | kernel floor |\n|---|---:|---:|---:|\n");
        for p in PATTERNS {
            if self.stat("attach-detach", p, "floor").is_none() {
                continue;
            }
            let d = |imp| self.cell("attach-detach", p, imp);
            let _ = writeln!(md, "| `{p}` | {} | {} | {} |", d("multiprobe"), d("libbpf"), d("floor"));
        }

        // Where the time goes.
        let _ = writeln!(md, "\n#### Where multiprobe's attach time goes (medians, ms)\n");
        md.push_str(
            "| pattern | read listing (cold only) | cache check (warm) | match | kernel (floor) | sum cold | measured cold | sum warm | measured warm |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let read = self.median("listing", "addrs", "multiprobe");
        let check = self.median("listing", "cached", "multiprobe");
        for p in PATTERNS {
            let Some(floor) = self.median("attach", p, "floor") else { continue };
            let exact = !p.contains('*') && !p.contains('?');
            let m = if exact { Some(0.0) } else { self.median("match", p, "multiprobe") };
            let (r, c) = if exact { (Some(0.0), Some(0.0)) } else { (read, check) };
            let sum = |a: Option<f64>| match (a, m) {
                (Some(a), Some(m)) => ms(a + m + floor),
                _ => "-".into(),
            };
            let opt = |v: Option<f64>| v.map_or("-".into(), ms);
            let _ = writeln!(
                md,
                "| `{p}` | {} | {} | {} | {} | {} | {} | {} | {} |",
                opt(r),
                opt(c),
                opt(m),
                ms(floor),
                sum(r),
                opt(self.median("attach", p, "multiprobe-cold")),
                sum(c),
                opt(self.median("attach", p, "multiprobe")),
            );
        }
        md.push_str("\nAn exact name takes the fast path: no listing, the kernel resolves the name.\n\n");
        md.push_str("| listing read | ms | bytes |\n|---|---:|---:|\n");
        for (case, what) in [
            ("addrs", "`available_filter_functions_addrs` (`TraceableFunctions::read_uncached`)"),
            ("names", "`available_filter_functions` (`TraceableFunctions::read_names`)"),
            ("kallsyms", "`/proc/kallsyms`"),
            ("cached", "`TraceableFunctions::read` when cached (boot id, release, `/proc/modules`)"),
        ] {
            let bytes = self.info(&format!("listing {case}")).and_then(|v| v["bytes"].as_u64()).unwrap_or(0);
            let _ = writeln!(md, "| {what} | {} | {bytes} |", self.cell("listing", case, "multiprobe"));
        }
        for (case, what) in [
            (
                "entries compute",
                "entry addresses of every function (`entry_addresses`), first use: `/proc/kallsyms` read and joined",
            ),
            ("entries kept", "entry addresses again (kept with the listing)"),
        ] {
            if self.stat("listing", case, "multiprobe").is_some() {
                let _ = writeln!(md, "| {what} | {} | - |", self.cell("listing", case, "multiprobe"));
            }
        }

        // Prototypes.
        let _ = writeln!(md, "\n#### Resolution alternatives (attach, medians, ms)\n");
        md.push_str(
            "| pattern | names | multiprobe cold | cold + per-boot file | names-only listing + by name | tracefs instance filter + by name | floor (addresses) | floor (by name) | match: scan | match: sorted index |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for p in PATTERNS {
            let Some(n) = self.matches("attach-alt", p, "floor-by-name") else { continue };
            let opt = |g: &str, imp: &str| self.median(g, p, imp).map_or("-".into(), ms);
            let _ = writeln!(
                md,
                "| `{p}` | {n} | {} | {} | {} | {} | {} | {} | {} | {} |",
                opt("attach", "multiprobe-cold"),
                opt("attach-alt", "multiprobe-cold-diskcache"),
                opt("attach-alt", "names+byname"),
                opt("attach-alt", "tracefs-instance"),
                opt("attach", "floor"),
                opt("attach-alt", "floor-by-name"),
                opt("match", "multiprobe"),
                opt("match", "index"),
            );
        }
        if let Some(b) = self.median("listing", "index build", "index") {
            let _ = writeln!(md, "\nSorted index: built once from the listing in {} ms.", ms(b));
        }
        if let Some(b) = self.median("listing", "tracefs instance mkdir", "tracefs-instance") {
            let _ = writeln!(md, "Tracefs instance: created once in {} ms (not counted above).", ms(b));
        }
        md.push_str("By name, the kernel attaches the first traceable function of each name: duplicated names lose their other copies.\n");

        // Load.
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
            let bytes = self.info("vmlinux btf").and_then(|v| v["bytes"].as_u64()).unwrap_or(0);
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

        // Per call.
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
            let info = self.info(&format!("per_call {case}"));
            let function = info.and_then(|v| v["function"].as_str()).unwrap_or("?").replace('*', "\\*");
            let overhead =
                |imp| self.overhead_ratio(&case, imp).map_or("-".into(), |(r, min)| format!("{r:.2}x ({min:.2}x)"));
            let exact = info.map_or("-".into(), |v| {
                let made = v["calls_made"].as_u64().unwrap_or(0);
                let judge = |c: &Value| match c.as_u64() {
                    Some(c) if c == made => "yes".to_string(),
                    Some(c) => format!("**no**: {c} of {made}"),
                    None => "-".into(),
                };
                format!(
                    "{}: address {}, cookie {}",
                    v["counted_function"].as_str().unwrap_or("?"),
                    judge(&v["counted_address"]),
                    judge(&v["counted_cookie"])
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

        // The CLI.
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
                let lookup =
                    self.info(&format!("cli {case}")).and_then(|v| v["lookup"].as_str()).unwrap_or("-").to_string();
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

        // Targets.
        let _ = writeln!(md, "\n#### Targets\n");
        md.push_str("| target | measured | met |\n|---|---|---|\n");
        for (what, measured, met) in self.targets() {
            let met = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(md, "| {what} | {measured} | {met} |");
        }
        let errors: Vec<&Value> = self.records.iter().filter(|r| r["group"] == "error").collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\n#### Errors\n");
            for e in errors {
                let _ = writeln!(
                    md,
                    "- {} {}: {}",
                    e["case"].as_str().unwrap_or(""),
                    e["impl"].as_str().unwrap_or(""),
                    e["error"].as_str().unwrap_or("")
                );
            }
        }
        let boots: Vec<f64> = self
            .records
            .iter()
            .filter(|r| r["group"] == "info" && r["case"] == "total")
            .filter_map(|r| r["seconds"].as_f64())
            .collect();
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
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_minimums() {
        let s = Stat::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.min, s.median, s.n), (1.0, 3.0, 3));
        let s = Stat::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Stat::of(&[]).is_none());
    }

    #[test]
    fn tables_from_records() {
        let kernel = Kernel {
            label: "6.12".into(),
            version: "6.12.1".into(),
            vmlinuz: PathBuf::new(),
            config: None,
            modules: Vec::new(),
        };
        let rec = |group: &str, case: &str, imp: &str, samples: &[u64]| json!({"group": group, "case": case, "impl": imp, "unit": "ns", "matches": 78, "samples": samples});
        let records = vec![
            rec("attach", "vfs_*", "multiprobe", &[40_000_000, 30_000_000, 35_000_000]),
            rec("attach", "vfs_*", "libbpf", &[1_000_000_000]),
            rec("attach", "vfs_*", "floor", &[30_000_000]),
            rec("per_call", "getppid", "none", &[1_000_000]),
            rec("per_call", "getppid", "empty", &[2_000_000]),
            rec("per_call", "getppid", "count-address", &[2_050_000]),
            rec("per_call", "getppid", "count-cookie", &[2_500_000]),
            rec("attach-alt", "vfs_*", "multiprobe-cold-diskcache", &[60_000_000]),
            rec("cli", "count * (per-boot file)", "peak_rss_kib", &[20_480]),
            json!({"group": "info", "case": "per_call getppid", "impl": "count", "function": "__x64_sys_getppid",
                   "counted_function": "__x64_sys_getppid", "calls_made": 10, "counted_address": 10, "counted_cookie": 9}),
        ];
        let report = Report::new(&kernel, records);
        let md = report.markdown("cargo xtask bench");
        assert!(md.contains("| `vfs_*` | 78 | - | 60.0 | 35.0 (30.0) | - | 1000 | 30.0 | - | 2.00x | 1.17x |"), "{md}");
        assert!(md.contains("| 1.05x (1.05x) |"), "{md}");
        assert!(md.contains("address yes, cookie **no**: 9 of 10"), "{md}");
        assert!(md.contains("| `count * (per-boot file)` | 78 |"), "{md}");
        assert!(md.contains("| 20.0 MiB |"), "{md}");
        let targets = report.targets();
        assert!(targets.iter().any(|(w, _, met)| w.contains("vfs_*") && *met == Some(true)));
        assert!(targets.iter().any(|(w, m, met)| w.contains("per-call")
            && m == "address mode 1.05x (min 1.05x); cookie mode 1.50x (min 1.50x)"
            && *met == Some(true)));
        assert!(targets.iter().any(|(w, _, met)| w.contains("per-boot file") && *met == Some(false)));
    }
}
