//! The corpus runner's records as a markdown table, and the verdict.
//!
//! Compiled into the runner (bench/), which prints the table after its records, and into
//! xtask, which rebuilds it from the records it read off the VM's console; it uses nothing
//! but std and serde_json.

use std::fmt::Write as _;

use serde_json::Value;

/// Median of a list of nanoseconds, or None.
fn median(samples: &Value) -> Option<f64> {
    let mut s: Vec<f64> = samples.as_array()?.iter().filter_map(Value::as_f64).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    Some(if s.len() % 2 == 1 { s[mid] } else { (s[mid - 1] + s[mid]) / 2.0 })
}

fn ms(ns: f64) -> String {
    let v = ns / 1e6;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The object records (the summary line left out).
fn objects(records: &[Value]) -> impl Iterator<Item = &Value> {
    records.iter().filter(|r| r.get("object").is_some())
}

fn programs(record: &Value) -> &[Value] {
    record["programs"].as_array().map_or(&[], Vec::as_slice)
}

fn loaded(p: &Value, imp: &str) -> bool {
    p[format!("{imp}_error")].is_null()
}

/// Programs libbpf loads and multiprobe does not, without an allow-list reason:
/// (object, program, multiprobe's error).
pub fn unexcused(records: &[Value]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for r in objects(records) {
        for p in programs(r) {
            if loaded(p, "libbpf") && !loaded(p, "multiprobe") && p.get("allowed").is_none() {
                out.push((
                    r["object"].as_str().unwrap_or("").to_string(),
                    p["name"].as_str().unwrap_or("").to_string(),
                    p["multiprobe_error"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    out
}

/// The table: one row per object, a total, then every failure with both loaders' errors.
pub fn markdown(records: &[Value]) -> String {
    let mut md = String::new();
    if let Some(s) = records.iter().find(|r| r["summary"] == true) {
        let _ = writeln!(
            md,
            "Kernel {}, {:.0} s in all.\n",
            s["kernel"].as_str().unwrap_or("?"),
            s["seconds"].as_f64().unwrap_or(0.0)
        );
    }
    md.push_str(
        "| object | programs | libbpf opens | multiprobe opens | libbpf loads | multiprobe loads | timed | libbpf ms | multiprobe ms | ratio |\n\
         |---|---:|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let (mut n, mut lb, mut mp, mut opened_lb, mut opened_mp, mut count) = (0, 0, 0, 0, 0, 0);
    let (mut lb_total, mut mp_total, mut timed_objects) = (0.0, 0.0, 0);
    for r in objects(records) {
        count += 1;
        let ps = programs(r);
        let nl = ps.iter().filter(|p| loaded(p, "libbpf")).count();
        let nm = ps.iter().filter(|p| loaded(p, "multiprobe")).count();
        let open = |imp: &str| if r["open"][imp] == "ok" { "yes" } else { "**no**" };
        opened_lb += usize::from(r["open"]["libbpf"] == "ok");
        opened_mp += usize::from(r["open"]["multiprobe"] == "ok");
        let (tl, tm) = (median(&r["time_ns"]["libbpf"]), median(&r["time_ns"]["multiprobe"]));
        let (cl, cm, ratio) = match (tl, tm) {
            (Some(a), Some(b)) => {
                lb_total += a;
                mp_total += b;
                timed_objects += 1;
                (ms(a), ms(b), format!("{:.2}x", b / a))
            }
            _ => ("-".into(), "-".into(), "-".into()),
        };
        let mp_cell = if nm < nl { format!("**{nm}**") } else { nm.to_string() };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {nl} | {mp_cell} | {} | {cl} | {cm} | {ratio} |",
            r["object"].as_str().unwrap_or("?"),
            ps.len(),
            open("libbpf"),
            open("multiprobe"),
            r["timed_programs"].as_u64().unwrap_or(0),
        );
        n += ps.len();
        lb += nl;
        mp += nm;
    }
    let total_ratio = if lb_total > 0.0 { format!("{:.2}x", mp_total / lb_total) } else { "-".into() };
    let _ = writeln!(
        md,
        "| **all {count}** | {n} | {opened_lb} | {opened_mp} | {lb} | {mp} | {timed_objects} objects | {} | {} | {total_ratio} |",
        ms(lb_total),
        ms(mp_total),
    );
    md.push_str(
        "\nloads: programs loaded, with the object as it comes or alone; timed: the programs both load, loaded \
         together, open to loaded, median of the repetitions (in one process: multiprobe's kernel BTF is parsed \
         once per process, libbpf's once per object).\n",
    );

    let mut sections: [(&str, Vec<String>); 3] = [
        ("multiprobe refuses what libbpf loads", Vec::new()),
        ("both refuse", Vec::new()),
        ("libbpf refuses what multiprobe loads", Vec::new()),
    ];
    for r in objects(records) {
        let object = r["object"].as_str().unwrap_or("?");
        // An object multiprobe cannot open: one line, not one per program.
        if r["open"]["multiprobe"] != "ok" {
            let ps = programs(r);
            let lb = ps.iter().filter(|p| loaded(p, "libbpf")).count();
            let open = r["open"]["multiprobe"].as_str().unwrap_or("").replace('|', "\\|");
            let line = format!("- `{object}` (does not open; libbpf loads {lb} of {} programs): {open}", ps.len());
            sections[if lb > 0 { 0 } else { 1 }].1.push(line);
        }
        for p in programs(r) {
            let (l, m) = (loaded(p, "libbpf"), loaded(p, "multiprobe"));
            if r["open"]["multiprobe"] != "ok" && l {
                continue;
            }
            let name = p["name"].as_str().unwrap_or("?");
            let section = p["section"].as_str().unwrap_or("");
            let err = |imp: &str| p[format!("{imp}_error")].as_str().unwrap_or("").replace('|', "\\|");
            let allowed = p["allowed"].as_str().map(|a| format!(" (allowed: {a})")).unwrap_or_default();
            let line = match (l, m) {
                (true, false) => (0, format!("- `{object}` `{name}` (`{section}`){allowed}: {}", err("multiprobe"))),
                (false, false) => (
                    1,
                    format!(
                        "- `{object}` `{name}` (`{section}`): libbpf: {}; multiprobe: {}",
                        err("libbpf"),
                        err("multiprobe")
                    ),
                ),
                (false, true) => (2, format!("- `{object}` `{name}` (`{section}`): {}", err("libbpf"))),
                (true, true) => continue,
            };
            sections[line.0].1.push(line.1);
        }
    }
    for (title, lines) in &sections {
        if !lines.is_empty() {
            let _ = writeln!(md, "\n#### {title} ({} entries)\n", lines.len());
            md.push_str(&lines.join("\n"));
            md.push('\n');
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_and_verdict() {
        let records = vec![
            json!({"object": "a.bpf.o", "open": {"libbpf": "ok", "multiprobe": "ok"}, "timed_programs": 1,
                   "programs": [
                       {"name": "p", "section": "kprobe/x", "libbpf_error": null, "multiprobe_error": null},
                       {"name": "q", "section": "fentry/y", "libbpf_error": null, "multiprobe_error": "unknown section"},
                       {"name": "r", "section": "fentry/z", "libbpf_error": "ESRCH", "multiprobe_error": "no z"},
                   ],
                   "time_ns": {"libbpf": [2_000_000, 4_000_000, 3_000_000], "multiprobe": [1_500_000]}}),
            json!({"object": "b.bpf.o", "open": {"libbpf": "ok", "multiprobe": "bad"}, "timed_programs": 0,
                   "programs": [{"name": "s", "section": "tc", "libbpf_error": null, "multiprobe_error": "open: bad",
                                 "allowed": "documented"}],
                   "time_ns": {"libbpf": [], "multiprobe": []}}),
            json!({"summary": true, "kernel": "6.12.1", "seconds": 3.0}),
        ];
        let md = markdown(&records);
        assert!(md.contains("| a.bpf.o | 3 | yes | yes | 2 | **1** | 1 | 3.00 | 1.50 | 0.50x |"), "{md}");
        assert!(md.contains("| b.bpf.o | 1 | yes | **no** | 1 | **0** | 0 | - | - | - |"), "{md}");
        assert!(md.contains("| **all 2** | 4 | 2 | 1 | 3 | 1 | 1 objects | 3.00 | 1.50 | 0.50x |"), "{md}");
        assert!(md.contains("#### multiprobe refuses what libbpf loads (2 entries)"), "{md}");
        assert!(md.contains("- `b.bpf.o` (does not open; libbpf loads 1 of 1 programs): bad"), "{md}");
        assert!(md.contains("libbpf: ESRCH; multiprobe: no z"), "{md}");
        assert_eq!(unexcused(&records), vec![("a.bpf.o".into(), "q".into(), "unknown section".into())]);
    }
}
