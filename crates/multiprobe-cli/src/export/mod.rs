//! `multiprobe export`: a long-running service that serves the calls (and, with
//! `--latency`, the latency histograms) of the selected kernel functions as Prometheus
//! metrics on `/metrics`, read from the BPF maps at each scrape.
//!
//! It attaches with `count`'s and `latency`'s own code (`probes.rs`), names and encodes the
//! values with `prometheus-client` (`metrics.rs`) and answers HTTP with `tiny_http`
//! (`server.rs`) on a thread of its own, while the main thread waits for `--duration` or a
//! signal, then stops the server and detaches. Once a second the main thread looks for
//! modules that loaded or unloaded (`modules.rs`) and attaches to, or stops reporting, their
//! matching functions; the probes sit behind a mutex only scrapes and those changes take.

mod metrics;
mod modules;
mod probes;
mod server;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use multiprobe::symbols::Listing;

use self::probes::{CallProbe, LatencyProbe, Probes};
use self::server::Listener;
use crate::duration;
use crate::error::CliError;
use crate::latency;
use crate::output;
use crate::probe;
use crate::probe::Strategy;
use crate::run;
use crate::select::{self, TargetArgs};
use crate::signals::{self, End, Stop};

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
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
    // Before anything is attached: a port in use is the likeliest mistake.
    let listener = Listener::bind(args.listen)?;
    let strategy = probe::choose(args.no_fallback)?;
    let method = if args.latency.is_empty() { None } else { Some(latency::choose(args.no_session, args.no_fallback)?) };
    let calls = args.targets.resolve(listing)?.functions;
    let latency_functions = match method {
        Some(_) => select::resolve(&select::selection(&args.latency, &args.targets.select), listing)?.functions,
        None => Vec::new(),
    };
    if stop.pending().is_some() {
        eprintln!("interrupted before attaching: nothing was attached");
        return Ok(());
    }
    // Link info reads the kernel's BTF: read it before attaching, not at the first scrape.
    let _ = multiprobe::features::kprobe_multi_link_info();
    let calls = CallProbe::attach(strategy, &calls, listing, &stop)?;
    // A failure here drops (detaches) the counting probe on the way out.
    let latency = method.map(|m| LatencyProbe::attach(m, latency_functions, listing, &stop)).transpose()?;
    let probes = Probes::new(calls, latency);

    let until = match args.duration {
        Some(d) => format!("for {}", duration::human(d)),
        None => "until SIGTERM or Ctrl-C".into(),
    };
    let latency_note = match &probes.latency {
        Some(l) => format!(" (latency of {})", output::functions(l.len())),
        None => String::new(),
    };
    eprintln!(
        "exporting calls of {}{latency_note} on http://{}/metrics {until}",
        output::functions(probes.calls_len()),
        listener.addr()
    );

    let started = Instant::now();
    let probes = Mutex::new(probes);
    let mut watch = modules::ModuleWatch::new()
        .map_err(|e| eprintln!("warning: cannot read /proc/modules ({e}): modules loaded later are not followed"))
        .ok();
    let selection = select::selection(&args.targets.patterns, &args.targets.select);
    let (end, scrapes) = std::thread::scope(|scope| {
        let serving = scope.spawn(|| listener.serve(&probes));
        let end = run::run_until(&stop, started, args.duration, Some(MODULE_POLL), || {
            if let Some(change) = watch.as_mut().and_then(|w| w.poll().ok().flatten()) {
                follow_modules(&change, &probes, &selection, strategy, listing, &stop);
            }
            Ok(())
        });
        listener.stop();
        (end, serving.join().unwrap_or(0))
    });
    let ran = started.elapsed();
    let probes = probes.into_inner().unwrap_or_else(|e| e.into_inner());
    let detach_time = probe::detach(probes.into_links());
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

/// How often `/proc/modules` is looked at.
const MODULE_POLL: Duration = Duration::from_secs(1);

/// Drops the functions of unloaded modules from the metrics (detaching their own probes) and
/// attaches a probe to the matching functions of each module that loaded. A failure is a
/// warning: the service goes on with what it has.
fn follow_modules(
    change: &modules::Change,
    probes: &Mutex<Probes>,
    selection: &multiprobe::symbols::Selection,
    strategy: Strategy,
    listing: &Listing,
    stop: &Stop,
) {
    let lock = || probes.lock().unwrap_or_else(|e| e.into_inner());
    for module in &change.unloaded {
        let (own, dropped) = lock().module_unloaded(module);
        // Detached outside the lock: scrapes go on meanwhile.
        probe::detach(own.into_iter().flat_map(CallProbe::into_links).collect());
        if dropped > 0 {
            eprintln!("module {module} unloaded: dropped {}", output::functions(dropped));
        }
    }
    if change.loaded.is_empty() {
        return;
    }
    // The listing is read again: its key holds the loaded modules.
    let functions = match listing.read() {
        Ok(all) => selection.select(&all),
        Err(e) => {
            eprintln!(
                "warning: modules {} loaded, but reading the traceable functions failed: {e}",
                change.loaded.join(", ")
            );
            return;
        }
    };
    for module in &change.loaded {
        let theirs: Vec<_> =
            functions.iter().filter(|f| f.module.as_deref() == Some(module.as_str())).cloned().collect();
        if theirs.is_empty() {
            continue;
        }
        match CallProbe::attach(strategy, &theirs, listing, stop) {
            Ok(probe) => {
                eprintln!("module {module} loaded: attached to {}", output::functions(probe.len()));
                lock().add_module_probe(probe.for_module(module));
            }
            Err(e) => {
                eprintln!("warning: module {module} loaded, but attaching to its functions failed: {}", e.message)
            }
        }
    }
}
