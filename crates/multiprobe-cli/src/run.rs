//! What `count` and `latency` share: the options of a tracing run and its main loop.

use std::time::{Duration, Instant};

use clap::Args;

use crate::duration;
use crate::error::CliError;
use crate::signals::{End, Stop};

/// Options of a tracing run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Stop after D (`5s`, `100ms`, `2m`; `0s`: attach, report and detach at once).
    /// Default: until Ctrl-C or SIGTERM.
    #[arg(short = 'd', long, value_name = "D", value_parser = duration::parse)]
    pub duration: Option<Duration>,
    /// Only calls made by this process (all its threads).
    #[arg(short = 'p', long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,
    /// JSON lines on stdout: an `attached` event, `interval` events, a final `summary`.
    #[arg(long)]
    pub json: bool,
    /// Fail where the kernel has no kprobe_multi links, instead of attaching one kprobe per
    /// function (what libbpf does).
    #[arg(long)]
    pub no_fallback: bool,
}

impl RunArgs {
    /// `for 5.0s` or `until Ctrl-C`, for messages.
    pub fn until(&self) -> String {
        match self.duration {
            Some(d) => format!("for {}", duration::human(d)),
            None => "until Ctrl-C".into(),
        }
    }
}

/// Waits until `duration` has passed since `started` or a signal comes, calling `tick` every
/// `interval`. Returns why the run ended.
pub fn run_until(
    stop: &Stop,
    started: Instant,
    duration: Option<Duration>,
    interval: Option<Duration>,
    mut tick: impl FnMut() -> Result<(), CliError>,
) -> Result<End, CliError> {
    // A signal while attaching ends the run before it starts.
    if let Some(end) = stop.pending() {
        return Ok(end);
    }
    let deadline = duration.map(|d| started + d);
    let mut next_tick = interval.map(|i| started + i);
    loop {
        let wake = [deadline, next_tick].into_iter().flatten().min();
        if let Some(end) = stop.wait_until(wake) {
            return Ok(end);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(End::Duration);
        }
        if let (Some(t), Some(i)) = (next_tick, interval)
            && now >= t
        {
            tick()?;
            // A slow tick skips the intervals it overran rather than bunching them up.
            let mut next = t + i;
            while next <= Instant::now() {
                next += i;
            }
            next_tick = Some(next);
        }
    }
}
