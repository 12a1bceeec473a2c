//! A status line on stderr while something slow runs (reading the traceable functions,
//! attaching thousands of kprobes), so a long wait is never a silent one.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// Runs `work`, showing `label... 1.2s` on stderr, redrawn a few times a second when stderr
/// is a terminal (and written once, after a second, when it is not, so logs show what a
/// long step was). Returns the result and how long it took; the line is erased at the end.
pub fn run<T>(label: &str, work: impl FnOnce() -> T) -> (T, Duration) {
    run_after(label, Duration::ZERO, work)
}

/// As [`run`], but silent for the first `quiet`: for steps that are quick but for a few
/// kernels (detaching per-function kprobes on 6.1 takes seconds), where a line flashing by
/// on every run would be noise.
pub fn run_after<T>(label: &str, quiet: Duration, work: impl FnOnce() -> T) -> (T, Duration) {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let result = std::thread::scope(|s| {
        s.spawn(move || {
            let mut shown = false;
            loop {
                let first = if tty { TICK } else { Duration::from_secs(1) };
                let wait = if shown { TICK } else { first.max(quiet) };
                match done_rx.recv_timeout(wait) {
                    Err(mpsc::RecvTimeoutError::Timeout) if tty => {
                        eprint!("\r\x1b[K{label}... {:.1}s", start.elapsed().as_secs_f64());
                        let _ = std::io::stderr().flush();
                        shown = true;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) if !shown => {
                        eprintln!("{label}...");
                        shown = true;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            if tty && shown {
                eprint!("\r\x1b[K");
            }
        });
        let result = work();
        let _ = done_tx.send(());
        result
    });
    (result, start.elapsed())
}
