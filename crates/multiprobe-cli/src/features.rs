//! `multiprobe features`: what this kernel and these privileges allow, with the reason for
//! every "no", and what that means for each command.

use std::io::Read;

use clap::Args;
use multiprobe::features::{self, LinkInfoLevel, SessionKfuncs, Support};
use serde::Serialize;

use crate::error::CliError;
use crate::output::Output;
use crate::table::{Align, Table};

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One feature: supported or not, what it is for, and why not.
#[derive(Debug, Clone, Serialize)]
pub struct Feature {
    pub name: &'static str,
    pub supported: bool,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Feature {
    fn new(name: &'static str, description: impl Into<String>, support: Support) -> Feature {
        Feature {
            name,
            supported: support.is_yes(),
            description: description.into(),
            reason: support.reason().map(Into::into),
        }
    }
}

/// What a command can do here.
#[derive(Debug, Clone, Serialize)]
pub struct Command {
    pub command: &'static str,
    pub supported: bool,
    /// How it attaches, or why it cannot.
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub kernel: String,
    pub arch: &'static str,
    pub root: bool,
    pub features: Vec<Feature>,
    pub commands: Vec<Command>,
}

pub fn run(args: &FeaturesArgs, out: &mut Output) -> Result<(), CliError> {
    let report = probe();
    if args.json {
        out.json(&report)?;
    } else {
        out.text(&render(&report))?;
    }
    Ok(())
}

/// Probes everything (a few cheap system calls, one read of the kernel's BTF).
pub fn probe() -> Report {
    let root = multiprobe::raw::geteuid() == 0;
    let session_kfuncs = match features::session_kfuncs() {
        Ok(SessionKfuncs::NoArgs) => Support::Yes,
        Ok(SessionKfuncs::TakeCtx) => Support::Yes,
        Err(reason) => Support::No(reason),
    };
    let kfunc_kind = match features::session_kfuncs() {
        Ok(SessionKfuncs::TakeCtx) => "take the context (7.x)",
        _ => "take no argument (6.10 to 6.x)",
    };
    let link_info = features::kprobe_multi_link_info();
    let link_info_support = if link_info >= LinkInfoLevel::Targets {
        Support::Yes
    } else {
        Support::No("kprobe_multi link info reports ids only before kernel 6.6".into())
    };
    let link_info_detail = match link_info {
        LinkInfoLevel::Cookies => "addresses, flags, missed runs and cookies (6.9+)",
        LinkInfoLevel::Missed => "addresses, flags and missed runs (6.7+)",
        _ => "addresses and flags (6.6+)",
    };
    let feats = vec![
        Feature::new("privileges", privileges_detail(root), privileges()),
        Feature::new("bpf_syscall", "BPF programs and maps can be loaded", features::bpf_syscall()),
        Feature::new("kernel_btf", "kernel BTF for CO-RE and kfuncs (/sys/kernel/btf/vmlinux)", features::kernel_btf()),
        Feature::new(
            "kprobe_multi",
            "one link attaches a program to many functions (5.18+, CONFIG_FPROBE)",
            features::kprobe_multi(),
        ),
        Feature::new(
            "kprobe_session",
            "one program at entry and return of each call (6.10+)",
            crate::probe::session_support(),
        ),
        Feature::new("session_kfuncs", format!("session kfuncs {kfunc_kind}"), session_kfuncs),
        Feature::new("kprobe_multi_link_info", format!("link info reports {link_info_detail}"), link_info_support),
        Feature::new(
            "available_filter_functions_addrs",
            "traceable functions listed with addresses (6.5+)",
            features::available_filter_functions_addrs(),
        ),
        Feature::new(
            "perf_kprobe",
            "single kprobes through the kprobe PMU (the fallback without kprobe_multi)",
            features::perf_kprobe(),
        ),
        Feature::new(
            "perf_kprobe_cookies",
            "attach cookies on single kprobes (5.15+)",
            features::perf_kprobe_cookies(),
        ),
        Feature::new("tracefs", "the list of traceable functions can be read", tracefs_readable(root)),
    ];
    let feats = mark_dependents(feats);
    let commands = commands(&feats);
    Report { kernel: features::kernel_release(), arch: std::env::consts::ARCH, root, features: feats, commands }
}

/// Features usable only through another, as (dependent, needed): a kernel may have cookies
/// on single kprobes while this user cannot create single kprobes at all, and "yes" next to
/// the "no" it needs read as a contradiction.
const DEPENDS_ON: &[(&str, &str)] = &[
    ("kprobe_session", "kprobe_multi"),
    ("session_kfuncs", "kprobe_session"),
    ("kprobe_multi_link_info", "kprobe_multi"),
    ("perf_kprobe_cookies", "perf_kprobe"),
    ("available_filter_functions_addrs", "tracefs"),
];

/// Marks each feature whose prerequisite is missing "n/a: needs PREREQUISITE" (not supported),
/// in the order of [`DEPENDS_ON`], so that chains (session kfuncs on sessions on kprobe_multi)
/// carry through.
fn mark_dependents(mut feats: Vec<Feature>) -> Vec<Feature> {
    for (dependent, needed) in DEPENDS_ON {
        let needed_ok = feats.iter().find(|f| f.name == *needed).is_none_or(|f| f.supported);
        if let Some(f) = feats.iter_mut().find(|f| f.name == *dependent)
            && !needed_ok
        {
            f.supported = false;
            f.reason = Some(format!("n/a: needs {needed}"));
        }
    }
    feats
}

/// Root, or the capabilities tracing needs (CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN).
fn privileges() -> Support {
    let caps = effective_caps();
    let has = |bit: u32| caps.is_some_and(|c| c & (1u64 << bit) != 0);
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        Support::Yes
    } else {
        Support::No("tracing needs root, or the CAP_BPF and CAP_PERFMON capabilities".into())
    }
}

