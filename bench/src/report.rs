//! What the benchmark prints: one JSON object per line, prefixed so the host can find the
//! lines among kernel messages on the VM's serial console.

use serde_json::{Value, json};

/// Printed before the first result.
pub const BEGIN: &str = "MPBENCH-BEGIN";
/// Prefix of every result line.
pub const LINE: &str = "MPBENCH ";
/// Printed after the last result.
pub const END: &str = "MPBENCH-END";

/// One series of samples.
pub struct Series<'a> {
    /// What is measured: `attach`, `detach`, `load`, `listing`, `match`, `per_call`, ...
    pub group: &'a str,
    /// The case: a pattern, an object, a syscall.
    pub case: &'a str,
    /// Which implementation: `multiprobe`, `multiprobe-cold`, `libbpf`, `floor`, ...
    pub imp: &'a str,
    /// Number of functions involved, when it applies.
    pub matches: Option<usize>,
    /// `ns` or `kB`, ...
    pub unit: &'a str,
    /// Raw samples, in measurement order.
    pub samples: Vec<u64>,
}

/// Prints one result line.
pub fn emit(s: &Series<'_>) {
    let mut v = json!({
        "group": s.group,
        "case": s.case,
        "impl": s.imp,
        "unit": s.unit,
        "samples": s.samples,
    });
    if let Some(m) = s.matches {
        v["matches"] = json!(m);
    }
    emit_value(&v);
}

/// Prints any JSON value as a result line (facts about the run: kernel, counts, errors).
pub fn emit_value(v: &Value) {
    println!("{LINE}{v}");
}

/// Something that failed: reported, not fatal, so one refusal does not lose the whole run.
pub fn emit_error(group: &str, case: &str, imp: &str, error: &dyn std::fmt::Display) {
    eprintln!("mpbench: {group} {case} {imp}: {error}");
    emit_value(&json!({"group": "error", "case": format!("{group} {case}"), "impl": imp, "error": error.to_string()}));
}

/// Progress for the person watching, on stderr.
pub fn progress(msg: &str) {
    eprintln!("mpbench: {msg}");
}
