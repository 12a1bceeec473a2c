//! `multiprobe-bench corpus DIR`: the differential load test against libbpf 1.7.
//!
//! Every `*.o` file of DIR is opened and loaded by multiprobe and by libbpf in this one
//! process, each given the same pre-load settings (`corpus_format::settings`: the setters a tool
//! calls between open and load). For each object:
//!
//! 1. open it with each (an open error fails all of its programs for that loader);
//! 2. load it as it comes (autoload as the sections and the settings say);
//! 3. every program that load did not bring in (autoload off, or the whole load failed: both
//!    loaders load an object all or nothing) is loaded alone, so each program gets its own
//!    answer, and its own error;
//! 4. the programs both loaded are loaded together again, `--reps` times per loader in
//!    alternating order, open to loaded, for the load times.
//!
//! Output: one JSON line per object (`MPCORPUS {...}`) between `MPCORPUS-BEGIN` and
//! `MPCORPUS-END`, then the markdown table (`corpus_format::table`). The exit code is 1 when a
//! program libbpf loads fails in multiprobe and the allow-list does not excuse it.
//!
//! ```text
//! multiprobe-bench corpus DIR [--settings FILE] [--allow FILE] [--reps N] [--filter SUBSTR] [--no-table]
//! ```
//!
//! `--settings` defaults to `DIR/corpus.settings`, `--allow` to `DIR/corpus.allow`, when
//! they exist. Run as root (or with CAP_BPF and CAP_PERFMON).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use multiprobe::Object;
use multiprobe::object::Pinning;
use serde_json::{Value, json};

use crate::libbpf;
use corpus_format::settings::{self, Action, Allowed, Setting};
use corpus_format::table as corpus_table;

/// Printed before the first record.
pub const BEGIN: &str = "MPCORPUS-BEGIN";
/// Prefix of every record line.
pub const LINE: &str = "MPCORPUS ";
/// Printed after the last record, before the table.
pub const END: &str = "MPCORPUS-END";

/// Where each loader pins `LIBBPF_PIN_BY_NAME` maps; emptied after every object.
const MP_PIN_DIR: &str = "/sys/fs/bpf/mpcorpus-multiprobe";
const LIBBPF_PIN_DIR: &str = "/sys/fs/bpf/mpcorpus-libbpf";

/// Longest error kept per program and loader, in characters.
const ERROR_CHARS: usize = 400;

/// Arguments of `corpus`.
struct Args {
    dir: PathBuf,
    settings: Option<PathBuf>,
    allow: Option<PathBuf>,
    reps: usize,
    filter: Option<String>,
    /// Leave the table out (`cargo xtask corpus` renders it from the records itself).
    no_table: bool,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut dir = None;
    let mut a = Args { dir: PathBuf::new(), settings: None, allow: None, reps: 3, filter: None, no_table: false };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--settings" => a.settings = Some(value("--settings")?.into()),
            "--allow" => a.allow = Some(value("--allow")?.into()),
            "--filter" => a.filter = Some(value("--filter")?),
            "--no-table" => a.no_table = true,
            "--reps" => {
                a.reps = value("--reps")?.parse().map_err(|_| "--reps needs a number".to_string())?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown argument {flag:?}")),
            path if dir.is_none() => dir = Some(PathBuf::from(path)),
            extra => return Err(format!("one directory only (also got {extra:?})")),
        }
    }
    a.dir = dir.ok_or("usage: multiprobe-bench corpus DIR [--settings FILE] [--allow FILE] [--reps N] [--filter S]")?;
    let beside = |name: &str| Some(a.dir.join(name)).filter(|p| p.exists());
    a.settings = a.settings.take().or_else(|| beside("corpus.settings"));
    a.allow = a.allow.take().or_else(|| beside("corpus.allow"));
    Ok(a)
}

/// Runs the corpus; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    match run_checked(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("multiprobe-bench corpus: {e}");
            2
        }
    }
}

