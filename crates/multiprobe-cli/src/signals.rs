//! Ending a run on SIGINT or SIGTERM: the signal only wakes the main loop, which detaches
//! and prints the summary. A second signal exits at once: the kernel detaches whatever the
//! process had attached as it closes the process's file descriptors.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Instant;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Why a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `--duration` elapsed.
    Duration,
    /// SIGINT (Ctrl-C) or SIGTERM.
    Signal(i32),
}

/// Signals caught since [`Stop::install`].
pub struct Stop {
    rx: Receiver<i32>,
    /// Set with the first signal, for the library to poll while it attaches per function.
    flag: Arc<AtomicBool>,
}

impl Stop {
    /// Catches SIGINT and SIGTERM from now on (before attaching, so that an interrupt while
    /// attaching still ends in a clean detach).
    pub fn install() -> io::Result<Stop> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let (tx, rx) = mpsc::channel();
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        std::thread::spawn(move || {
            for (n, sig) in signals.forever().enumerate() {
                if n > 0 {
                    crate::screen::restore();
                    eprintln!("\ninterrupted again: exiting now (the kernel detaches the probes as the process exits)");
                    std::process::exit(128 + sig);
                }
                set.store(true, Ordering::Relaxed);
                let _ = tx.send(sig);
            }
        });
        Ok(Stop { rx, flag })
    }

    /// A flag set by the first signal: given to the attach (`KprobeMulti::cancel_on`), it
    /// stops a slow per-function attach at once, detaching what it made.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Waits for a signal until `deadline` (`None`: for as long as it takes); `Some` if one
    /// came.
    pub fn wait_until(&self, deadline: Option<Instant>) -> Option<End> {
        let Some(deadline) = deadline else {
            return self.rx.recv().ok().map(End::Signal);
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(timeout) {
            Ok(sig) => Some(End::Signal(sig)),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// A signal that already came, without waiting.
    pub fn pending(&self) -> Option<End> {
        self.rx.try_recv().ok().map(End::Signal)
    }
}

/// The signal's name, for messages and JSON.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "signal",
    }
}
