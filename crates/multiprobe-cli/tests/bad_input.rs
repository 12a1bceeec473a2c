//! Bad command lines and broken outputs, natively and in every VM: each gets one clear error
//! naming the input or stdout and a non-zero exit, never a panic, a hang or lost output
//! behind exit code 0. All are refused before anything is attached.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::{bin, describe};

/// Runs the command; it must fail as a usage error (exit 2) whose first line is `first`.
fn refused(args: &[&str], first: &str) {
    let out = Command::new(bin()).args(args).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
    assert_eq!(stderr.lines().next(), Some(first), "{args:?}: {}", describe(&out));
}

#[test]
fn durations_beyond_the_maximum_are_refused_not_a_panic() {
    let max = "the maximum of 365 days (8760h)";
    refused(
        &["count", "vfs_read", "--duration", "18446744073709551615s18446744073709551615s"],
        &format!(
            "error: invalid value for --duration <D>: `18446744073709551615s18446744073709551615s` is longer than {max}"
        ),
    );
    refused(
        &["count", "vfs_read", "--duration", "99999999999h"],
        &format!("error: invalid value for --duration <D>: `99999999999h` is longer than {max}"),
    );
    refused(
        &["count", "vfs_read", "--interval", "10000000000000000000s"],
        &format!("error: invalid value for --interval <D>: `10000000000000000000s` is longer than {max}"),
    );
    refused(
        &["latency", "vfs_read", "-d", "1e300"],
        &format!("error: invalid value for --duration <D>: `1e300` is longer than {max}"),
    );
}

#[test]
fn negative_durations_are_values_refused_as_such() {
    for (args, value) in [
        (&["count", "vfs_read", "--duration", "-1"][..], "-1"),
        (&["count", "vfs_read", "-d", "-5s"], "-5s"),
        (&["latency", "vfs_read", "--duration", "-1"], "-1"),
    ] {
        refused(
            args,
            &format!(
                "error: invalid value for --duration <D>: `{value}`: a duration must be positive (examples: 5s, 100ms, 2m)"
            ),
        );
    }
    refused(
        &["count", "vfs_read", "--interval", "-1s"],
        "error: invalid value for --interval <D>: `-1s`: a duration must be positive (examples: 5s, 100ms, 2m)",
    );
}

/// `--interval 1ns` used to attach, then spin in its catch-up loop for ever, deaf to SIGTERM.
#[test]
fn intervals_below_the_minimum_are_refused() {
    for d in ["1ns", "5ms", "0s"] {
        let first = format!(
            "error: invalid value for --interval <D>: `{d}`: the interval must be at least 10ms (each report reads every CPU's counters)"
        );
        refused(&["count", "vfs_read", "--interval", d], &first);
    }
}

#[test]
fn a_pid_that_names_no_process_is_refused() {
    refused(
        &["count", "vfs_read", "--pid", "99999999"],
        "error: invalid value for --pid <PID>: no process has pid 99999999 (there is no /proc/99999999); is it still running?",
    );
    refused(
        &["latency", "vfs_read", "--pid", "-3"],
        "error: invalid value for --pid <PID>: `-3` is not a process id (a number from 1)",
    );
}

/// A newline in a pattern used to cut the error message in two; now it is escaped, and the
/// error is refused before the kernel is asked anything.
#[test]
fn control_characters_in_patterns_are_escaped_in_the_error() {
    let why = "contains the control character `\\n`: function names have none";
    refused(
        &["count", "vfs_read\nvfs_write"],
        &format!("error: invalid value for <PATTERN>...: `vfs_read\\nvfs_write` {why}"),
    );
    refused(&["list", "vfs_\n*"], &format!("error: invalid value for [PATTERN]...: `vfs_\\n*` {why}"));
    refused(
        &["latency", "vfs_read", "-x", "a\x1b[2J"],
        "error: invalid value for --exclude <PAT>: `a\\u{1b}[2J` contains the control character `\\u{1b}`: function names have none",
    );
}

/// `>&-`: the command would write into the /dev/null Rust's runtime puts in place of a
/// closed stdout, and exit 0 with the output lost.
#[test]
fn a_closed_stdout_is_an_error_naming_it() {
    for args in ["completions bash", "list --json", "count vfs_read --json --duration 0s", "features"] {
        let out = Command::new("sh")
            .args(["-c", &format!("exec \"$0\" {args} >&-"), bin().to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: stdout is closed ("),
            "{args}: {}",
            describe(&out)
        );
    }
    // A /dev/null of one's own is no error.
    let out = Command::new(bin()).args(["completions", "bash"]).stdout(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn a_full_stdout_is_named() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = Command::new(bin()).args(["completions", "bash"]).stdout(full).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: writing to stdout failed: No space left on device"), "{}", describe(&out));
    assert!(stderr.contains("\nhint: the file system stdout is written to is full"), "{}", describe(&out));
}

/// A reader that exits before the output is written (`multiprobe list | head -0`): EPIPE.
#[test]
fn a_stdout_whose_reader_left_is_named() {
    // The only read end, closed before the command starts: every write meets no reader
    // (closing it after the spawn would race with a command that writes before).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child =
        Command::new(bin()).args(["completions", "bash"]).stdout(writer).stderr(Stdio::piped()).spawn().unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: writing to stdout failed: Broken pipe"), "{stderr}");
    assert!(stderr.contains("\nhint: stdout is a pipe whose reader exited"), "{stderr}");
}