fn run_checked(args: &[String]) -> Result<i32, String> {
    let args = parse_args(args)?;
    let read = |p: &Option<PathBuf>| -> Result<String, String> {
        p.as_ref().map_or(Ok(String::new()), |p| {
            std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))
        })
    };
    let file_err = |p: &Option<PathBuf>, e: String| format!("{}: {e}", p.as_ref().unwrap().display());
    let setting_list = settings::parse_settings(&read(&args.settings)?).map_err(|e| file_err(&args.settings, e))?;
    let allow = settings::parse_allow(&read(&args.allow)?).map_err(|e| file_err(&args.allow, e))?;
    let objects = list_objects(&args.dir, args.filter.as_deref())?;
    if objects.is_empty() {
        return Err(format!("no *.o files in {}", args.dir.display()));
    }
    let _ = multiprobe::raw::raise_memlock_limit();
    libbpf::capture_messages();
    let _ = std::fs::create_dir_all(MP_PIN_DIR);
    let _ = std::fs::create_dir_all(LIBBPF_PIN_DIR);
    println!("{BEGIN}");
    let start = Instant::now();
    let mut records = Vec::new();
    for path in &objects {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        eprintln!("mpcorpus: {file}");
        let record = match std::fs::read(path) {
            Ok(data) => object_record(&file, &data, &setting_list, &allow, args.reps),
            Err(e) => json!({"object": file, "open": {"libbpf": e.to_string(), "multiprobe": e.to_string()}}),
        };
        println!("{LINE}{record}");
        records.push(record);
        clear_pins();
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let summary = json!({"summary": true, "kernel": release.trim(), "seconds": start.elapsed().as_secs_f64()});
    println!("{LINE}{summary}");
    println!("{END}");
    records.push(summary);
    if !args.no_table {
        println!("{}", corpus_table::markdown(&records));
    }
    let unexcused = corpus_table::unexcused(&records);
    for (object, program, error) in &unexcused {
        eprintln!("mpcorpus: FAILED: {object} {program}: libbpf loads it, multiprobe: {error}");
    }
    Ok(if unexcused.is_empty() { 0 } else { 1 })
}

/// The `*.o` files of `dir`, sorted by name.
fn list_objects(dir: &Path, filter: Option<&str>) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .filter(|p| filter.is_none_or(|f| p.file_name().unwrap().to_string_lossy().contains(f)))
        .collect();
    out.sort();
    Ok(out)
}

fn clear_pins() {
    for dir in [MP_PIN_DIR, LIBBPF_PIN_DIR] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Which programs a load brings in: the object's own choice, or exactly these.
#[derive(Clone, Copy)]
enum Enabled<'a> {
    Default,
    Only(&'a [String]),
}

/// The name both loaders give the object (multiprobe's `Object::open` rule): the file name
/// without `.o` and `.bpf`.
fn object_name(file: &str) -> String {
    file.trim_end_matches(".o").trim_end_matches(".bpf").to_string()
}

/// Everything about one object.
fn object_record(file: &str, data: &[u8], setting_list: &[Setting], allow: &[Allowed], reps: usize) -> Value {
    let name = object_name(file);
    libbpf::take_messages();
    // libbpf's view of the declarations decides the generic settings and lists the programs.
    let (programs, maps) = match libbpf::Object::open(&name, data, None) {
        Ok(obj) => (Ok(obj.programs()), obj.maps()),
        Err(e) => (Err(libbpf_error(&e)), Vec::new()),
    };
    let map_facts: Vec<_> = maps.iter().map(|m| (m.name.clone(), m.map_type, m.value_size, m.max_entries)).collect();
    let actions = settings::for_object(setting_list, file, &map_facts);
    let mp_open = unwinding(|| {
        Object::parse(&name, data)
            .map(|o| o.programs().map(|p| p.name().to_string()).collect::<Vec<_>>())
            .map_err(|e| e.to_string())
    });
    let libbpf_open = programs.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.clone());
    let mp_open_text = mp_open.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| short(e));

    // The programs: libbpf's list, and any multiprobe sees that libbpf does not.
    let mut list: Vec<(String, String)> = programs
        .as_ref()
        .map(|ps| ps.iter().map(|p| (p.name.clone(), p.section.clone())).collect())
        .unwrap_or_default();
    if let Ok(names) = &mp_open {
        for n in names {
            if !list.iter().any(|(l, _)| l == n) {
                list.push((n.clone(), String::new()));
            }
        }
    }

    let lb = |enabled| load_libbpf(&name, data, &actions, enabled);
    let mp = |enabled| load_multiprobe(&name, data, &actions, enabled);
    let mut lb_result = vec![None::<Result<(), String>>; list.len()];
    let mut mp_result = lb_result.clone();
    let (lb_full, mp_full);
    // 2. As it comes.
    if programs.is_ok() {
        let (r, _) = lb(Enabled::Default);
        lb_full = r.is_ok();
        if let Ok(loaded) = r {
            mark(&list, &loaded, &mut lb_result);
        }
    } else {
        lb_full = false;
    }
    if mp_open.is_ok() {
        let (r, _) = mp(Enabled::Default);
        mp_full = r.is_ok();
        if let Ok(loaded) = r {
            mark(&list, &loaded, &mut mp_result);
        }
    } else {
        mp_full = false;
    }
    // 3. Each program not loaded yet, alone.
    for (i, (prog, _)) in list.iter().enumerate() {
        let only = std::slice::from_ref(prog);
        if lb_result[i].is_none() {
            lb_result[i] = Some(match &programs {
                Err(e) => Err(format!("open: {e}")),
                Ok(_) => lb(Enabled::Only(only)).0.map(|_| ()),
            });
        }
        if mp_result[i].is_none() {
            mp_result[i] = Some(match &mp_open {
                Err(e) => Err(format!("open: {}", short(e))),
                Ok(_) => mp(Enabled::Only(only)).0.map(|_| ()),
            });
        }
    }
    // 4. Load times for the programs both load.
    let both: Vec<String> = list
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!((&lb_result[*i], &mp_result[*i]), (Some(Ok(())), Some(Ok(())))))
        .map(|(_, (n, _))| n.clone())
        .collect();
    let (mut lb_ns, mut mp_ns) = (Vec::new(), Vec::new());
    let mut timing_errors = Vec::new();
    if !both.is_empty() {
        for rep in 0..reps {
            for first_libbpf in [rep % 2 == 0, rep % 2 == 1] {
                let (r, ns) = if first_libbpf { lb(Enabled::Only(&both)) } else { mp(Enabled::Only(&both)) };
                match r {
                    Ok(_) if first_libbpf => lb_ns.push(ns),
                    Ok(_) => mp_ns.push(ns),
                    Err(e) => timing_errors.push(e),
                }
                clear_pins();
            }
        }
    }

    let programs_json: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, (prog, section))| {
            let err = |r: &Option<Result<(), String>>| match r {
                Some(Ok(())) => Value::Null,
                Some(Err(e)) => json!(e),
                None => json!("not tried"),
            };
            let mut v = json!({
                "name": prog, "section": section,
                "libbpf_error": err(&lb_result[i]), "multiprobe_error": err(&mp_result[i]),
            });
            if let Some(reason) = settings::allowed(allow, file, prog) {
                v["allowed"] = json!(reason);
            }
            v
        })
        .collect();
    json!({
        "object": file,
        "bytes": data.len(),
        "open": {"libbpf": libbpf_open, "multiprobe": mp_open_text},
        "settings": actions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "full_load": {"libbpf": lb_full, "multiprobe": mp_full},
        "programs": programs_json,
        "timed_programs": both.len(),
        "time_ns": {"libbpf": lb_ns, "multiprobe": mp_ns},
        "timing_errors": timing_errors,
    })
}

