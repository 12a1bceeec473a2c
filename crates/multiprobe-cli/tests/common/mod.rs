//! Setup the CLI's integration tests share: the binary to run, the skip for kernels that
//! cannot attach kprobes, the CLI run in the background and its output read without
//! disturbing what it counts, workloads of known calls, and the kernel's BPF links.
//!
//! It is here once so that every file waits for the CLI, reads its output and counts its
//! calls the same way: a fix to one of them (a read while attached, a wait that can hang)
//! then reaches every test.
//!
//! Reading the CLI's output is a read(2) of this process, and a probe on vfs_read with
//! `--pid <this process>` counts it. So while such a CLI is attached, the main thread reads
//! nothing but the line the CLI writes once attached (the test is already blocked in that
//! read when the CLI writes it), runs the workload, and reads the rest only after the CLI
//! exited ([`Cli::finish`]).

// Each test file is a crate of its own that includes this module and uses only some of it:
// what one file leaves unused would warn there.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// In the VMs the path cargo compiled in does not exist: testkit picks the one the VM has.
pub fn bin() -> PathBuf {
    testkit::multiprobe_bin(env!("CARGO_BIN_EXE_multiprobe"))
}

/// Skips unless the kernel can attach kprobes one way or the other (kprobe_multi, or the
/// per-function fallback, which needs attach cookies on single kprobes).
#[allow(unused_macros)] // as `dead_code` above, which does not cover macros
macro_rules! require_kprobes {
    () => {
        ::testkit::require_root!("loading BPF programs");
        ::testkit::require_config!("CONFIG_KPROBES", "kprobes (kprobe_multi and its per-function fallback)");
        ::testkit::require_kernel!(5, 15, "attach cookies on single kprobes");
    };
}
#[allow(unused_imports)]
pub(crate) use require_kprobes;

/// The CLI attaches through one kprobe_multi link where the kernel has them (5.18, with
/// fprobe), else one kprobe per function: the tests expect the mode, link type and detach
/// output of the one the kernel should give.
pub fn kprobe_multi_expected() -> bool {
    testkit::kernel_config("CONFIG_FPROBE") != Some(false) && testkit::kernel_version() >= (5, 18)
}

