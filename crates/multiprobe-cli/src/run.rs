//! What `count` and `latency` share: the options of a tracing run and its main loop.

use std::time::{Duration, Instant};

use clap::Args;

use crate::checked::Checked;
use crate::duration;
use crate::error::CliError;
use crate::signals::{End, Stop};

/// Options of a tracing run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Stop after D (`5s`, `100ms`, `2m`, at most a year; `0s`: attach, report and detach at
    /// once). Default: until Ctrl-C or SIGTERM.
    // Hyphen values are taken so that `-1` gets "must be positive", not "unexpected argument".
    #[arg(short = 'd', long, value_name = "D", value_parser = Checked(duration::parse), allow_hyphen_values = true)]
    pub duration: Option<Duration>,
    /// Only calls made by this process (all its threads); it must exist when the run starts.
    #[arg(short = 'p', long, value_name = "PID", value_parser = Checked(parse_pid), allow_hyphen_values = true)]
    pub pid: Option<u32>,
    /// JSON lines on stdout instead of text: an `attached` event, this command's events (see
    /// the examples below), a final `summary`.
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

/// Parses `--pid`: a number from 1, naming a process that exists now (a typo would otherwise
/// count nothing, silently). Checked in /proc, which shows the processes of its pid namespace;
/// the BPF side compares the pid the root namespace sees, so inside a container the two agree
/// only where the container shares the host's pid namespace.
fn parse_pid(text: &str) -> Result<u32, String> {
    let shown = crate::error::quoted(text);
    let pid: u32 = match text.trim().parse() {
        Ok(0) | Err(_) => return Err(format!("{shown} is not a process id (a number from 1)")),
        Ok(pid) => pid,
    };
    // Without /proc (not mounted) nothing can be checked: the filter is taken as given.
    let proc = std::path::Path::new("/proc");
    if proc.join("self").exists() && !proc.join(pid.to_string()).exists() {
        return Err(format!("no process has pid {pid} (there is no /proc/{pid}); is it still running?"));
    }
    Ok(pid)
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
    let after = |d: Duration| {
        started.checked_add(d).ok_or_else(|| CliError::new(format!("{} is too far in the future", duration::human(d))))
    };
    let deadline = duration.map(after).transpose()?;
    let mut next_tick = interval.map(after).transpose()?;
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
            next_tick =
                Some(next_tick_after(t, i, Instant::now()).ok_or_else(|| CliError::new("the clock overflowed"))?);
        }
    }
}

/// The first tick after `now` of a clock that ticked at `last` every `interval`: a slow tick
/// skips the intervals it overran rather than bunching them up. Computed, not stepped: a
/// loop adding one interval at a time never caught up with `--interval 1ns`.
fn next_tick_after(last: Instant, interval: Duration, now: Instant) -> Option<Instant> {
    let behind = now.saturating_duration_since(last).as_nanos();
    let steps = behind / interval.as_nanos().max(1) + 1;
    let ahead = interval.as_nanos().checked_mul(steps)?;
    last.checked_add(Duration::from_nanos(u64::try_from(ahead).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_tick_is_computed_past_now() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(next_tick_after(t, ms(100), t), Some(t + ms(100)));
        assert_eq!(next_tick_after(t, ms(100), t + ms(250)), Some(t + ms(300)));
        assert_eq!(next_tick_after(t, ms(100), t + ms(300)), Some(t + ms(400)));
        // A nanosecond clock an hour behind: one division, not 3.6e12 additions.
        let ns = Duration::from_nanos(1);
        assert_eq!(next_tick_after(t, ns, t + Duration::from_secs(3600)), Some(t + Duration::from_secs(3600) + ns));
    }

    #[test]
    fn pids_must_name_a_process() {
        assert_eq!(parse_pid(&std::process::id().to_string()), Ok(std::process::id()));
        assert!(parse_pid("0").unwrap_err().contains("not a process id"));
        assert!(parse_pid("-5").unwrap_err().contains("not a process id"));
        assert!(parse_pid("1\n2").unwrap_err().contains("`1\\n2`"));
        // Above the kernel's pid_max (4194304 at most): no such process.
        assert_eq!(
            parse_pid("99999999").unwrap_err(),
            "no process has pid 99999999 (there is no /proc/99999999); is it still running?"
        );
    }
}
