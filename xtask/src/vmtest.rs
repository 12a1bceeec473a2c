//! Running the static test executables inside a VM and judging the result.
//!
//! The guest's `/init` runs each executable with `--test-threads=1` (one attach at a time:
//! attaches change what every other test sees in tracefs) and prints
//! `MULTIPROBE-TEST-EXIT <name> <code>` after each, then `MULTIPROBE-VM-DONE`. A kernel
//! passes iff every executable exited 0, the VM finished without a crash marker, and every
//! skip is explained by that kernel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::guest::{self, Guest};
use crate::kernels::Kernel;
use crate::qemu::Vm;
use crate::skips::{KernelFacts, SkipReport};
use crate::static_build::TestBinary;

const DONE: &str = "MULTIPROBE-VM-DONE";
const EXIT: &str = "MULTIPROBE-TEST-EXIT ";
const KERNEL: &str = "MULTIPROBE-KERNEL ";

/// How to run the tests in a VM.
pub struct Options {
    /// Passed to every test executable: only tests whose name contains it run.
    pub filter: Option<String>,
    /// The limit for one kernel's boot and tests.
    pub timeout: Duration,
    /// Keep the initramfs and the console log of passing runs.
    pub keep: bool,
    /// `target/vm`.
    pub work: PathBuf,
}

/// How the tests went on one kernel.
pub struct KernelResult {
    /// `uname -r` as the guest printed it.
    pub release: String,
    /// Test counts summed over libtest's `test result:` lines.
    pub passed: u32,
    /// See `passed`.
    pub failed: u32,
    /// The skips and whether the kernel explains them.
    pub skips: SkipReport,
    /// Everything that makes this kernel fail, in words. Empty: it passed.
    pub problems: Vec<String>,
    /// Boot plus tests.
    pub elapsed: Duration,
    /// The console log.
    pub log: PathBuf,
    /// Why the first boot was thrown away, when it died of an emulator crash.
    pub retried: Option<String>,
}

/// QEMU's emulated CPUs now and then execute stale code while the kernel patches its text
/// (ftrace, static keys, probes), which the kernel reports as an `int3` Oops: it happened at
/// boot before any test ran, and never on the same spot twice. Such a run is repeated once;
/// a real bug crashes again.
fn is_emulator_crash(failure: &str) -> bool {
    failure.contains("Oops: int3")
}

/// Boots `kernel` with the tests and the CLI, streaming the console prefixed with the
/// kernel's label.
pub fn run(kernel: &Kernel, tests: &[TestBinary], cli: &Path, options: &Options) -> Result<KernelResult> {
    let dir = options.work.join("run").join(&kernel.label);
    let initramfs = dir.join("initramfs.cpio.gz");
    let guest = Guest {
        kernel,
        multiprobe: Some(cli),
        tests,
        init: init_script(kernel, tests, options.filter.as_deref()),
        scripts: Vec::new(),
        net_modules: Vec::new(),
        host_files: Vec::new(),
    };
    guest.write_initramfs(&initramfs)?;
    let vm = Vm {
        vmlinuz: kernel.vmlinuz.clone(),
        initramfs: initramfs.clone(),
        append: Vec::new(),
        timeout: options.timeout,
        inactivity: Duration::from_secs(300),
        log: options.work.join("logs").join(format!("{}.log", kernel.label)),
        done_marker: DONE.to_string(),
        forwards: Vec::new(),
    };
    let prefix = format!("[{}] ", kernel.label);
    let mut console = vm.run(&mut |line| println!("{prefix}{line}"))?;
    let mut retried = None;
    if let Some(failure) = console.failure.clone().filter(|f| is_emulator_crash(f)) {
        println!("{prefix}the emulated CPU crashed while the kernel patched its code; booting once more");
        retried = Some(failure);
        console = vm.run(&mut |line| println!("{prefix}{line}"))?;
    }
    let mut result = judge(kernel, tests, &console.lines);
    result.retried = retried;
    result.elapsed = console.elapsed;
    result.log = vm.log.clone();
    if let Some(failure) = &console.failure {
        let tail = console.tail(40).join("\n  ");
        result.problems.insert(0, format!("{failure}; last console lines:\n  {tail}"));
    }
    if !options.keep {
        let _ = std::fs::remove_dir_all(&dir);
        if result.problems.is_empty() {
            let _ = std::fs::remove_file(&vm.log);
        }
    }
    Ok(result)
}

/// The guest's `/init`: run each test executable, report its exit code, power off.
fn init_script(kernel: &Kernel, tests: &[TestBinary], filter: Option<&str>) -> String {
    let mut script = guest::init_preamble(kernel);
    let filter = filter.map(|f| format!(" {}", guest::shell_quote(f)));
    for test in tests {
        let name = &test.name;
        script.push_str(&format!(
            "echo 'MULTIPROBE-TEST-START {name}'\n\
             /tests/{name} --test-threads=1{}\n\
             echo \"{EXIT}{name} $?\"\n",
            filter.as_deref().unwrap_or("")
        ));
    }
    script.push_str(&format!("echo {DONE}\npoweroff -f\n"));
    script
}

