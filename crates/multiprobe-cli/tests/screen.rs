//! `count`'s live table on a terminal, end to end in the VMs: the CLI runs on a
//! pseudo-terminal this test opens (rustix's safe pty calls: no `unsafe` here), and the
//! bytes it writes there show that it switched to the alternate screen, switched back to the
//! normal one, and printed its summary after that, where it stays: at the end of
//! `--duration` and after SIGINT.

mod common;

use std::fs::File;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{bin, require_kprobes, wait_within_a_minute};
use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, unlockpt};

/// xterm's private modes: the alternate screen on, and back off (src/screen.rs).
const ENTER: &str = "\x1b[?1049h";
const LEAVE: &str = "\x1b[?1049l";

/// The CLI on a new pseudo-terminal (stdin, stdout and stderr), and what it writes there as
/// it comes.
struct OnPty {
    child: Child,
    output: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl OnPty {
    fn spawn(args: &[&str]) -> OnPty {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        // The terminal's other end straight from the master (TIOCGPTPEER, 4.13+): no need
        // for devpts to be mounted at /dev/pts, which the VMs do not do.
        let slave = ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("TIOCGPTPEER");
        let child = {
            // The Command holds its copies of the terminal until dropped: the master then
            // reads EIO once the CLI exits.
            let slave = File::from(slave);
            Command::new(bin())
                .args(args)
                .env("TERM", "xterm")
                .env_remove("NO_COLOR")
                .stdin(Stdio::from(slave.try_clone().unwrap()))
                .stdout(Stdio::from(slave.try_clone().unwrap()))
                .stderr(Stdio::from(slave))
                .spawn()
                .unwrap_or_else(|e| panic!("running {}: {e}", bin().display()))
        };
        let (send, output) = mpsc::channel();
        let mut master = File::from(master);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // 0 or EIO: every copy of the other end is closed.
            while let Ok(n @ 1..) = master.read(&mut buf) {
                if send.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        OnPty { child, output, seen: Vec::new() }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads until the output contains `what`, within a minute.
    fn wait_for(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.text().contains(what) {
            match self.output.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(chunk) => self.seen.extend(chunk),
                Err(_) => panic!("no {what:?} within a minute:\n{:?}", self.text()),
            }
        }
    }

    /// Waits for the CLI to exit (within a minute) and reads all it wrote.
    fn finish(mut self) -> String {
        let seen = &self.seen;
        let status = wait_within_a_minute(&mut self.child, || format!("{:?}", String::from_utf8_lossy(seen)));
        while let Ok(chunk) = self.output.recv_timeout(Duration::from_secs(10)) {
            self.seen.extend(chunk);
        }
        let text = self.text();
        assert!(status.success(), "{status}:\n{text:?}");
        text
    }
}

/// The alternate screen was entered, left after the last time it was entered, and the
/// summary (`ending`, on its last line) came after that, on the normal screen.
fn check_restored(text: &str, ending: &str) {
    let enter = text.rfind(ENTER).unwrap_or_else(|| panic!("never on the alternate screen:\n{text:?}"));
    let leave = text.rfind(LEAVE).unwrap_or_else(|| panic!("the normal screen never came back:\n{text:?}"));
    assert!(leave > enter, "left before the last enter:\n{text:?}");
    let summary = text.rfind(ending).unwrap_or_else(|| panic!("no {ending:?}:\n{text:?}"));
    assert!(summary > leave, "the summary is on the alternate screen:\n{text:?}");
}

#[test]
fn count_alt_screen_is_left_after_the_run_and_after_sigint() {
    require_kprobes!();
    let pid = std::process::id().to_string();

    let run = OnPty::spawn(&["count", "vfs_fsync", "--pid", &pid, "--duration", "1s", "--interval", "300ms"]);
    check_restored(&run.finish(), "not called. Attached in");

    let mut run = OnPty::spawn(&["count", "vfs_fsync", "--pid", &pid, "--interval", "300ms"]);
    run.wait_for(ENTER);
    std::thread::sleep(Duration::from_millis(700));
    common::signal(&run.child, "INT");
    check_restored(&run.finish(), "(ended by SIGINT)");
}