/// A finished run, with all of its output: every failure message shows the whole of it.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl From<&Output> for Run {
    fn from(out: &Output) -> Run {
        Run {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The JSON lines of stdout.
    pub fn events(&self) -> Vec<Value> {
        self.stdout.lines().filter(|l| !l.trim().is_empty()).map(json).collect()
    }

    /// The last JSON line of stdout, which must be the `summary` event.
    pub fn summary(&self) -> Value {
        let last = self.stdout.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        let v: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.describe()));
        assert_eq!(v["event"], "summary", "{}", self.describe());
        v
    }

    /// stderr without the status lines a slow step writes when stderr is not a terminal
    /// (`reading traceable functions...`, after a second): what is left is the diagnosis,
    /// whatever the machine's speed.
    pub fn diagnosis(&self) -> String {
        self.stderr.lines().filter(|l| !l.ends_with("...")).map(|l| format!("{l}\n")).collect()
    }

    pub fn describe(&self) -> String {
        format!("{}\n--- stdout\n{}\n--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

/// For tests that keep the [`Output`] of `Command::output` rather than a [`Run`].
pub fn describe(out: &Output) -> String {
    Run::from(out).describe()
}

/// Runs the CLI to its end, for commands that attach nothing the test's own reads would
/// disturb.
pub fn run(args: &[&str]) -> Run {
    let out = Command::new(bin()).args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", bin().display()));
    Run::from(&out)
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Where the CLI says it has attached: the `attached` event on stdout with `--json`, a
/// line on stderr without.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The CLI in the background. Its output is read through buffers, so one read returns a
/// whole line the CLI wrote at once: waiting for the `attached` line makes no read of this
/// process after the attach. What the waits read is kept for the [`Run`].
pub struct Cli {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: BufReader<ChildStderr>,
    seen_stdout: String,
    seen_stderr: String,
}

impl Cli {
    pub fn spawn(args: &[&str]) -> Cli {
        let mut child = Command::new(bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin().display()));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = BufReader::new(child.stderr.take().unwrap());
        Cli { child, stdout, stderr, seen_stdout: String::new(), seen_stderr: String::new() }
    }

    /// Reads `stream` until a line for which `until` holds, and returns it (without its
    /// newline); fails with the CLI's output if it exits first.
    pub fn wait_for_line(&mut self, stream: Stream, until: impl Fn(&str) -> bool) -> String {
        loop {
            let mut line = String::new();
            let (reader, seen) = match stream {
                Stream::Stdout => (&mut self.stdout as &mut dyn BufRead, &mut self.seen_stdout),
                Stream::Stderr => (&mut self.stderr as &mut dyn BufRead, &mut self.seen_stderr),
            };
            if reader.read_line(&mut line).unwrap() == 0 {
                let r = self.finish();
                panic!("the CLI ended before the line waited for on {stream:?}:\n{}", r.describe());
            }
            seen.push_str(&line);
            let line = line.trim_end_matches('\n');
            if until(line) {
                return line.to_string();
            }
        }
    }

    /// Reads stdout's JSON events until one of type `event`, and returns it.
    pub fn wait_for(&mut self, event: &str) -> Value {
        json(&self.wait_for_line(Stream::Stdout, |l| json(l)["event"] == event))
    }

    pub fn signal(&self, sig: &str) {
        signal(&self.child, sig);
    }

    /// Waits for the CLI to exit, then reads the rest of its output (not before: reading is
    /// a vfs_read while it may still be attached).
    pub fn finish(&mut self) -> Run {
        let status = self.child.wait().unwrap();
        self.stdout.read_to_string(&mut self.seen_stdout).unwrap();
        self.collect(status)
    }

    /// Reads stdout while waiting for the CLI to exit, within a minute: a CLI with more to
    /// write than the pipe holds (trace's events) would otherwise wait for the reader for
    /// ever. Only for tests whose reads the CLI does not count.
    pub fn finish_reading_meanwhile(&mut self) -> Run {
        let Cli { child, stdout, seen_stdout, .. } = self;
        let status = std::thread::scope(|s| {
            s.spawn(|| stdout.read_to_string(seen_stdout).unwrap());
            wait_within_a_minute(child, String::new)
        });
        self.collect(status)
    }

    fn collect(&mut self, status: ExitStatus) -> Run {
        self.stderr.read_to_string(&mut self.seen_stderr).unwrap();
        Run { status, stdout: std::mem::take(&mut self.seen_stdout), stderr: std::mem::take(&mut self.seen_stderr) }
    }
}

/// Through kill(1), as a user would send it; `sig` without its `SIG`.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().unwrap();
    assert!(ok.success(), "kill -{sig} failed");
}

/// A CLI that does not end must fail the test rather than hang the VM run: kills it after a
/// minute and fails with `context()` (what it wrote, where the caller has that).
pub fn wait_within_a_minute(child: &mut Child, context: impl FnOnce() -> String) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the CLI did not end within a minute:\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `work` in a thread named `name` and returns the thread's id: `--comm` and `--by
/// comm` see the name, and only the workload's calls have it.
pub fn in_named_thread(name: &str, work: impl FnOnce() + Send) -> u32 {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(s, move || {
                // /proc/thread-self links to PID/task/TID: a readlink, neither a read nor an
                // open, which the workloads are.
                let link = std::fs::read_link("/proc/thread-self").unwrap();
                let tid = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
                work();
                tid
            })
            .unwrap()
            .join()
            .unwrap()
    })
}

/// A file of the test's own for pread(2) and pwrite(2), one vfs_read or vfs_write each:
/// with `--pid` the counts are exact. Made before the CLI attaches where the test can, and
/// removed on drop.
pub struct Workload {
    file: std::fs::File,
    path: PathBuf,
}

impl Workload {
    /// `tag` names the file (`multiprobe-TAG-PID` in the temporary directory).
    pub fn new(tag: &str) -> Workload {
        let path = std::env::temp_dir().join(format!("multiprobe-{tag}-{}", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        Workload { file, path }
    }

    pub fn read(&self, n: usize) {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 8];
        for _ in 0..n {
            self.file.read_at(&mut buf, 0).unwrap();
        }
    }

    pub fn write(&self, n: usize) {
        use std::os::unix::fs::FileExt;
        for _ in 0..n {
            self.file.write_at(b"multiprobe", 0).unwrap();
        }
    }

    /// 3 reads, 5 writes: two counts no other function shares.
    pub fn run(&self) {
        self.read(3);
        self.write(5);
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Every link of the kernel, id and type: a run's new ones show it attached, and the same
/// set after it shows it left nothing behind.
pub fn links() -> BTreeSet<(u32, u32)> {
    use multiprobe::raw::{self, ObjKind};
    use std::os::fd::AsFd;
    let mut out = BTreeSet::new();
    let mut id = 0;
    while let Ok(Some(next)) = raw::get_next_id(ObjKind::Link, id) {
        id = next;
        // A link can go away between the two calls.
        if let Ok(fd) = raw::get_fd_by_id(ObjKind::Link, id)
            && let Ok(info) = raw::link_info(fd.as_fd(), None, None)
        {
            out.insert((id, info.link_type));
        }
    }
    out
}

/// The kernel frees the links of a closed process a moment later (RCU): waits up to 10 s
/// for them to come back to `want`.
pub fn links_settle_to(want: &BTreeSet<(u32, u32)>) -> BTreeSet<(u32, u32)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = links();
        if now == *want || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
