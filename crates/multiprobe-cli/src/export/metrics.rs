//! What `/metrics` says: one snapshot of the probes' values, encoded with `prometheus-client`
//! in the Prometheus text format (0.0.4) or OpenMetrics 1.0, as the scraper's `Accept`
//! header asks.
//!
//! The values are read from the BPF maps at scrape time (see `probes`); this file only
//! names and encodes them, so it is tested without a kernel.

use std::fmt;
use std::sync::Arc;

use multiprobe::symbols::Function;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::hist::{self, BUCKETS, Histogram};
use crate::select::module_name;

/// The `le` bounds of the latency histograms: the log2 buckets' upper bounds from 2^5 ns
/// (32 ns) to 2^36 ns (68.7 s), then `+Inf`. Faster calls fall in the first bucket, slower
/// ones in `+Inf`; 32 bounds keep a series count a scraper can afford per function.
const FIRST_LE: usize = 5;
const LAST_LE: usize = 36;

/// One probe's functions and what each has counted, read at one scrape.
#[derive(Debug)]
pub struct ProbeValues<T> {
    /// `calls` or `latency`: the `probe` label of the per-probe metrics.
    pub probe: &'static str,
    /// The attached functions.
    pub functions: Arc<[Function]>,
    /// One value per function, in the same order.
    pub values: Vec<T>,
    /// Runs the kernel skipped, where it says (link info on 6.7+, recursion misses).
    pub missed: Option<u64>,
}

/// One function's latencies so far.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Calls per log2 bucket, summed over the CPUs.
    pub hist: Histogram,
    /// Total time of those calls.
    pub sum_ns: u64,
}

/// What one probe set reports.
#[derive(Debug)]
pub struct SetValues {
    /// Labels on every series of the set, before the others (`set` and the config's extra
    /// labels; none for the flags' one set).
    pub labels: Vec<(String, String)>,
    /// Calls per function.
    pub calls: ProbeValues<u64>,
    /// Latencies per function, with `--latency`.
    pub latency: Option<ProbeValues<Latency>>,
}

/// Everything a scrape reports.
#[derive(Debug)]
pub struct Snapshot {
    /// The running kernel's release, for `multiprobe_build_info`.
    pub kernel: String,
    /// Every probe set, in the config's order.
    pub sets: Vec<SetValues>,
    /// How long the previous scrape took, if there was one.
    pub previous: Option<ScrapeTimes>,
}

/// Where a scrape's time went, as the exporter measured it.
#[derive(Debug, Clone, Copy)]
pub struct ScrapeTimes {
    /// Reading every probe's BPF maps: what `count` does at each interval.
    pub read_seconds: f64,
    /// Encoding the body.
    pub encode_seconds: f64,
}

/// The two text formats a scraper can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4: what a plain `curl` gets.
    Prometheus,
    /// OpenMetrics 1.0 text: what Prometheus asks for first.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header prefers: OpenMetrics when it weighs it at least as much
    /// as plain text (`text/plain`, `text/*`, `*/*`), else the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut open_metrics, mut text) = (0.0f64, 0.0f64);
        for item in accept.unwrap_or("").split(',') {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, v)| v.trim().parse::<f64>().unwrap_or(0.0));
            match media.as_str() {
                "application/openmetrics-text" => open_metrics = open_metrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if open_metrics > 0.0 && open_metrics >= text { Format::OpenMetrics } else { Format::Prometheus }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The snapshot as a `/metrics` body.
pub fn encode(snapshot: Snapshot, format: Format) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut body = String::new();
    match format {
        Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut body, &registry)?,
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut body, &registry)?,
    }
    Ok(body)
}

/// A set's labels, then `more`.
fn with<'a>(set: &'a [(String, String)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    set.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(more.iter().copied()).collect()
}

/// A function's labels, after its set's.
fn labels<'a>(set: &'a [(String, String)], f: &'a Function) -> Vec<(&'a str, &'a str)> {
    with(set, &[("function", f.name.as_str()), ("module", module_name(f))])
}

