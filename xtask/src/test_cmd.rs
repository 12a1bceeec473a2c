//! `cargo xtask test`: every check and every test, natively and on each kernel of the matrix.
//!
//! Steps, stopping at the first failing one: host tools; rustfmt and clippy; the committed
//! BPF objects; `cargo test --workspace` on this machine; a short fuzzing run of every fuzz
//! target; the static test build; each VM kernel in turn (all of them run even when one
//! fails, for a complete table).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::skips::{KernelFacts, SkipReport};
use crate::static_build::TestBinary;
use crate::{conformance_cmd, corpus_cmd, export_e2e, kernels, static_build, tools, vmtest};

/// Arguments of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Kernel to test in a VM: a series (5.10, 6.1, 6.12, 7.2) or a vmlinuz path.
    /// Repeatable; default: 6.1 6.12 7.2.
    #[arg(long = "kernel", value_name = "K")]
    kernels: Vec<String>,
    /// Skip the VM tests.
    #[arg(long, conflicts_with = "vm_only")]
    no_vm: bool,
    /// Only the VM tests (no fmt, clippy, BPF object check or native tests).
    #[arg(long)]
    vm_only: bool,
    /// Keep each VM's initramfs and console log (logs of failing kernels are always kept).
    #[arg(long)]
    keep: bool,
    /// Run only tests whose name contains SUBSTR (passed to every test executable).
    #[arg(long, value_name = "SUBSTR")]
    test_filter: Option<String>,
    /// Time limit for one kernel's boot and tests (s, m or h suffix); 6.1, where every
    /// attach goes one kprobe at a time, takes about 15 minutes under emulation.
    #[arg(long, default_value = "25m", value_parser = crate::parse_duration)]
    timeout: Duration,
}

/// One line of the final summary.
struct Row {
    what: String,
    ok: bool,
    detail: String,
    skips: String,
    time: Duration,
}

/// Runs `cargo xtask test`.
pub fn run(args: &TestArgs) -> Result<()> {
    let root = crate::workspace_root();
    let started = Instant::now();
    let mut rows = Vec::new();
    let outcome = run_steps(args, &root, &mut rows);
    print_summary(&rows, started.elapsed());
    outcome?;
    if let Some(bad) = rows.iter().find(|r| !r.ok) {
        bail!("{} failed: {}", bad.what, bad.detail);
    }
    Ok(())
}

fn run_steps(args: &TestArgs, root: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let mut needed = Vec::new();
    if !args.vm_only {
        needed.extend([tools::CLANG, tools::LLVM_STRIP, tools::GROFF]);
    }
    if !args.no_vm {
        needed.extend([tools::QEMU, tools::BUSYBOX, tools::XZ, tools::DPKG_DEB]);
        if runs_export_e2e(args) {
            needed.push(tools::PROMETHEUS);
        }
    }
    tools::ensure(&needed)?;

    if !args.vm_only {
        step(rows, "rustfmt", || cargo_status(root, &["fmt", "--all", "--", "--check"]))?;
        step(rows, "clippy", || {
            let args = ["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"];
            cargo_status(root, &args)
        })?;
        step(rows, "BPF objects", || crate::bpf::check_objects_up_to_date(root).map(|()| String::new()))?;
        native_tests(root, args.test_filter.as_deref(), rows)?;
        step(rows, "package", || crate::dist::package_check(root))?;
        step(rows, "fuzz", || crate::fuzz_cmd::bounded(root))?;
    }
    if args.no_vm {
        return Ok(());
    }

    let mut binaries = None;
    step(rows, "static build", || {
        let tests = static_build::build_tests(root, false)?;
        let cli = static_build::build_cli(root, false)?;
        let detail = format!("{} test executables", tests.len());
        binaries = Some((tests, cli));
        Ok(detail)
    })?;
    let (tests, cli) = binaries.unwrap();
    let options = vmtest::Options {
        filter: args.test_filter.clone(),
        timeout: args.timeout,
        keep: args.keep,
        work: crate::target_dir().join("vm"),
    };
    let specs: Vec<String> = if args.kernels.is_empty() {
        kernels::DEFAULT_MATRIX.iter().map(|s| s.to_string()).collect()
    } else {
        args.kernels.clone()
    };
    for spec in &specs {
        rows.push(kernel_row(spec, &tests, &cli, &options));
        if spec == export_e2e::KERNEL && runs_export_e2e(args) {
            rows.push(export_e2e_row(&cli, &options.work));
        }
    }
    // The differential corpus against libbpf (corpus_cmd.rs), on the kernels it runs on;
    // with --test-filter only when the filter names it.
    let corpus: Vec<&String> = specs.iter().filter(|s| corpus_cmd::TEST_KERNELS.contains(&s.as_str())).collect();
    let run_corpus = !corpus.is_empty() && args.test_filter.as_deref().is_none_or(|f| "corpus".contains(f));
    // The kprobe_multi conformance against libbpf (conformance_cmd.rs), on every kernel.
    let run_conformance = args.test_filter.as_deref().is_none_or(|f| "conformance".contains(f));
    let mut bin = None;
    if run_corpus || run_conformance {
        step(rows, "corpus build (libbpf)", || {
            bin = Some(corpus_cmd::build(root)?);
            Ok(String::new())
        })?;
    }
    if run_corpus {
        for spec in corpus {
            rows.push(corpus_row(spec, bin.as_deref().unwrap(), &options.work));
        }
    }
    if run_conformance {
        for spec in &specs {
            rows.push(conformance_row(spec, bin.as_deref().unwrap(), &options.work));
        }
    }
    Ok(())
}