fn privileges_detail(root: bool) -> String {
    if root { "running as root".into() } else { "capabilities for tracing (CAP_BPF, CAP_PERFMON)".into() }
}

/// `CapEff` of `/proc/self/status`.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Whether `available_filter_functions` can be read (a few bytes are enough to know).
fn tracefs_readable(root: bool) -> Support {
    let dir = match multiprobe::symbols::tracefs_root() {
        Ok(dir) => dir,
        Err(e) => return Support::No(e.to_string()),
    };
    let path = dir.join("available_filter_functions");
    let mut buf = [0u8; 64];
    match std::fs::File::open(&path).and_then(|mut f| f.read(&mut buf)) {
        Ok(_) => Support::Yes,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && root => Support::No(format!(
            "reading {}: {e}: the kernel refuses even root, so a sandbox or security policy (seccomp, LSM, lockdown) blocks tracefs here",
            path.display()
        )),
        Err(e) => Support::No(format!("reading {}: {e}", path.display())),
    }
}

/// What each command can do, from the features; a "no" names the missing features, whose
/// reasons are in their own lines.
fn commands(feats: &[Feature]) -> Vec<Command> {
    let get = |name: &str| feats.iter().find(|f| f.name == name).expect("probed");
    let no = |command, missing: Vec<&str>| Command {
        command,
        supported: false,
        detail: format!("missing {} (reasons above)", missing.join(", ")),
    };
    let yes = |command, detail: &str| Command { command, supported: true, detail: detail.into() };
    let (tracefs, bpf, multi) = (get("tracefs"), get("bpf_syscall"), get("kprobe_multi"));
    let list =
        if tracefs.supported { yes("list", "reads the traceable functions") } else { no("list", vec!["tracefs"]) };
    let single = if get("perf_kprobe").supported { "perf_kprobe_cookies" } else { "perf_kprobe" };
    let fallback_ok = get(single).supported;
    // Every missing feature that blocks a command, most fundamental first.
    let attach = |command, multi_how: &str, fallback_how: &str| {
        let mut missing = Vec::new();
        if !bpf.supported {
            missing.push("bpf_syscall");
        }
        if !multi.supported && !fallback_ok {
            missing.push(if single == "perf_kprobe" {
                "kprobe_multi or perf_kprobe"
            } else {
                "kprobe_multi or perf_kprobe_cookies"
            });
        }
        if !tracefs.supported {
            missing.push("tracefs");
        }
        match (missing.is_empty(), multi.supported) {
            (false, _) => no(command, missing),
            (true, true) => yes(command, multi_how),
            (true, false) => yes(command, fallback_how),
        }
    };
    let count = attach("count", "one kprobe_multi link", "one kprobe per function (no kprobe_multi: slower to attach)");
    let mut latency = attach(
        "latency",
        "a kprobe_multi + kretprobe_multi pair",
        "one kprobe and one kretprobe per function (no kprobe_multi: slower to attach)",
    );
    if latency.supported && get("kprobe_session").supported {
        latency.detail = "one kprobe session link".into();
    }
    vec![list, count, latency]
}

