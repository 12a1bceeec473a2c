//! What `--help` shows beyond the options: an `Examples:` section per command (as bcc's tools
//! end every `-h`, naming the JSON events of each), global options hidden where they mean
//! nothing, and the man pages made
//! from the same command tree (`multiprobe man DIR`, used by `cargo xtask dist`).

use std::path::Path;

use clap::{Arg, ArgAction, Command};

use crate::error::CliError;

/// Examples of the whole command, shown after its options.
pub const MAIN: &str = "\
Examples:
  multiprobe list 'tcp_*'                         the traceable functions tcp_* selects
  sudo multiprobe count 'vfs_*' -d 5s             calls per vfs_ function for five seconds
  sudo multiprobe latency vfs_read vfs_write      latency histograms until Ctrl-C
  sudo multiprobe trace 'do_sys_open*' --errors   failing opens, one line each
  multiprobe features                             what this kernel and these privileges allow";

/// `multiprobe list`.
pub const LIST: &str = "\
Examples:
  multiprobe list 'vfs_*'                 every vfs_ function, with module and address
  multiprobe list 'ext4:*' -x '*xattr*'   ext4's functions except the xattr ones
  multiprobe list 'tcp_*' --json          one JSON object per function, then a summary";

/// `multiprobe count`.
pub const COUNT: &str = "\
Examples:
  sudo multiprobe count 'vfs_*'                        a live table until Ctrl-C, then a summary
  sudo multiprobe count 'tcp_*' -x '*_timer*' -d 10s   ten seconds, timers left out
  sudo multiprobe count 'ext4:*' -p 1234 --top 10      ext4 calls of process 1234, top ten
  sudo multiprobe count 'vfs_*' -d 5s --json           JSON lines: attached, interval, summary";

/// `multiprobe latency`.
pub const LATENCY: &str = "\
Examples:
  sudo multiprobe latency vfs_read vfs_write                 histograms until Ctrl-C
  sudo multiprobe latency 'tcp_sendmsg*' -d 10s --sort p99   slowest 99th percentile first
  sudo multiprobe latency 'vfs_*' -d 5s --json               JSON lines: attached, summary";

/// `multiprobe trace`.
pub const TRACE: &str = "\
Examples:
  sudo multiprobe trace 'do_sys_open*' --errors       failing calls with their errno
  sudo multiprobe trace vfs_read --min-duration 1ms   reads slower than a millisecond
  sudo multiprobe trace 'tcp_*' --comm curl -n 100    100 calls made by curl
  sudo multiprobe trace vfs_write --json              JSON lines: attached, call..., summary";

/// `multiprobe export`.
pub const EXPORT: &str = "\
Examples:
  sudo multiprobe export 'vfs_*' --listen 127.0.0.1:9435
  sudo multiprobe export 'tcp_*' --latency tcp_sendmsg --listen 0.0.0.0:9435
  curl -s 127.0.0.1:9435/metrics   what Prometheus scrapes";

/// `multiprobe features`.
pub const FEATURES: &str = "\
Examples:
  multiprobe features          a table: feature, yes/no, and why not
  sudo multiprobe features     what root may do here
  multiprobe features --json   one JSON object per feature";

/// `multiprobe completions`.
pub const COMPLETIONS: &str = "\
Examples:
  multiprobe completions bash > /etc/bash_completion.d/multiprobe
  multiprobe completions zsh > \"${fpath[1]}/_multiprobe\"
  multiprobe completions fish > ~/.config/fish/completions/multiprobe.fish";

/// Global options that mean nothing to a subcommand, by subcommand: clap shows every global
/// option everywhere, and `completions --help` listing `--no-cache` promised what it ignores.
const IRRELEVANT_GLOBALS: &[(&str, &[(&str, &str)])] = &[
    ("completions", &[("no_cache", "no-cache"), ("verbose", "verbose")]),
    ("features", &[("no_cache", "no-cache")]),
    ("man", &[("no_cache", "no-cache"), ("verbose", "verbose")]),
];

/// The command tree as `--help` and the man pages show it: `derived` (clap's derive output)
/// with the global options a subcommand ignores hidden there. clap copies a global option into
/// a subcommand only where the subcommand has no option of that id, so a hidden local one put
/// there first stands in for it (still accepted, as before, but not shown).
pub fn adjust(derived: Command) -> Command {
    let mut cmd = derived;
    for (name, globals) in IRRELEVANT_GLOBALS {
        cmd = cmd.mut_subcommand(*name, |mut sub| {
            for (id, long) in *globals {
                let arg = Arg::new(*id).long(*long).action(ArgAction::SetTrue).hide(true);
                sub = sub.arg(if *id == "verbose" { arg.short('v') } else { arg });
            }
            sub
        });
    }
    cmd
}

/// Writes `multiprobe.1` and `multiprobe-SUBCOMMAND.1` for every visible subcommand to `dir`.
pub fn write_man_pages(cmd: &Command, dir: &Path) -> Result<Vec<String>, CliError> {
    let io = |what: &str, e: std::io::Error| CliError::new(format!("writing {what} in {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| io("the directory", e))?;
    let mut written = Vec::new();
    let mut render = |page: Command, file: String| -> Result<(), CliError> {
        let mut text = Vec::new();
        clap_mangen::Man::new(page).render(&mut text).map_err(|e| io(&file, e))?;
        std::fs::write(dir.join(&file), text).map_err(|e| io(&file, e))?;
        written.push(file);
        Ok(())
    };
    render(cmd.clone(), "multiprobe.1".into())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("multiprobe-{}", sub.get_name());
        let page = sub.clone().name(name.clone()).bin_name(name.replace('-', " "));
        render(page, format!("{name}.1"))?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    /// `--help` of `multiprobe ARGS...`, as clap renders it (no terminal: 100 columns).
    fn help(args: &[&str]) -> String {
        let argv = std::iter::once("multiprobe").chain(args.iter().copied()).chain(["--help"]);
        let e = crate::command().try_get_matches_from(argv).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        e.render().to_string()
    }

    #[test]
    fn every_command_ends_with_examples() {
        for sub in
            [&[][..], &["list"], &["count"], &["latency"], &["trace"], &["export"], &["features"], &["completions"]]
        {
            let text = help(sub);
            assert!(text.contains("\nExamples:\n  "), "{sub:?}:\n{text}");
        }
    }

    #[test]
    fn help_promises_only_what_the_command_does() {
        assert!(!help(&["completions"]).contains("--no-cache"));
        assert!(!help(&["features"]).contains("--no-cache"));
        assert!(help(&["count"]).contains("--no-cache"), "count reads the listing");
        assert!(!help(&["latency"]).contains("`interval`"), "latency emits no interval events");
        assert!(!help(&["trace"]).contains("`interval`"));
        assert!(!help(&[]).contains("\n  man "), "the man subcommand is for packagers, hidden");
    }

    #[test]
    fn long_lines_wrap() {
        for line in help(&["count"]).lines() {
            assert!(line.chars().count() <= 100, "{line:?}");
        }
    }

    #[test]
    fn man_pages_render_for_every_visible_command() {
        let dir = std::env::temp_dir().join(format!("multiprobe-man-{}", std::process::id()));
        let pages = super::write_man_pages(&crate::command(), &dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(pages.len(), 8, "{pages:?}");
        assert!(pages.contains(&"multiprobe.1".to_string()) && pages.contains(&"multiprobe-count.1".to_string()));
        assert!(!pages.iter().any(|p| p.contains("-man.") || p.contains("-help.")), "{pages:?}");
    }
}
