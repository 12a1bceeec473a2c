//! Shell completion of function names: the hidden `multiprobe __complete-functions PREFIX`
//! prints the traceable functions starting with PREFIX from the listing kept for this boot
//! (`/run/multiprobe`, written by any earlier run), and prints nothing when none is kept: it
//! never asks the kernel, so a Tab press costs a file read, not the kernel's formatting of
//! 40,000 lines. The scripts of `multiprobe completions` call it for the pattern arguments
//! of `list`, `count`, `latency`, `trace` and `export`.

use clap_complete::Shell;
use multiprobe::symbols::Listing;

use crate::error::CliError;
use crate::output::Output;

/// The name of the hidden subcommand the scripts call.
pub const COMMAND: &str = "__complete-functions";

/// Prints the kept functions whose name starts with `prefix`, each once, sorted.
pub fn functions(prefix: &str, listing: &Listing, out: &mut Output) -> Result<(), CliError> {
    let Some(kept) = listing.read_kept() else { return Ok(()) };
    let mut names: Vec<String> =
        kept.filter(|name, _| name.starts_with(prefix.as_bytes())).into_iter().map(|f| f.name).collect();
    names.sort_unstable();
    names.dedup();
    let mut text = names.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    out.text(&text)
}

/// What the shell's script needs besides clap's: function names for the pattern arguments.
pub fn hook(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => BASH,
        Shell::Zsh => ZSH,
        Shell::Fish => FISH,
        _ => "",
    }
}

const BASH: &str = r#"
# Function names for the patterns of list, count, latency, trace and export, from the
# listing multiprobe keeps for this boot (nothing until a first run has kept it).
_multiprobe_functions() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [[ $COMP_CWORD -ge 2 && "$cur" != -* && "$prev" != -* ]]; then
        case "${COMP_WORDS[1]}" in
            list|count|latency|trace|export)
                COMPREPLY=($(compgen -W "$(multiprobe __complete-functions "$cur" 2>/dev/null)" -- "$cur"))
                [[ ${#COMPREPLY[@]} -gt 0 ]] && return 0
                ;;
        esac
    fi
    _multiprobe "$@"
}
complete -F _multiprobe_functions -o nosort -o bashdefault -o default multiprobe
"#;

const ZSH: &str = r#"
# Function names for the patterns of list, count, latency, trace and export, from the
# listing multiprobe keeps for this boot (nothing until a first run has kept it).
_multiprobe_functions() {
    if (( CURRENT > 2 )) && [[ ${words[2]} == (list|count|latency|trace|export) && ${words[CURRENT]} != -* && ${words[CURRENT-1]} != -* ]]; then
        local -a fns
        fns=(${(f)"$(multiprobe __complete-functions ${words[CURRENT]} 2>/dev/null)"})
        if (( ${#fns} )); then
            compadd -a fns
            return
        fi
    fi
    _multiprobe "$@"
}
compdef _multiprobe_functions multiprobe
"#;

const FISH: &str = r#"
# Function names for the patterns of list, count, latency, trace and export, from the
# listing multiprobe keeps for this boot (nothing until a first run has kept it).
complete -c multiprobe -n "__fish_seen_subcommand_from list count latency trace export; and not string match -q -- '-*' (commandline -ct)" -f -a "(multiprobe __complete-functions (commandline -ct) 2>/dev/null)"
"#;