/// The report as text: one line per feature, then one per command.
pub fn render(r: &Report) -> String {
    let mut s = format!(
        "kernel {} ({}), {}\n\n",
        r.kernel,
        r.arch,
        if r.root { "running as root" } else { "not running as root" }
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut t = Table::new(&[("", Align::Left), ("", Align::Left), ("", Align::Left)]);
    for f in &r.features {
        t.row(vec![yes_no(f.supported), f.name.into(), f.reason.clone().unwrap_or_else(|| f.description.clone())]);
    }
    s.push_str(&t.render());
    s.push('\n');
    s.push_str("multiprobe here:\n");
    let mut t = Table::new(&[("", Align::Left), ("", Align::Left), ("", Align::Left)]);
    for c in &r.commands {
        t.row(vec![yes_no(c.supported), c.command.into(), c.detail.clone()]);
    }
    s.push_str(&t.render());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(name: &'static str, reason: Option<&str>) -> Feature {
        Feature {
            name,
            supported: reason.is_none(),
            description: format!("{name} works"),
            reason: reason.map(Into::into),
        }
    }

    fn all_yes() -> Vec<Feature> {
        ["privileges", "bpf_syscall", "kprobe_multi", "kprobe_session", "perf_kprobe", "perf_kprobe_cookies", "tracefs"]
            .into_iter()
            .map(|n| feature(n, None))
            .collect()
    }

    fn set_no(feats: &mut [Feature], name: &str, reason: &str) {
        let f = feats.iter_mut().find(|f| f.name == name).unwrap();
        f.supported = false;
        f.reason = Some(reason.into());
    }

    #[test]
    fn a_feature_whose_prerequisite_is_missing_says_so() {
        let mut f = all_yes();
        f.push(feature("available_filter_functions_addrs", None));
        set_no(&mut f, "perf_kprobe", "needs root");
        set_no(&mut f, "tracefs", "tracefs is mounted at /sys/kernel/tracing but this user may not read it");
        set_no(&mut f, "kprobe_multi", "built without CONFIG_FPROBE");
        let f = mark_dependents(f);
        let get = |n: &str| f.iter().find(|x| x.name == n).unwrap();
        assert!(!get("perf_kprobe_cookies").supported);
        assert_eq!(get("perf_kprobe_cookies").reason.as_deref(), Some("n/a: needs perf_kprobe"));
        assert_eq!(get("available_filter_functions_addrs").reason.as_deref(), Some("n/a: needs tracefs"));
        assert_eq!(get("kprobe_session").reason.as_deref(), Some("n/a: needs kprobe_multi"));
        assert_eq!(get("perf_kprobe").reason.as_deref(), Some("needs root"), "a plain no stays as it was");
        let report = Report { kernel: "6.1".into(), arch: "x86_64", root: false, commands: commands(&f), features: f };
        let text = render(&report);
        let line = text.lines().find(|l| l.contains("perf_kprobe_cookies")).unwrap();
        assert!(line.starts_with("no ") && line.ends_with("n/a: needs perf_kprobe"), "{line:?}");
    }

    #[test]
    fn commands_follow_the_features() {
        let c = commands(&all_yes());
        assert!(c.iter().all(|c| c.supported));
        assert_eq!(c[1].detail, "one kprobe_multi link");
        assert_eq!(c[2].detail, "one kprobe session link");

        // Debian 12's 6.1: no fprobe, so per-function kprobes.
        let mut f = all_yes();
        set_no(&mut f, "kprobe_multi", "built without CONFIG_FPROBE");
        set_no(&mut f, "kprobe_session", "built without CONFIG_FPROBE");
        let c = commands(&f);
        assert!(c[1].supported && c[1].detail.contains("one kprobe per function"), "{c:?}");
        assert!(c[2].supported && c[2].detail.contains("kretprobe per function"), "{c:?}");

        // No kprobes at all.
        set_no(&mut f, "perf_kprobe", "no kprobe PMU: CONFIG_KPROBES");
        let c = commands(&f);
        assert!(!c[1].supported, "{c:?}");
        assert_eq!(c[1].detail, "missing kprobe_multi or perf_kprobe (reasons above)");

        // This build machine: also tracefs unreadable.
        set_no(&mut f, "tracefs", "Operation not permitted");
        let c = commands(&f);
        assert!(c.iter().all(|c| !c.supported));
        assert_eq!(c[0].detail, "missing tracefs (reasons above)");
        assert_eq!(c[2].detail, "missing kprobe_multi or perf_kprobe, tracefs (reasons above)");
    }

    #[test]
    fn text_gives_the_reason_for_every_no() {
        let mut f = all_yes();
        set_no(&mut f, "kprobe_multi", "kernel 6.1 was built without CONFIG_FPROBE");
        let r =
            Report { kernel: "6.1.0-1-amd64".into(), arch: "x86_64", root: true, commands: commands(&f), features: f };
        let text = render(&r);
        assert!(text.starts_with("kernel 6.1.0-1-amd64 (x86_64), running as root\n"), "{text}");
        assert!(text.contains("no   kprobe_multi         kernel 6.1 was built without CONFIG_FPROBE\n"), "{text}");
        assert!(text.contains("yes  bpf_syscall          bpf_syscall works\n"), "{text}");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["features"][2]["name"], "kprobe_multi");
        assert_eq!(v["features"][2]["supported"], false);
        assert_eq!(v["features"][2]["reason"], "kernel 6.1 was built without CONFIG_FPROBE");
        assert_eq!(v["commands"][1]["command"], "count");
    }
}