/// A histogram's buckets as `prometheus-client` takes them: (upper bound in seconds, count
/// in that bucket alone), the encoder adds them up. Bucket k >= 1 of the BPF side holds
/// [2^(k-1), 2^k) ns, so every call it counts is at most 2^k ns: `le` = 2^k ns is exact.
fn le_buckets(h: &Histogram) -> Vec<(f64, u64)> {
    let seconds = |b: usize| hist::bounds(b).1 as f64 / 1e9;
    let mut out = Vec::with_capacity(LAST_LE - FIRST_LE + 2);
    out.push((seconds(FIRST_LE), h.buckets[..=FIRST_LE].iter().sum()));
    out.extend((FIRST_LE + 1..=LAST_LE).map(|b| (seconds(b), h.buckets[b])));
    out.push((f64::INFINITY, h.buckets[LAST_LE + 1..BUCKETS].iter().sum()));
    out
}

/// Attached functions per module, sorted by module.
fn per_module(functions: &[Function]) -> Vec<(&str, i64)> {
    let mut counts = std::collections::BTreeMap::new();
    for f in functions {
        *counts.entry(module_name(f)).or_insert(0i64) += 1;
    }
    counts.into_iter().collect()
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        {
            let mut family = encoder.encode_descriptor(
                "multiprobe_function_calls",
                "Calls of each probed kernel function since the exporter attached to it.",
                None,
                MetricType::Counter,
            )?;
            for set in &self.sets {
                for (f, calls) in set.calls.functions.iter().zip(&set.calls.values) {
                    family
                        .encode_family(&labels(&set.labels, f))?
                        .encode_counter::<NoLabelSet, u64, f64>(calls, None)?;
                }
            }
        }
        if self.sets.iter().any(|s| s.latency.is_some()) {
            let mut family = encoder.encode_descriptor(
                "multiprobe_function_latency",
                "Time from entry to return of each call of the --latency functions, in log2 buckets.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for set in &self.sets {
                let Some(latency) = &set.latency else { continue };
                for (f, l) in latency.functions.iter().zip(&latency.values) {
                    family.encode_family(&labels(&set.labels, f))?.encode_histogram::<NoLabelSet>(
                        l.sum_ns as f64 / 1e9,
                        l.hist.count(),
                        &le_buckets(&l.hist),
                        None,
                    )?;
                }
            }
        }
        let probes = || {
            self.sets.iter().flat_map(|set| {
                std::iter::once((&set.labels, set.calls.probe, &set.calls.functions, set.calls.missed))
                    .chain(set.latency.iter().map(move |l| (&set.labels, l.probe, &l.functions, l.missed)))
            })
        };
        {
            let mut family = encoder.encode_descriptor(
                "multiprobe_probe_missed",
                "Runs of each probe the kernel skipped (recursion, or kprobe_multi's count on 6.7+); \
                 the kernel counts them per link, not per function.",
                None,
                MetricType::Counter,
            )?;
            for (set, probe, _, missed) in probes() {
                if let Some(missed) = missed {
                    family
                        .encode_family(&with(set, &[("probe", probe)]))?
                        .encode_counter::<NoLabelSet, u64, f64>(&missed, None)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "multiprobe_attached_functions",
                "Functions each probe is attached to, per module.",
                None,
                MetricType::Gauge,
            )?;
            for (set, probe, functions, _) in probes() {
                for (module, n) in per_module(functions) {
                    family.encode_family(&with(set, &[("probe", probe), ("module", module)]))?.encode_gauge(&n)?;
                }
            }
        }
        if let Some(t) = self.previous {
            let mut family = encoder.encode_descriptor(
                "multiprobe_scrape_duration_seconds",
                "Time the previous scrape took in the exporter: reading the BPF maps, encoding the body.",
                None,
                MetricType::Gauge,
            )?;
            for (phase, seconds) in [("read", t.read_seconds), ("encode", t.encode_seconds)] {
                family.encode_family(&[("phase", phase)])?.encode_gauge(&seconds)?;
            }
        }
        encoder
            .encode_descriptor(
                "multiprobe_build",
                "The exporter's version and the kernel it runs on.",
                None,
                MetricType::Info,
            )?
            .encode_info(&[("version", env!("CARGO_PKG_VERSION")), ("kernel", self.kernel.as_str())])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str, module: Option<&str>) -> Function {
        Function { name: name.into(), module: module.map(Into::into), address: 0xffffffff81000000 }
    }

    fn snapshot(latency: bool) -> Snapshot {
        let functions: Arc<[Function]> = vec![
            function("vfs_read", None),
            function("vfs_write", None),
            function("load_misc_binary", Some("binfmt_misc")),
        ]
        .into();
        let mut hist = Histogram::default();
        hist.buckets[3] = 1; // [4, 8) ns: under the first bound
        hist.buckets[11] = 4; // [1K, 2K) ns
        hist.buckets[40] = 2; // over 68.7 s
        Snapshot {
            kernel: "6.12.57+deb13-amd64".into(),
            sets: vec![SetValues {
                labels: Vec::new(),
                calls: ProbeValues { probe: "calls", functions, values: vec![12, 0, 3], missed: Some(0) },
                latency: latency.then(|| ProbeValues {
                    probe: "latency",
                    functions: vec![function("vfs_read", None)].into(),
                    values: vec![Latency { hist, sum_ns: 3_000_000_000 }],
                    missed: None,
                }),
            }],
            previous: None,
        }
    }

    #[test]
    fn prometheus_text() {
        let body = encode(snapshot(false), Format::Prometheus).unwrap();
        let expected = "\
# HELP multiprobe_function_calls_total Calls of each probed kernel function since the exporter attached to it.
# TYPE multiprobe_function_calls_total counter
multiprobe_function_calls_total{function=\"vfs_read\",module=\"vmlinux\"} 12
multiprobe_function_calls_total{function=\"vfs_write\",module=\"vmlinux\"} 0
multiprobe_function_calls_total{function=\"load_misc_binary\",module=\"binfmt_misc\"} 3
";
        assert!(body.starts_with(expected), "{body}");
        assert!(body.contains("multiprobe_probe_missed_total{probe=\"calls\"} 0\n"), "{body}");
        assert!(body.contains("# TYPE multiprobe_attached_functions gauge\n"), "{body}");
        assert!(body.contains("multiprobe_attached_functions{probe=\"calls\",module=\"binfmt_misc\"} 1\n"), "{body}");
        assert!(body.contains("multiprobe_attached_functions{probe=\"calls\",module=\"vmlinux\"} 2\n"), "{body}");
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            body.contains(&format!(
                "multiprobe_build_info{{version=\"{version}\",kernel=\"6.12.57+deb13-amd64\"}} 1\n"
            )),
            "{body}"
        );
        assert!(!body.contains("latency"), "no --latency, no histogram: {body}");
        assert!(!body.contains("scrape_duration"), "no scrape before: {body}");
        assert!(!body.contains("# EOF"), "{body}");
    }

    #[test]
    fn open_metrics_text() {
        let body = encode(snapshot(true), Format::OpenMetrics).unwrap();
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(body.contains("# TYPE multiprobe_function_calls counter\n"), "{body}");
        assert!(body.contains("# TYPE multiprobe_function_latency_seconds histogram\n"), "{body}");
        assert!(body.contains("# UNIT multiprobe_function_latency_seconds seconds\n"), "{body}");
        assert!(body.contains("# TYPE multiprobe_build info\n"), "{body}");
    }

    /// Parses `name{labels} value` lines of one series of the histogram.
    fn histogram_lines(body: &str) -> Vec<(String, f64)> {
        body.lines()
            .filter(|l| l.starts_with("multiprobe_function_latency_seconds_bucket{"))
            .map(|l| {
                let le = l.split(",le=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
                (le, l.rsplit(' ').next().unwrap().parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn latency_buckets_are_cumulative_log2_bounds_in_seconds() {
        let body = encode(snapshot(true), Format::Prometheus).unwrap();
        assert!(body.contains("# TYPE multiprobe_function_latency_seconds histogram\n"), "{body}");
        assert!(body.contains("multiprobe_function_latency_seconds_sum{function=\"vfs_read\",module=\"vmlinux\"} 3"));
        assert!(body.contains("multiprobe_function_latency_seconds_count{function=\"vfs_read\",module=\"vmlinux\"} 7"));
        let buckets = histogram_lines(&body);
        assert_eq!(buckets.len(), LAST_LE - FIRST_LE + 2, "{body}");
        let mut last_le = 0.0;
        for (i, (le, count)) in buckets.iter().enumerate() {
            if i + 1 == buckets.len() {
                assert_eq!((le.as_str(), *count), ("+Inf", 7.0));
                break;
            }
            let le: f64 = le.parse().unwrap();
            assert!((le * 1e9 - (1u64 << (FIRST_LE + i)) as f64).abs() < 1e-3, "bucket {i}: le {le}");
            assert!(le > last_le);
            last_le = le;
            let want = match FIRST_LE + i {
                k if k < 11 => 1.0,
                _ => 5.0,
            };
            assert_eq!(*count, want, "le {le}");
        }
        assert!(body.contains("multiprobe_attached_functions{probe=\"latency\",module=\"vmlinux\"} 1\n"), "{body}");
        assert!(!body.contains("multiprobe_probe_missed_total{probe=\"latency\""), "not known, not said: {body}");
    }

    #[test]
    fn the_previous_scrape_is_timed() {
        let mut s = snapshot(false);
        s.previous = Some(ScrapeTimes { read_seconds: 0.25, encode_seconds: 0.5 });
        let body = encode(s, Format::Prometheus).unwrap();
        assert!(body.contains("# TYPE multiprobe_scrape_duration_seconds gauge\n"), "{body}");
        assert!(body.contains("multiprobe_scrape_duration_seconds{phase=\"read\"} 0.25\n"), "{body}");
        assert!(body.contains("multiprobe_scrape_duration_seconds{phase=\"encode\"} 0.5\n"), "{body}");
    }

    #[test]
    fn sets_label_their_series() {
        let mut s = snapshot(true);
        let mut other = snapshot(false).sets.remove(0);
        s.sets[0].labels = vec![("set".into(), "vfs".into()), ("team".into(), "storage".into())];
        other.labels = vec![("set".into(), "other".into())];
        s.sets.push(other);
        let body = encode(s, Format::Prometheus).unwrap();
        let vfs = "set=\"vfs\",team=\"storage\"";
        assert!(
            body.contains(&format!("_calls_total{{{vfs},function=\"vfs_read\",module=\"vmlinux\"}} 12\n")),
            "{body}"
        );
        assert!(body.contains("_calls_total{set=\"other\",function=\"vfs_read\",module=\"vmlinux\"} 12\n"), "{body}");
        assert!(
            body.contains(&format!("_latency_seconds_count{{{vfs},function=\"vfs_read\",module=\"vmlinux\"}} 7\n"))
        );
        assert!(body.contains(&format!("multiprobe_probe_missed_total{{{vfs},probe=\"calls\"}} 0\n")), "{body}");
        assert!(body.contains("multiprobe_attached_functions{set=\"other\",probe=\"calls\",module=\"vmlinux\"} 2\n"));
        assert_eq!(body.matches("# TYPE multiprobe_function_calls_total counter").count(), 1, "one family: {body}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = snapshot(false);
        s.sets[0].calls.functions = vec![function("odd\"name\\", None)].into();
        s.sets[0].calls.values = vec![1];
        let body = encode(s, Format::Prometheus).unwrap();
        assert!(body.contains(r#"{function="odd\"name\\",module="vmlinux"} 1"#), "{body}");
    }

    #[test]
    fn negotiation_follows_accept_weights() {
        // What Prometheus 2.x and 3.x send.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain; version=0.0.4")), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text")), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0.2, text/plain; q=0.5")),
            Format::Prometheus
        );
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;q=0")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("Application/OpenMetrics-Text ; Q=0.9, text/plain;q=0.8")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("garbage;;;,=,q=")), Format::Prometheus);
        assert!(Format::OpenMetrics.content_type().starts_with("application/openmetrics-text; version=1.0.0"));
        assert_eq!(Format::Prometheus.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    }
}