/// Marks the programs of `loaded` as loaded.
fn mark(list: &[(String, String)], loaded: &[String], result: &mut [Option<Result<(), String>>]) {
    for (i, (prog, _)) in list.iter().enumerate() {
        if loaded.contains(prog) {
            result[i] = Some(Ok(()));
        }
    }
}

/// One libbpf load, open to loaded: the programs in the kernel, or why not; and the time.
fn load_libbpf(
    name: &str,
    data: &[u8],
    actions: &[Action],
    enabled: Enabled<'_>,
) -> (Result<Vec<String>, String>, u64) {
    let pin_root = CString::new(LIBBPF_PIN_DIR).unwrap();
    libbpf::take_messages();
    let start = Instant::now();
    let result = (|| -> Result<(libbpf::Object, Vec<String>), std::io::Error> {
        let mut obj = libbpf::Object::open(name, data, Some(&pin_root))?;
        for a in actions {
            match a {
                Action::ValueSize { map, size } => obj.set_value_size(map, *size)?,
                Action::MaxEntries { map, n } => obj.set_max_entries(map, *n)?,
                Action::AttachTarget { program, function } => obj.set_attach_target(program, function)?,
                Action::Autoload { program, on } => obj.set_autoload(program, *on)?,
            }
        }
        let names: Vec<String> = obj.programs().into_iter().map(|p| p.name).collect();
        if let Enabled::Only(only) = enabled {
            for n in &names {
                obj.set_autoload(n, only.contains(n))?;
            }
        }
        obj.load()?;
        let loaded = names.into_iter().filter(|n| obj.is_loaded(n)).collect();
        Ok((obj, loaded))
    })();
    let ns = start.elapsed().as_nanos() as u64;
    match result {
        Ok((obj, loaded)) => {
            drop(obj);
            (Ok(loaded), ns)
        }
        Err(e) => (Err(libbpf_error(&e)), ns),
    }
}