/// The libbpf conformance scenarios on one kernel: a row, never a stop.
fn conformance_row(spec: &str, bin: &Path, work: &Path) -> Row {
    let start = Instant::now();
    println!("==> conformance on {spec}");
    let outcome = kernels::resolve(spec, work).and_then(|kernel| conformance_cmd::test_step(bin, &kernel));
    Row {
        what: format!("conformance {spec}"),
        ok: outcome.is_ok(),
        detail: outcome.unwrap_or_else(|e| format!("{e:#}")),
        skips: String::new(),
        time: start.elapsed(),
    }
}

/// Whether the run includes the Prometheus end-to-end test of `multiprobe export`: with 6.12
/// in the run and no --test-filter, or one it contains (`export`, `e2e`).
fn runs_export_e2e(args: &TestArgs) -> bool {
    let on_6_12 = args.kernels.is_empty() || args.kernels.iter().any(|k| k == export_e2e::KERNEL);
    on_6_12 && args.test_filter.as_deref().is_none_or(|f| "export-e2e".contains(f))
}

/// `multiprobe export` in a 6.12 VM scraped by Prometheus on the host: a row, never a stop.
fn export_e2e_row(cli: &Path, work: &Path) -> Row {
    let start = Instant::now();
    println!("==> export e2e (Prometheus) on {}", export_e2e::KERNEL);
    let outcome = kernels::resolve(export_e2e::KERNEL, work).and_then(|kernel| export_e2e::run(&kernel, cli, work));
    Row {
        what: format!("export e2e {}", export_e2e::KERNEL),
        ok: outcome.is_ok(),
        detail: outcome.unwrap_or_else(|e| format!("{e:#}")),
        skips: String::new(),
        time: start.elapsed(),
    }
}

/// The corpus on one kernel: a row, never a stop.
fn corpus_row(spec: &str, bin: &Path, work: &Path) -> Row {
    let start = Instant::now();
    println!("==> corpus on {spec}");
    let outcome = kernels::resolve(spec, work).and_then(|kernel| corpus_cmd::test_step(bin, &kernel));
    Row {
        what: format!("corpus {spec}"),
        ok: outcome.is_ok(),
        detail: outcome.unwrap_or_else(|e| format!("{e:#}")),
        skips: String::new(),
        time: start.elapsed(),
    }
}

/// Fetches one kernel and runs the tests on it. Never stops the run: the other kernels'
/// results are worth having too.
fn kernel_row(spec: &str, tests: &[TestBinary], cli: &Path, options: &vmtest::Options) -> Row {
    let start = Instant::now();
    let failed = |what: String, e: anyhow::Error| Row {
        what,
        ok: false,
        detail: format!("{e:#}"),
        skips: String::new(),
        time: start.elapsed(),
    };
    let kernel = match kernels::resolve(spec, &options.work) {
        Ok(kernel) => kernel,
        Err(e) => return failed(format!("kernel {spec}"), e),
    };
    println!("==> kernel {} ({})", kernel.label, kernel.version);
    let result = match vmtest::run(&kernel, tests, cli, options) {
        Ok(result) => result,
        Err(e) => return failed(format!("kernel {}", kernel.label), e),
    };
    for problem in &result.problems {
        eprintln!("[{}] FAILED: {problem}", kernel.label);
    }
    if !result.problems.is_empty() {
        eprintln!("[{}] console log: {}", kernel.label, result.log.display());
    }
    let mut counts = format!("{} passed, {} failed", result.passed, result.failed);
    if let Some(crash) = &result.retried {
        eprintln!("[{}] note: the first boot was repeated after an emulator crash: {crash}", kernel.label);
        counts.push_str(" (second boot: the first hit an emulator crash)");
    }
    Row {
        what: format!("kernel {}", result.release),
        ok: result.problems.is_empty(),
        detail: std::iter::once(counts).chain(result.problems.iter().cloned()).collect::<Vec<_>>().join("; "),
        skips: skip_summary(&result.skips),
        time: start.elapsed(),
    }
}

