//! `multiprobe export`: a long-running service that serves the calls (and, with
//! `--latency`, the latency histograms) of the selected kernel functions as Prometheus
//! metrics on `/metrics`, read from the BPF maps at each scrape.
//!
//! One probe set comes from the flags, or several from a TOML file (`config.rs`). Each is
//! attached with `count`'s and `latency`'s own code (`probes.rs`, `sets.rs`); the values are
//! named and encoded with `prometheus-client` (`metrics.rs`) and served with `tiny_http`
//! (`server.rs`) on a thread of its own. The main thread waits for `--duration` or a signal,
//! and once a second looks for modules that loaded or unloaded (`modules.rs`) and for a
//! SIGHUP asking to reload the config file; at the end it stops the server and detaches.

mod config;
mod metrics;
mod modules;
mod probes;
mod server;
mod sets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use multiprobe::symbols::Listing;

use self::config::SetSpec;
use self::server::Listener;
use self::sets::{Attacher, Sets};
use crate::checked::Checked;
use crate::duration;
use crate::error::CliError;
use crate::output;
use crate::probe;
use crate::run;
use crate::select::{SelectArgs, parse_pattern};
use crate::signals::{self, End, Stop};

/// How often `/proc/modules` and the SIGHUP flag are looked at.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Function patterns: NAME_GLOB, MODULE_GLOB:NAME_GLOB or vmlinux:NAME_GLOB.
    #[arg(
        value_name = "PATTERN",
        value_parser = Checked(parse_pattern),
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub patterns: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Probe sets from a TOML file instead of the patterns (several sets, with names and
    /// labels of their own: docs/export.md); SIGHUP reads it again.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["latency", "exclude", "no_deny_list"])]
    pub config: Option<PathBuf>,
    /// Also measure the latency of the functions these patterns select (the excludes apply
    /// too), as histograms with log2 buckets.
    #[arg(long, value_name = "PATTERN", num_args = 1..)]
    pub latency: Vec<String>,
    /// Address and port to serve /metrics and /healthz on: `127.0.0.1:9435` for a local
    /// Prometheus, `0.0.0.0:9435` or `[::]:9435` for others; port 0 picks a free one.
    #[arg(long, value_name = "ADDR:PORT", required = true)]
    pub listen: SocketAddr,
    /// Stop after D (`30s`, `2m`, `1h`). Default: until SIGTERM or Ctrl-C.
    #[arg(short = 'd', long, value_name = "D", value_parser = duration::parse)]
    pub duration: Option<Duration>,
    /// Fail where the kernel has no kprobe_multi links, instead of attaching one kprobe per
    /// function.
    #[arg(long)]
    pub no_fallback: bool,
    /// Measure latency with a kprobe.multi + kretprobe.multi pair even where the kernel has
    /// kprobe sessions.
    #[arg(long)]
    pub no_session: bool,
}

pub fn run(args: &ExportArgs, listing: &Listing) -> Result<(), CliError> {
    let stop = Stop::install()?;
    // SIGHUP would end the process: caught from the start, acted on in the main loop.
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| CliError::new(format!("cannot catch SIGHUP: {e}")))?;
    // Before anything is attached: a port in use is the likeliest mistake, then the file.
    let listener = Listener::bind(args.listen)?;
    let (specs, named) = match &args.config {
        Some(path) => (config::load(path)?, true),
        None => (vec![flag_set(args)], false),
    };
    let attacher = Attacher {
        strategy: probe::choose(args.no_fallback)?,
        no_session: args.no_session,
        no_fallback: args.no_fallback,
        listing,
        stop: &stop,
    };
    // Link info reads the kernel's BTF: read it before attaching, not at the first scrape.
    let _ = multiprobe::features::kprobe_multi_link_info();
    let mut attached = Vec::new();
    // `pending` takes the signal: asked once per set, its answer kept.
    let mut interrupted = false;
    for spec in specs {
        interrupted = stop.pending().is_some();
        if interrupted {
            break;
        }
        // A failure drops (detaches) the sets attached before it on the way out.
        attached.push(attacher.attach(spec, named)?);
    }
    if interrupted || stop.pending().is_some() {
        eprintln!("interrupted before serving: detaching");
        probe::detach(Sets::new(attached).into_links());
        return Ok(());
    }
    let n_sets = attached.len();
    let sets = Sets::new(attached);

    let until = match args.duration {
        Some(d) => format!("for {}", duration::human(d)),
        None => "until SIGTERM or Ctrl-C".into(),
    };
    let (calls, latency) = sets.lens();
    let latency_note =
        if latency > 0 { format!(" (latency of {})", output::functions(latency)) } else { String::new() };
    let sets_note =
        if named { format!(" in {n_sets} set{}", if n_sets == 1 { "" } else { "s" }) } else { String::new() };
    eprintln!(
        "exporting calls of {}{latency_note}{sets_note} on http://{}/metrics {until}",
        output::functions(calls),
        listener.addr()
    );

    let started = Instant::now();
    let mut watch = modules::ModuleWatch::new()
        .map_err(|e| {
            crate::error::warning(format_args!(
                "cannot read /proc/modules ({e}): modules loaded later are not followed"
            ))
        })
        .ok();
    let (end, scrapes) = std::thread::scope(|scope| {
        let serving = scope.spawn(|| listener.serve(&sets));
        let end = run::run_until(&stop, started, args.duration, Some(POLL), || {
            if let Some(change) = watch.as_mut().and_then(|w| w.poll().ok().flatten()) {
                sets.follow_modules(&change, &attacher);
            }
            if hup.swap(false, Ordering::Relaxed) {
                match &args.config {
                    Some(path) => sets.reload(path, &attacher),
                    None => eprintln!("SIGHUP: no --config file to reload; going on"),
                }
            }
            Ok(())
        });
        listener.stop();
        (end, serving.join().unwrap_or(0))
    });
    let ran = started.elapsed();
    let detach_time = probe::detach(sets.into_links());
    let how = match end? {
        End::Duration => "after --duration".to_string(),
        End::Signal(sig) => format!("by {}", signals::name(sig)),
    };
    eprintln!(
        "ended {how}: ran {}, served {scrapes} scrape{}, detached in {}",
        duration::human(ran),
        if scrapes == 1 { "" } else { "s" },
        duration::human(detach_time)
    );
    Ok(())
}

/// The one set the flags describe.
fn flag_set(args: &ExportArgs) -> SetSpec {
    SetSpec {
        name: "default".into(),
        patterns: args.patterns.clone(),
        exclude: args.select.exclude.clone(),
        latency: args.latency.clone(),
        labels: Default::default(),
        no_deny_list: args.select.no_deny_list,
    }
}
