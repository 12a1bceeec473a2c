//! Boots a kernel and an initramfs in QEMU and watches its serial console.
//!
//! No KVM on the project's machines (nested virtualisation does not work), so QEMU emulates
//! the CPU (TCG). A run ends when the guest powers off, or is cut short by a kernel crash
//! on the console, a timeout, or a silent console.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Kernel messages that mean the guest is broken. Matched at the start of a line or after
/// a printk timestamp (`[   12.345678] `), so test output mentioning them does not count.
const CRASH_MARKERS: &[&str] = &[
    "Kernel panic",
    "Oops",
    "BUG: ",
    "general protection fault",
    "watchdog: BUG: soft lockup",
    "blocked for more than", // the hung task detector: "INFO: task x blocked for more than"
    "INFO: task ",
    "reboot: Restarting system",
];

/// How long to keep reading after a crash marker, so the log gets the whole trace.
const CRASH_GRACE: Duration = Duration::from_secs(3);
/// How long the guest may take to power off after its done sentinel.
const POWEROFF_GRACE: Duration = Duration::from_secs(30);

/// One VM boot.
pub struct Vm {
    /// The kernel image.
    pub vmlinuz: PathBuf,
    /// The gzip cpio initramfs.
    pub initramfs: PathBuf,
    /// Extra kernel command line parameters.
    pub append: Vec<String>,
    /// The whole run may not take longer.
    pub timeout: Duration,
    /// The console may not stay silent longer.
    pub inactivity: Duration,
    /// Every console line is written here.
    pub log: PathBuf,
    /// The console line the guest prints when it is done; the run fails without it.
    pub done_marker: String,
    /// Host ports forwarded to guest ports; none: the VM has no network card at all.
    pub forwards: Vec<Forward>,
}

/// A TCP port of 127.0.0.1 on the host forwarded to a port of the guest (QEMU user
/// networking: the guest is 10.0.2.15, the host 10.0.2.2 as seen from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The port QEMU listens on, on the host's loopback only.
    pub host: u16,
    /// Where in the guest connections go.
    pub guest: u16,
}

impl std::str::FromStr for Forward {
    type Err = String;

    /// `HOST_PORT:GUEST_PORT`.
    fn from_str(text: &str) -> Result<Forward, String> {
        let port = |p: &str, side: &str| match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("{side} port {p:?} of {text:?} is not a port number from 1 to 65535")),
            Ok(n) => Ok(n),
        };
        let (host, guest) =
            text.split_once(':').ok_or_else(|| format!("{text:?} is not HOST_PORT:GUEST_PORT (say 9435:9435)"))?;
        Ok(Forward { host: port(host, "host")?, guest: port(guest, "guest")? })
    }
}

/// QEMU's network options: a virtio NIC on user networking with the forwards, the host side
/// bound to 127.0.0.1 so that nothing beyond this machine reaches the guest.
fn network_args(forwards: &[Forward]) -> Vec<String> {
    if forwards.is_empty() {
        return vec!["-nic".into(), "none".into()];
    }
    let mut netdev = "user,id=net0".to_string();
    for f in forwards {
        netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest));
    }
    vec!["-netdev".into(), netdev, "-device".into(), "virtio-net-pci,netdev=net0,romfile=".into()]
}

/// What a VM run printed and how it ended.
pub struct Console {
    /// Every console line, `\r` removed.
    pub lines: Vec<String>,
    /// Why the run failed (crash, timeout, missing done sentinel), if it did.
    pub failure: Option<String>,
    /// Wall time from QEMU's start to its exit.
    pub elapsed: Duration,
}

impl Console {
    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> &[String] {
        &self.lines[self.lines.len().saturating_sub(n)..]
    }
}