/// libbpf's error: the errno, and what libbpf said about it (its messages, less the middle
/// of any verifier log).
fn libbpf_error(e: &std::io::Error) -> String {
    let messages = libbpf::take_messages();
    let mut kept: Vec<String> = Vec::new();
    let mut log: Vec<&str> = Vec::new();
    let mut in_log = false;
    for line in &messages {
        if line.contains("-- BEGIN PROG LOAD LOG --") {
            in_log = true;
            log.clear();
        } else if line.contains("-- END PROG LOAD LOG --") {
            in_log = false;
            let lines: Vec<&str> = log.iter().filter(|l| !l.trim().is_empty()).copied().collect();
            let tail = &lines[lines.len().saturating_sub(2)..];
            kept.push(format!("verifier: {}", tail.join(" / ")));
        } else if in_log {
            log.push(line);
        } else if !line.trim().is_empty() {
            kept.push(line.trim().trim_start_matches("libbpf: ").to_string());
        }
    }
    // The last messages say why; the first ones are often unrelated warnings.
    let skip = kept.len().saturating_sub(4);
    short(&format!("{e}: {}", kept[skip..].join(" | ")))
}

/// One multiprobe load, open to loaded: the programs in the kernel, or why not; and the
/// time. The settings are applied as the corresponding libbpf setters would.
fn load_multiprobe(
    name: &str,
    data: &[u8],
    actions: &[Action],
    enabled: Enabled<'_>,
) -> (Result<Vec<String>, String>, u64) {
    let start = Instant::now();
    let result = unwinding(|| -> Result<multiprobe::LoadedObject, String> {
        let mut obj = Object::parse(name, data).map_err(|e| e.to_string())?;
        for a in actions {
            match a {
                Action::MaxEntries { map, n } => {
                    obj.map_mut(map).ok_or_else(|| format!("setting {a}: no map {map}"))?.set_max_entries(*n);
                }
                Action::Autoload { program, on } => {
                    obj.program_mut(program)
                        .ok_or_else(|| format!("setting {a}: no program {program}"))?
                        .set_autoload(*on);
                }
                Action::ValueSize { map, size } => {
                    obj.map_mut(map).ok_or_else(|| format!("setting {a}: no map {map}"))?.set_value_size(*size);
                }
                Action::AttachTarget { program, function } => {
                    obj.program_mut(program)
                        .ok_or_else(|| format!("setting {a}: no program {program}"))?
                        .set_attach_target(function.as_str());
                }
            }
        }
        let names: Vec<String> = obj.programs().map(|p| p.name().to_string()).collect();
        if let Enabled::Only(only) = enabled {
            for n in &names {
                obj.program_mut(n).unwrap().set_autoload(only.contains(n));
            }
        }
        let pinned: Vec<String> =
            obj.maps().filter(|m| m.pinning() == Pinning::ByName).map(|m| m.name().to_string()).collect();
        for m in pinned {
            obj.map_mut(&m).unwrap().set_pin_path(format!("{MP_PIN_DIR}/{m}"));
        }
        obj.load().map_err(|e| multiprobe_error(&e))
    });
    let ns = start.elapsed().as_nanos() as u64;
    match result {
        Ok(loaded) => {
            let names = loaded.programs().map(|p| p.name().to_string()).collect();
            drop(loaded);
            (Ok(names), ns)
        }
        Err(e) => (Err(e), ns),
    }
}

/// Runs `f`, a panic turned into an error: a panic on an object is a bug of multiprobe's
/// (bad input must get an error), to be reported with the rest, not to end the run.
fn unwinding<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("multiprobe PANICKED: {what}"))
    })
}

/// multiprobe's error: its first line, and the end of any verifier log.
fn multiprobe_error(e: &multiprobe::LoadError) -> String {
    let text = e.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").to_string();
    let rest: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("verifier log (")).collect();
    let mut out = first;
    let hints: Vec<&&str> = rest.iter().filter(|l| l.starts_with("hint:")).collect();
    for h in hints {
        out.push_str(&format!(" | {h}"));
    }
    let log: Vec<&&str> = rest.iter().filter(|l| !l.starts_with("hint:")).collect();
    if !log.is_empty() {
        let tail: Vec<&str> = log[log.len().saturating_sub(2)..].iter().map(|l| **l).collect();
        out.push_str(&format!(" | verifier: {}", tail.join(" / ")));
    }
    short(&out)
}

/// At most [`ERROR_CHARS`] characters, on one line.
fn short(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= ERROR_CHARS {
        return one;
    }
    let cut: String = one.chars().take(ERROR_CHARS - 3).collect();
    format!("{cut}...")
}
