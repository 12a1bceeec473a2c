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
mod hist;
mod latency;
mod list;
mod output;
mod probe;
mod progress;
mod prototype;
mod run;
mod select;
mod signals;
mod symbolize;
mod stack;
mod table;
mod trace;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use multiprobe::symbols::Listing;

use crate::error::CliError;
use crate::output::Output;

/// Trace thousands of kernel functions at once: list them, count their calls, measure their
/// latency. Patterns are globs over traceable function names (`vfs_*`), optionally scoped
/// to modules (`ext4:*`, `vmlinux:tcp_*`).
#[derive(Debug, Parser)]
#[command(name = "multiprobe", version, max_term_width = 100)]
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
    List(list::ListArgs),
    /// Calls per function, live and in a final summary.
    Count(count::CountArgs),
    /// Latency per function: log2 histograms and percentiles.
    Latency(latency::LatencyArgs),
    /// Every call: time, task, duration and return value; failing calls only with --errors.
    Trace(trace::TraceArgs),
    /// Serve calls and latencies per function as Prometheus metrics, until stopped.
    Export(export::ExportArgs),
    /// What this kernel and these privileges allow, and why not.
    Features(features::FeaturesArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// For the completion scripts: kept function names starting with PREFIX.
    #[command(name = complete::COMMAND, hide = true)]
    CompleteFunctions { prefix: Option<String> },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.print(cli.verbose);
            ExitCode::FAILURE
        }
    }
}

fn completions(shell: Shell, out: &mut Output) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "multiprobe", &mut script);
    out.text(&String::from_utf8_lossy(&script))?;
    out.text(complete::hook(shell))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
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