/// Reads the console of a finished run.
fn judge(kernel: &Kernel, tests: &[TestBinary], lines: &[String]) -> KernelResult {
    let release = lines
        .iter()
        .find_map(|l| Some(l[l.find(KERNEL)? + KERNEL.len()..].trim().to_string()))
        .unwrap_or_else(|| format!("{}-amd64", kernel.version));
    let facts = KernelFacts::vm(&release, kernel.config.as_deref());
    let mut result = KernelResult {
        release,
        passed: 0,
        failed: 0,
        skips: SkipReport::default(),
        problems: Vec::new(),
        elapsed: Duration::ZERO,
        log: PathBuf::new(),
        retried: None,
    };
    for line in lines {
        result.skips.scan_line(line, &facts);
        if let Some((passed, failed)) = libtest_counts(line) {
            result.passed += passed;
            result.failed += failed;
        }
    }
    for test in tests {
        let prefix = format!("{EXIT}{} ", test.name);
        let code = lines.iter().find_map(|l| Some(l[l.find(&prefix)? + prefix.len()..].trim().to_string()));
        match code.as_deref() {
            Some("0") => {}
            Some(code) => result.problems.push(format!("{} exited with {code}", test.name)),
            None => result.problems.push(format!("{} did not finish", test.name)),
        }
    }
    for skip in &result.skips.unexplained {
        result.problems.push(format!("unexplained skip: {skip}"));
    }
    result
}

/// `(passed, failed)` from a libtest summary line:
/// `test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...`.
pub fn libtest_counts(line: &str) -> Option<(u32, u32)> {
    let rest = &line[line.find("test result: ")?..];
    let count = |what: &str| -> Option<u32> {
        let end = rest.find(&format!(" {what}"))?;
        rest[..end].rsplit(' ').next()?.parse().ok()
    };
    Some((count("passed;")?, count("failed;")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> Kernel {
        Kernel {
            label: "6.12".into(),
            version: "6.12.118+deb13".into(),
            vmlinuz: PathBuf::from("/nonexistent"),
            config: None,
            modules: Vec::new(),
        }
    }

    fn binaries() -> Vec<TestBinary> {
        ["a.lib.a", "b.test.b"].iter().map(|n| TestBinary { name: n.to_string(), path: PathBuf::new() }).collect()
    }

    fn console(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn only_int3_oopses_count_as_emulator_crashes() {
        assert!(is_emulator_crash("kernel crash: [   41.2] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI"));
        assert!(!is_emulator_crash("kernel crash: [   41.2] Oops: general protection fault"));
        assert!(!is_emulator_crash("kernel crash: [   41.2] Kernel panic - not syncing: Fatal exception"));
    }

    #[test]
    fn counts_libtest_results() {
        let line = "test result: ok. 5 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out";
        assert_eq!(libtest_counts(line), Some((5, 2)));
        assert_eq!(libtest_counts("test a ... ok"), None);
    }

    #[test]
    fn passes_when_everything_exits_zero() {
        let lines = console(
            "MULTIPROBE-KERNEL 6.12.118+deb13-amd64\n\
             test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n\
             MULTIPROBE-TEST-EXIT a.lib.a 0\n\
             test x ... MULTIPROBE-SKIP b::x: needs kernel >= 7.0: new\n\
             MULTIPROBE-TEST-EXIT b.test.b 0\n",
        );
        let result = judge(&kernel(), &binaries(), &lines);
        assert_eq!(result.problems, Vec::<String>::new());
        assert_eq!(result.release, "6.12.118+deb13-amd64");
        assert_eq!((result.passed, result.failed), (3, 0));
        assert_eq!(result.skips.explained.len(), 1);
    }

    #[test]
    fn fails_on_exit_codes_missing_exits_and_bad_skips() {
        let lines = console(
            "MULTIPROBE-KERNEL 6.12.118+deb13-amd64\n\
             MULTIPROBE-SKIP a::y: needs kernel >= 6.5: addrs\n\
             MULTIPROBE-TEST-EXIT a.lib.a 101\n",
        );
        let problems = judge(&kernel(), &binaries(), &lines).problems;
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("a.lib.a exited with 101"));
        assert!(problems[1].contains("b.test.b did not finish"));
        assert!(problems[2].contains("a::y"));
    }

    #[test]
    fn init_runs_every_binary_with_the_filter() {
        let script = init_script(&kernel(), &binaries(), Some("attach it"));
        assert!(script.contains("/tests/a.lib.a --test-threads=1 'attach it'\n"));
        assert!(script.contains("echo \"MULTIPROBE-TEST-EXIT b.test.b $?\""));
        assert!(script.trim_end().ends_with("poweroff -f"));
    }
}
