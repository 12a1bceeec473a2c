//! `multiprobe`: count calls and measure latency of thousands of kernel functions at once,
//! with one kprobe_multi link, from one static binary with its BPF programs built in.
#![forbid(unsafe_code)]

mod checked;
mod complete;
mod count;
mod duration;
mod error;
mod export;
mod features;
mod help;
mod hist;
mod latency;
mod list;
mod output;
mod probe;
mod progress;
mod prototype;
mod run;
mod screen;
mod select;
mod signals;
mod stack;
mod table;
mod trace;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use clap_complete::Shell;
use multiprobe::symbols::Listing;

use crate::error::CliError;
use crate::output::Output;

/// Trace thousands of kernel functions at once: list them, count their calls, measure their
/// latency. Patterns are globs over traceable function names (`vfs_*`), optionally scoped
/// to modules (`ext4:*`, `vmlinux:tcp_*`).
#[derive(Debug, Parser)]
#[command(name = "multiprobe", version, max_term_width = 100, after_help = help::MAIN)]
struct Cli {
    /// More detail: on errors the chain of causes and the verifier's full log; in `list`,
    /// each function's prototype from BTF.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Always read the traceable functions (and their entry addresses) from the kernel, not
    /// from the copies kept in /run/multiprobe for the current boot and set of loaded modules.
    #[arg(long, global = true)]
    no_cache: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The traceable functions that match, with module and address, and the total.
    #[command(after_help = help::LIST)]
    List(list::ListArgs),
    /// Calls per function, live and in a final summary.
    #[command(after_help = help::COUNT)]
    Count(count::CountArgs),
    /// Latency per function: log2 histograms and percentiles.
    #[command(after_help = help::LATENCY)]
    Latency(latency::LatencyArgs),
    /// Every call: time, task, duration and return value; failing calls only with --errors.
    #[command(after_help = help::TRACE)]
    Trace(trace::TraceArgs),
    /// Serve calls and latencies per function as Prometheus metrics, until stopped.
    #[command(after_help = help::EXPORT)]
    Export(export::ExportArgs),
    /// What this kernel and these privileges allow, and why not.
    #[command(after_help = help::FEATURES)]
    Features(features::FeaturesArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// For the completion scripts: kept function names starting with PREFIX.
    #[command(name = complete::COMMAND, hide = true)]
    CompleteFunctions { prefix: Option<String> },
    /// Write the man pages (multiprobe.1 and one per subcommand) to DIR; for packagers.
    #[command(hide = true)]
    Man {
        /// The directory to write them to (created if missing).
        dir: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    // The kernel takes a third of a second to format its 40,000-line list of traceable
    // functions; a copy on tmpfs (/run/multiprobe), valid while boot and modules stay the
    // same, saves it.
    let listing = if cli.no_cache { Listing::new() } else { Listing::cached() };
    let result = Output::stdout().and_then(|mut out| match &cli.command {
        Command::List(args) => list::run(args, cli.verbose, &listing, &mut out),
        Command::Count(args) => count::run(args, &listing, &mut out),
        Command::Latency(args) => latency::run(args, &listing, &mut out),
        Command::Trace(args) => trace::run(args, &listing, &mut out),
        Command::Export(args) => export::run(args, &listing),
        Command::Features(args) => features::run(args, &mut out),
        Command::Completions { shell } => completions(*shell, &mut out),
        Command::CompleteFunctions { prefix } => {
            complete::functions(prefix.as_deref().unwrap_or(""), &listing, &mut out)
        }
        Command::Man { dir } => help::write_man_pages(&command(), dir)
            .and_then(|pages| out.text(&format!("wrote {} in {}\n", pages.join(" "), dir.display()))),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if wants_json(&cli.command) {
                json_error(&e);
            }
            e.print(cli.verbose);
            ExitCode::FAILURE
        }
    }
}

/// Whether the command writes JSON lines, so that its failures go to stdout as an `error`
/// event too: a consumer reading stdout alone learns why it got no summary.
fn wants_json(command: &Command) -> bool {
    match command {
        Command::List(a) => a.json,
        Command::Count(a) => a.run.json,
        Command::Latency(a) => a.run.json,
        Command::Trace(a) => a.run.json,
        Command::Features(a) => a.json,
        Command::Export(_) | Command::Completions { .. } | Command::Man { .. } | Command::CompleteFunctions { .. } => {
            false
        }
    }
}

/// Writes the `error` event on stdout; where stdout itself failed there is nothing to do.
fn json_error(e: &CliError) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(e.json_line().as_bytes());
}

/// A usage error: clap's message on stderr, and with `--json` in the arguments an `error`
/// event on stdout as for any other failure.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let is_failure = !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if is_failure && std::env::args_os().any(|a| a == "--json") {
        let text = e.render().to_string();
        // clap's message runs up to its usage block; one line of it, without the label.
        let body = text.split("\n\nUsage:").next().unwrap_or("");
        let message = body.trim_start_matches("error: ").split_whitespace().collect::<Vec<_>>().join(" ");
        let hints = vec!["see `multiprobe --help`".to_string()];
        json_error(&CliError { message, hints, details: Vec::new(), errno: None });
    }
    e.exit()
}

fn completions(shell: Shell, out: &mut Output) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(), "multiprobe", &mut script);
    out.text(&String::from_utf8_lossy(&script))?;
    out.text(complete::hook(shell))?;
    Ok(())
}

/// The command line as parsed and shown: clap's derive output with [`help::adjust`]'s
/// per-command corrections.
fn command() -> clap::Command {
    help::adjust(Cli::command())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn usage_errors() {
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("multiprobe").chain(args.iter().copied()));
        assert!(parse(&["count"]).is_err(), "count needs a pattern");
        assert!(parse(&["count", "vfs_*", "--duration", "5x"]).is_err());
        assert!(parse(&["count", "vfs_*", "--interval", "0s"]).is_err());
        assert!(parse(&["count", "vfs_*", "--pid", "0"]).is_err());
        assert!(parse(&["latency", "vfs_*", "--sort", "median"]).is_err());
        assert!(parse(&["list"]).is_ok(), "list defaults to every function");
        let cli = parse(&["count", "vfs_*", "-x", "vfs_read", "--duration", "0s", "--json", "-v"]).unwrap();
        assert!(cli.verbose);
        let Command::Count(c) = cli.command else { panic!() };
        assert_eq!(c.targets.select.exclude, ["vfs_read"]);
        assert_eq!(c.targets.patterns, ["vfs_*"]);
        assert_eq!(c.run.duration, Some(std::time::Duration::ZERO));
    }
}
