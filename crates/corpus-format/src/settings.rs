//! The corpus runner's input files: pre-load settings and the allow-list.
//!
//! Both loaders must see an object exactly as a tool would hand it over, after the setters the
//! tool calls between open and load (a stack map's value size, a retargeted `dummy_*`
//! function, a program switched off). A settings file says so, one setting a line:
//!
//! ```text
//! # OBJECT            WHAT  NAME                      SETTING        VALUE
//! bcc-biostacks.bpf.o map   stackmap                  value_size     1016
//! bcc-fsdist.bpf.o    prog  file_read_fentry          attach_target  ext4_file_read_iter
//! bcc-cpudist.bpf.o   prog  sched_switch_tp           autoload       off
//! bcc-*.bpf.o         map   start                     max_entries    4096
//! ```
//!
//! OBJECT is a file name, `*` standing for any run of characters. Besides the file, one
//! generic rule stands for what tools do with maps they leave for run time to size: a
//! `BPF_MAP_TYPE_STACK_TRACE` map declared without a value size gets 127 x 8 bytes
//! (`PERF_MAX_STACK_DEPTH` addresses, the tools' default), and a hash, array, per-CPU,
//! LRU or stack map declared with `max_entries` 0 gets 10240 (their usual `MAX_ENTRIES`).
//! The file's lines win over the rule.
//!
//! The allow-list names, one a line, a program libbpf loads and multiprobe may refuse, with
//! the reason, which is mandatory: `OBJECT PROGRAM REASON...`.
//!
//! This file is compiled into the runner (bench/) and into xtask, which checks both files
//! before booting a VM; it uses nothing but std.

/// What one setting does, in libbpf's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `bpf_map__set_value_size(map, size)`.
    ValueSize { map: String, size: u32 },
    /// `bpf_map__set_max_entries(map, n)`.
    MaxEntries { map: String, n: u32 },
    /// `bpf_program__set_attach_target(prog, 0, function)`.
    AttachTarget { program: String, function: String },
    /// `bpf_program__set_autoload(prog, on)`.
    Autoload { program: String, on: bool },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::ValueSize { map, size } => write!(f, "map {map} value_size {size}"),
            Action::MaxEntries { map, n } => write!(f, "map {map} max_entries {n}"),
            Action::AttachTarget { program, function } => write!(f, "prog {program} attach_target {function}"),
            Action::Autoload { program, on } => write!(f, "prog {program} autoload {}", if *on { "on" } else { "off" }),
        }
    }
}

/// One line of a settings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Which objects (file names, `*` globs).
    pub objects: String,
    /// What to do to them.
    pub action: Action,
}

/// One line of an allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// Object file name (`*` globs allowed).
    pub objects: String,
    /// Program name.
    pub program: String,
    /// Why multiprobe may refuse it.
    pub reason: String,
}

/// The value size the generic rule gives a stack map: `PERF_MAX_STACK_DEPTH` (127) u64s.
pub const STACK_VALUE_SIZE: u32 = 127 * 8;
/// The size the generic rule gives a map declared with `max_entries` 0.
pub const DEFAULT_MAX_ENTRIES: u32 = 10240;
/// `BPF_MAP_TYPE_STACK_TRACE`.
const STACK_TRACE: u32 = 7;
/// Map kinds the rule sizes: hash, array, per-CPU hash and array, stack trace, LRU hash,
/// LRU per-CPU hash (never the local storages, which must say 0).
const SIZED_BY_RULE: [u32; 7] = [1, 2, 5, 6, STACK_TRACE, 9, 10];

/// Lines that say nothing: empty or comments.
fn meaningful(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.split('#').next().unwrap_or("").trim();
        (!line.is_empty()).then(|| (i + 1, line.split_whitespace().collect()))
    })
}

/// Parses a settings file; errors name the line and say what a line looks like.
pub fn parse_settings(text: &str) -> Result<Vec<Setting>, String> {
    let mut out = Vec::new();
    for (n, words) in meaningful(text) {
        let bad = |why: &str| {
            format!(
                "line {n}: {why}; a setting reads `OBJECT map MAP value_size|max_entries N` or \
                 `OBJECT prog PROG attach_target FUNCTION|autoload on|off`"
            )
        };
        let [objects, what, name, setting, value] = words[..] else {
            return Err(bad(&format!("{} words, not 5", words.len())));
        };
        let number = || value.parse::<u32>().map_err(|_| bad(&format!("{value:?} is not a number")));
        let (name, value_s) = (name.to_string(), value.to_string());
        let action = match (what, setting) {
            ("map", "value_size") => Action::ValueSize { map: name, size: number()? },
            ("map", "max_entries") => Action::MaxEntries { map: name, n: number()? },
            ("prog", "attach_target") => Action::AttachTarget { program: name, function: value_s },
            ("prog", "autoload") => match value {
                "on" => Action::Autoload { program: name, on: true },
                "off" => Action::Autoload { program: name, on: false },
                _ => return Err(bad(&format!("autoload takes on or off, not {value:?}"))),
            },
            _ => return Err(bad(&format!("unknown setting `{what} ... {setting}`"))),
        };
        out.push(Setting { objects: objects.to_string(), action });
    }
    Ok(out)
}