/// Runs one step, records its row, and stops the run when it fails.
fn step(rows: &mut Vec<Row>, what: &str, f: impl FnOnce() -> Result<String>) -> Result<()> {
    println!("==> {what}");
    let start = Instant::now();
    let outcome = f();
    rows.push(Row {
        what: what.to_string(),
        ok: outcome.is_ok(),
        detail: match &outcome {
            Ok(detail) => detail.clone(),
            Err(e) => format!("{e:#}"),
        },
        skips: String::new(),
        time: start.elapsed(),
    });
    outcome.map(|_| ()).with_context(|| format!("{what} failed"))
}

fn cargo_status(root: &Path, args: &[&str]) -> Result<String> {
    let status = static_build::cargo().args(args).current_dir(root).status()?;
    if !status.success() {
        bail!("cargo {} exited with {status}", args.join(" "));
    }
    Ok(String::new())
}

/// `cargo test --workspace` on this machine, streamed, with the skip policy applied against
/// the host kernel.
fn native_tests(root: &Path, filter: Option<&str>, rows: &mut Vec<Row>) -> Result<()> {
    println!("==> native tests");
    let start = Instant::now();
    let mut cmd = static_build::cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"]).current_dir(root);
    if let Some(filter) = filter {
        cmd.args(["--", filter]);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("running cargo test")?;
    let out = tee(child.stdout.take().unwrap(), std::io::stdout);
    let err = tee(child.stderr.take().unwrap(), std::io::stderr);
    let status = child.wait()?;
    let mut lines = out.join().unwrap();
    lines.extend(err.join().unwrap());

    let facts = KernelFacts::host();
    let mut skips = SkipReport::default();
    let (mut passed, mut failed) = (0, 0);
    for line in &lines {
        skips.scan_line(line, &facts);
        if let Some((p, f)) = vmtest::libtest_counts(line) {
            passed += p;
            failed += f;
        }
    }
    let mut problems = Vec::new();
    if !status.success() {
        problems.push(format!("cargo test exited with {status}"));
    }
    problems.extend(skips.unexplained.iter().map(|s| format!("unexplained skip: {s}")));
    for problem in &problems {
        eprintln!("[host] FAILED: {problem}");
    }
    rows.push(Row {
        what: format!("native ({})", facts.release),
        ok: problems.is_empty(),
        detail: std::iter::once(format!("{passed} passed, {failed} failed"))
            .chain(problems.iter().cloned())
            .collect::<Vec<_>>()
            .join("; "),
        skips: skip_summary(&skips),
        time: start.elapsed(),
    });
    if !problems.is_empty() {
        bail!("native tests failed");
    }
    Ok(())
}

/// Copies a pipe to one of our streams as it comes and returns the lines the skip policy
/// and the test counts need.
fn tee<W: Write + 'static>(
    pipe: impl Read + Send + 'static,
    stream: fn() -> W,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let mut out = stream();
            let _ = out.write_all(&buf);
            let _ = out.flush();
            let line = String::from_utf8_lossy(&buf);
            if line.contains(testkit::SKIP_MARKER.trim_end()) || line.contains("test result: ") {
                kept.push(line.trim_end().to_string());
            }
            buf.clear();
        }
        kept
    })
}

fn skip_summary(skips: &SkipReport) -> String {
    match (skips.explained.len(), skips.unexplained.len()) {
        (0, 0) => "none".to_string(),
        (n, 0) => format!("{n} explained"),
        (n, bad) => format!("{n} explained, {bad} UNEXPLAINED"),
    }
}

fn print_summary(rows: &[Row], total: Duration) {
    println!("\n==> summary");
    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(0).max(4);
    println!("{:<width$}  {:<6}  {:>7}  {:<28}  detail", "step", "result", "time", "skips");
    for row in rows {
        let detail = row.detail.lines().next().unwrap_or("");
        println!(
            "{:<width$}  {:<6}  {:>6.1}s  {:<28}  {detail}",
            row.what,
            if row.ok { "ok" } else { "FAILED" },
            row.time.as_secs_f64(),
            row.skips,
        );
    }
    println!("total {:.1}s", total.as_secs_f64());
}
