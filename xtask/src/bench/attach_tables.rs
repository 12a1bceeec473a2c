//! The attach tables: attach and detach times against libbpf and the kernel floor, where
//! multiprobe's attach time goes, the listing reads, and the resolution alternatives tried.

use std::fmt::Write as _;

use super::report::{PATTERNS, Report, ms};

impl Report {
    /// Attach times per pattern, with ratios to the floor and to libbpf.
    pub(super) fn attach_table(&self, md: &mut String) {
        let _ = writeln!(md, "#### Attach\n");
        md.push_str(
            "| pattern | functions | multiprobe cold | cold + per-boot file | multiprobe warm | libbpf cold | libbpf | kernel floor | cold / floor | cold + file / floor | warm / floor | libbpf / floor | cold / libbpf cold | warm / libbpf |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for p in PATTERNS {
            if self.stat("attach", p, "floor").is_none() {
                continue;
            }
            let a = |imp| self.cell("attach", p, imp);
            let r = |x, y| self.ratio_cell(("attach", p, x), ("attach", p, y));
            let file = self.cell("attach-alt", p, "multiprobe-cold-diskcache");
            let file_ratio = self.ratio_cell(("attach-alt", p, "multiprobe-cold-diskcache"), ("attach", p, "floor"));
            let _ = writeln!(
                md,
                "| `{p}` | {} | {} | {file} | {} | {} | {} | {} | {} | {file_ratio} | {} | {} | {} | {} |",
                self.matches("attach", p, "floor").unwrap_or(0),
                a("multiprobe-cold"),
                a("multiprobe"),
                a("libbpf-cold"),
                a("libbpf"),
                a("floor"),
                r("multiprobe-cold", "floor"),
                r("multiprobe", "floor"),
                r("libbpf", "floor"),
                r("multiprobe-cold", "libbpf-cold"),
                r("multiprobe", "libbpf"),
            );
        }
        md.push_str(
            "\ncold: the first attach of a fresh process (multiprobe reads the listing; code and heap pages are \
             faulted in); cold + per-boot file: the same with the listing file an earlier process left in a \
             cache directory (`set_listing_cache_dir`; the CLI's `/run/multiprobe`); warm: later attaches in the same process (multiprobe keeps the listing in memory, checked \
             against boot id and module list). libbpf reads the listing on every attach. `*`: every traceable function less the deny list; libbpf and the floor get the address list \
             multiprobe resolved (a libbpf pattern cannot exclude).\n\n",
        );
    }

    /// Detach times per pattern.
    pub(super) fn detach_table(&self, md: &mut String) {
        let _ = writeln!(md, "#### Detach\n");
        md.push_str("| pattern | multiprobe | libbpf | kernel floor |\n|---|---:|---:|---:|\n");
        for p in PATTERNS {
            if self.stat("attach-detach", p, "floor").is_none() {
                continue;
            }
            let d = |imp| self.cell("attach-detach", p, imp);
            let _ = writeln!(md, "| `{p}` | {} | {} | {} |", d("multiprobe"), d("libbpf"), d("floor"));
        }
    }

    /// Where multiprobe's attach time goes, and what reading the listing costs.
    pub(super) fn time_split(&self, md: &mut String) {
        let _ = writeln!(md, "\n#### Where multiprobe's attach time goes (medians, ms)\n");
        md.push_str(
            "| pattern | read listing (cold only) | cache check (warm) | match | kernel (floor) | sum cold | measured cold | sum warm | measured warm |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let read = self.median("listing", "addrs", "multiprobe");
        let check = self.median("listing", "cached", "multiprobe");
        for p in PATTERNS {
            let Some(floor) = self.median("attach", p, "floor") else { continue };
            let exact = !p.contains('*') && !p.contains('?');
            let m = if exact { Some(0.0) } else { self.median("match", p, "multiprobe") };
            let (r, c) = if exact { (Some(0.0), Some(0.0)) } else { (read, check) };
            let sum = |a: Option<f64>| match (a, m) {
                (Some(a), Some(m)) => ms(a + m + floor),
                _ => "-".into(),
            };
            let opt = |v: Option<f64>| v.map_or("-".into(), ms);
            let _ = writeln!(
                md,
                "| `{p}` | {} | {} | {} | {} | {} | {} | {} | {} |",
                opt(r),
                opt(c),
                opt(m),
                ms(floor),
                sum(r),
                opt(self.median("attach", p, "multiprobe-cold")),
                sum(c),
                opt(self.median("attach", p, "multiprobe")),
            );
        }
        md.push_str("\nAn exact name takes the fast path: no listing, the kernel resolves the name.\n\n");
        md.push_str("| listing read | ms | bytes |\n|---|---:|---:|\n");
        for (case, what) in [
            ("addrs", "`available_filter_functions_addrs` (`TraceableFunctions::read_uncached`)"),
            ("names", "`available_filter_functions` (`TraceableFunctions::read_names`)"),
            ("kallsyms", "`/proc/kallsyms`"),
            ("cached", "`TraceableFunctions::read` when cached (boot id, release, `/proc/modules`)"),
        ] {
            let bytes = self.records.bytes.get(&format!("listing {case}")).copied().unwrap_or(0);
            let _ = writeln!(md, "| {what} | {} | {bytes} |", self.cell("listing", case, "multiprobe"));
        }
        for (case, what) in [
            (
                "entries compute",
                "entry addresses of every function (`entry_addresses`), first use: `/proc/kallsyms` read and joined",
            ),
            ("entries kept", "entry addresses again (kept with the listing)"),
        ] {
            if self.stat("listing", case, "multiprobe").is_some() {
                let _ = writeln!(md, "| {what} | {} | - |", self.cell("listing", case, "multiprobe"));
            }
        }
    }

    /// The resolution prototypes against multiprobe and the floor.
    pub(super) fn alternatives_table(&self, md: &mut String) {
        let _ = writeln!(md, "\n#### Resolution alternatives (attach, medians, ms)\n");
        md.push_str(
            "| pattern | names | multiprobe cold | cold + per-boot file | names-only listing + by name | tracefs instance filter + by name | floor (addresses) | floor (by name) | match: scan | match: sorted index |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for p in PATTERNS {
            let Some(n) = self.matches("attach-alt", p, "floor-by-name") else { continue };
            let opt = |g: &str, imp: &str| self.median(g, p, imp).map_or("-".into(), ms);
            let _ = writeln!(
                md,
                "| `{p}` | {n} | {} | {} | {} | {} | {} | {} | {} | {} |",
                opt("attach", "multiprobe-cold"),
                opt("attach-alt", "multiprobe-cold-diskcache"),
                opt("attach-alt", "names+byname"),
                opt("attach-alt", "tracefs-instance"),
                opt("attach", "floor"),
                opt("attach-alt", "floor-by-name"),
                opt("match", "multiprobe"),
                opt("match", "index"),
            );
        }
        if let Some(b) = self.median("listing", "index build", "index") {
            let _ = writeln!(md, "\nSorted index: built once from the listing in {} ms.", ms(b));
        }
        if let Some(b) = self.median("listing", "tracefs instance mkdir", "tracefs-instance") {
            let _ = writeln!(md, "Tracefs instance: created once in {} ms (not counted above).", ms(b));
        }
        md.push_str("By name, the kernel attaches the first traceable function of each name: duplicated names lose their other copies.\n");
    }
}