/// Parses an allow-list; a line without a reason is an error.
pub fn parse_allow(text: &str) -> Result<Vec<Allowed>, String> {
    let mut out = Vec::new();
    for (n, words) in meaningful(text) {
        if words.len() < 3 {
            return Err(format!("line {n}: an allowed failure reads `OBJECT PROGRAM REASON...`, the reason included"));
        }
        out.push(Allowed { objects: words[0].into(), program: words[1].into(), reason: words[2..].join(" ") });
    }
    Ok(out)
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else { return false };
            (0..=tail.len()).filter(|&i| tail.is_char_boundary(i)).any(|i| glob(rest, &tail[i..]))
        }
    }
}

/// The settings for `object`: the generic rule's for its maps (given as name, type, value
/// size, max_entries, as libbpf reads the declarations), then the file's, which win.
pub fn for_object(settings: &[Setting], object: &str, maps: &[(String, u32, u32, u32)]) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::new();
    for (name, map_type, value_size, max_entries) in maps {
        if *map_type == STACK_TRACE && *value_size == 0 {
            out.push(Action::ValueSize { map: name.clone(), size: STACK_VALUE_SIZE });
        }
        if *max_entries == 0 && SIZED_BY_RULE.contains(map_type) {
            out.push(Action::MaxEntries { map: name.clone(), n: DEFAULT_MAX_ENTRIES });
        }
    }
    for s in settings.iter().filter(|s| glob(&s.objects, object)) {
        out.push(s.action.clone());
    }
    out
}

/// The reason `program` of `object` may fail in multiprobe, if the allow-list has one.
pub fn allowed<'a>(allow: &'a [Allowed], object: &str, program: &str) -> Option<&'a str> {
    allow.iter().find(|a| a.program == program && glob(&a.objects, object)).map(|a| a.reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_apply() {
        let text = "# comment\nbcc-a.bpf.o map stackmap value_size 2032\n\nbcc-* prog p autoload off # tail\n";
        let s = parse_settings(text).unwrap();
        assert_eq!(s.len(), 2);
        let maps = vec![("stackmap".to_string(), 7, 0, 0), ("st".to_string(), 28, 0, 0)];
        let acts = for_object(&s, "bcc-a.bpf.o", &maps);
        assert_eq!(
            acts,
            vec![
                Action::ValueSize { map: "stackmap".into(), size: STACK_VALUE_SIZE },
                Action::MaxEntries { map: "stackmap".into(), n: DEFAULT_MAX_ENTRIES },
                Action::ValueSize { map: "stackmap".into(), size: 2032 },
                Action::Autoload { program: "p".into(), on: false },
            ]
        );
        assert_eq!(for_object(&s, "other.bpf.o", &[]), vec![]);
        assert_eq!(acts[3].to_string(), "prog p autoload off");
    }

    #[test]
    fn bad_settings_name_the_line() {
        let e = parse_settings("x map m value_size big").unwrap_err();
        assert!(e.starts_with("line 1:") && e.contains("\"big\" is not a number"), "{e}");
        let e = parse_settings("\nx prog p autoload maybe").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(parse_settings("x map m").is_err());
        assert!(parse_settings("x map m key_size 4").unwrap_err().contains("unknown setting"));
    }

    #[test]
    fn allow_list_needs_reasons() {
        let a = parse_allow("o.bpf.o prog kernel refuses it here\n").unwrap();
        assert_eq!(allowed(&a, "o.bpf.o", "prog"), Some("kernel refuses it here"));
        assert_eq!(allowed(&a, "o.bpf.o", "other"), None);
        assert!(parse_allow("o.bpf.o prog").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("bcc-*.bpf.o", "bcc-x.bpf.o"));
        assert!(!glob("bcc-*.bpf.o", "bcc-x.o"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("abc", "abcd"));
    }
}