impl Vm {
    fn command(&self) -> Command {
        let mut append = vec![
            "console=ttyS0",
            "quiet",
            // Any crash ends the boot at once: panic reboots, -no-reboot makes QEMU exit.
            "panic=-1",
            "oops=panic",
            "softlockup_panic=1",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
        append.extend(self.append.iter().cloned());
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max", "-m", "2048"])
            .args(["-smp", "2", "-nographic", "-no-reboot"])
            .args(network_args(&self.forwards))
            .arg("-kernel")
            .arg(&self.vmlinuz)
            .arg("-initrd")
            .arg(&self.initramfs)
            .arg("-append")
            .arg(append.join(" "));
        cmd
    }

    /// Boots the VM with the serial console on the user's terminal (for interactive shells);
    /// returns when QEMU exits.
    pub fn run_interactive(&self) -> Result<ExitStatus> {
        self.command().status().context("running qemu-system-x86_64")
    }

    /// Boots the VM, passing every console line to `on_line` as it arrives, and waits for
    /// it to power off after printing the done sentinel.
    pub fn run(&self, on_line: &mut dyn FnMut(&str)) -> Result<Console> {
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut log = std::io::BufWriter::new(
            std::fs::File::create(&self.log).with_context(|| format!("creating {}", self.log.display()))?,
        );
        let start = Instant::now();
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running qemu-system-x86_64")?;
        let (tx, rx) = mpsc::channel();
        forward_lines(child.stdout.take().unwrap(), tx.clone());
        forward_lines(child.stderr.take().unwrap(), tx);

        let mut lines = Vec::new();
        let mut failure = None;
        let mut done_at = None;
        let mut crash_at = None;
        let mut last_output = Instant::now();
        loop {
            let now = Instant::now();
            // The nearest deadline decides how long to wait for the next line; the graces
            // after the done sentinel or a crash end the run without a (new) failure.
            let mut deadlines = vec![
                (start + self.timeout, "timed out"),
                (last_output + self.inactivity, "console silent for too long"),
            ];
            deadlines.extend(done_at.map(|t: Instant| (t + POWEROFF_GRACE, "")));
            deadlines.extend(crash_at.map(|t: Instant| (t + CRASH_GRACE, "")));
            let (deadline, why) = deadlines.into_iter().min_by_key(|(t, _)| *t).unwrap();
            match rx.recv_timeout(deadline.saturating_duration_since(now)) {
                Ok(line) => {
                    last_output = Instant::now();
                    writeln!(log, "{line}")?;
                    log.flush()?;
                    on_line(&line);
                    if line.contains(&self.done_marker) && done_at.is_none() {
                        done_at = Some(Instant::now());
                    }
                    // After the done sentinel only the power-off remains; a crash before
                    // it is the failure, and the first crash line says the most.
                    if crash_marker(&line).is_some() && failure.is_none() && done_at.is_none() {
                        failure = Some(format!("kernel crash: {}", line.trim()));
                        crash_at = Some(Instant::now());
                    }
                    lines.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if !why.is_empty() && failure.is_none() && done_at.is_none() {
                        failure =
                            Some(format!("{why} (timeout {:?}, inactivity limit {:?})", self.timeout, self.inactivity));
                    }
                    kill(&mut child);
                    break;
                }
                // Both pipes closed: QEMU exited.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = child.wait()?;
        if failure.is_none() && done_at.is_none() {
            failure = Some(format!(
                "the VM stopped without printing {} (QEMU {status}): crash, reboot or \
                 init failure",
                self.done_marker
            ));
        }
        Ok(Console { lines, failure, elapsed: start.elapsed() })
    }
}

/// Sends each line of a pipe to the channel; serial lines end in `\r\n`.
fn forward_lines(pipe: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let line = strip_escapes(&String::from_utf8_lossy(&buf));
            if tx.send(line).is_err() {
                break;
            }
            buf.clear();
        }
    });
}

/// Removes carriage returns and terminal escape sequences (the firmware clears the screen;
/// programs may colour their output), which would garble logs and hide markers.
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => {}
            '\u{1b}' => {
                // CSI: ESC [ parameters final-byte; otherwise a two-character sequence.
                if chars.next_if_eq(&'[').is_some() {
                    while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
                } else {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn kill(child: &mut Child) {
    let _ = child.kill();
}

/// The crash marker in a console line, if any.
pub fn crash_marker(line: &str) -> Option<&'static str> {
    CRASH_MARKERS
        .iter()
        .copied()
        .find(|marker| line.starts_with(marker) || line.match_indices(marker).any(|(at, _)| line[..at].ends_with("] ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spots_kernel_crashes() {
        for line in [
            "[   12.345678] Kernel panic - not syncing: Fatal exception",
            "[    3.1] BUG: unable to handle page fault for address: 0000",
            "[    3.1] Oops: general protection fault, probably for non-canonical address",
            "[   61.0] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [x:12]",
            "[  243.0] INFO: task test:99 blocked for more than 120 seconds.",
            "test a::b ... [    3.1] BUG: kernel NULL pointer dereference",
            "[    9.0] reboot: Restarting system",
        ] {
            assert!(crash_marker(line).is_some(), "{line}");
        }
    }

    #[test]
    fn forwards_bind_the_host_loopback() {
        let f: Forward = "9435:9100".parse().unwrap();
        assert_eq!(f, Forward { host: 9435, guest: 9100 });
        assert_eq!(network_args(&[]), ["-nic", "none"]);
        assert_eq!(
            network_args(&[f, "1:2".parse().unwrap()]),
            [
                "-netdev",
                "user,id=net0,hostfwd=tcp:127.0.0.1:9435-:9100,hostfwd=tcp:127.0.0.1:1-:2",
                "-device",
                "virtio-net-pci,netdev=net0,romfile="
            ]
        );
        for bad in ["9435", "0:1", "1:0", "a:1", "1:65536", ":"] {
            assert!(bad.parse::<Forward>().is_err(), "{bad}");
        }
    }

    #[test]
    fn strips_terminal_escapes() {
        assert_eq!(strip_escapes("\u{1b}c\u{1b}[?7l\u{1b}[2J\u{1b}[0mSeaBIOS\r\n"), "SeaBIOS");
        assert_eq!(strip_escapes("test x ... \u{1b}[32mok\u{1b}[0m"), "test x ... ok");
    }

    #[test]
    fn ignores_test_output() {
        for line in [
            "test tests::oops_handling ... ok",
            "test tests::no_BUG: ok",
            "assertion failed: left: \"Kernel panic\"",
            "[    1.7] reboot: Power down",
        ] {
            assert_eq!(crash_marker(line), None, "{line}");
        }
    }
}
