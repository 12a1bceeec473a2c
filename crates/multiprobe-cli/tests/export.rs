//! `multiprobe export` end to end: natively (usage errors, a busy port) and in the VMs on
//! real kernels, scraped over plain HTTP from inside the VM the way Prometheus does, while
//! this test makes calls it can count (pread(2) on a file of its own: one vfs_read each).
//!
//! The exporter counts every process's calls (it has no `--pid`), so counts are checked to
//! grow by at least the test's own calls.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Workload, bin, links, links_settle_to, require_kprobes};
use testkit::require_config;

/// The exporter running in the background; its stderr collected by a thread (so that the
/// pipe never fills while the test scrapes).
struct Exporter {
    child: Child,
    /// `127.0.0.1:PORT`, from its `exporting ... on http://ADDR/metrics` line.
    addr: String,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    /// Starts `multiprobe export ARGS --listen 127.0.0.1:0` and waits until it serves.
    fn start(args: &[&str]) -> Exporter {
        let mut child = Command::new(bin())
            .arg("export")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin().display()));
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let stderr = Arc::new(Mutex::new(String::new()));
        let addr = loop {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!("the exporter ended ({status}) before serving:\n{}", stderr.lock().unwrap());
            }
            stderr.lock().unwrap().push_str(&line);
            if let Some(rest) = line.split("on http://").nth(1) {
                break rest.split('/').next().unwrap().to_string();
            }
        };
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = lines.read_to_string(&mut rest);
            sink.lock().unwrap().push_str(&rest);
        });
        Exporter { child, addr, stderr, reader: Some(reader) }
    }

    fn signal(&self, sig: &str) {
        common::signal(&self.child, sig);
    }

    /// Waits for it to exit: its status and whole stderr.
    fn finish(&mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status, self.stderr.lock().unwrap().clone())
    }

    fn get(&self, path: &str, accept: Option<&str>) -> Reply {
        http(&self.addr, "GET", path, accept)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // A failed assertion must not leave the exporter attached for the next tests.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response: status, `Content-Type`, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

/// One HTTP/1.1 request on a connection of its own, as a scraper sends it.
fn http(addr: &str, method: &str, path: &str, accept: Option<&str>) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    // Under emulation a scrape takes a while; a hung exporter must still fail the test.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not HTTP: {raw}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {head}"));
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Reply { status, content_type, body: body.to_string() }
}

/// The value of the sample `series` (`name{labels}`, exactly as exposed), if present.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn calls(body: &str, function: &str) -> f64 {
    let series = format!("multiprobe_function_calls_total{{function=\"{function}\",module=\"vmlinux\"}}");
    sample(body, &series).unwrap_or_else(|| panic!("no {series}:\n{body}"))
}

/// `n` pread(2) calls on a file of the test's own: `n` vfs_read calls.
fn reads(n: usize) {
    let w = Workload::new("export-workload");
    w.write(1);
    w.read(n);
}

// ---------------------------------------------------------------------------------------
// Natively and everywhere
// ---------------------------------------------------------------------------------------

#[test]
fn export_usage_errors_exit_2() {
    for args in [
        &["export", "vfs_read"][..],
        &["export", "--listen", "127.0.0.1:9435"],
        &["export", "vfs_read", "--listen", "localhost"],
        &["export", "vfs_read", "--listen", "127.0.0.1:99999"],
        &["export", "vfs_read", "--listen", "127.0.0.1:0", "--duration", "5x"],
    ] {
        let out = Command::new(bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A busy port is the first thing checked: one error naming the address, a hint, exit 1,
/// nothing attached (no root needed to see it).
#[test]
fn export_explains_a_busy_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(bin()).args(["export", "vfs_read", "--listen", &addr]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with(&format!("error: cannot listen on {addr}: ")), "{stderr}");
    assert!(stderr.contains("hint: another process listens on port"), "{stderr}");
    assert!(!stderr.contains("attached"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// In the VMs
// ---------------------------------------------------------------------------------------

/// The whole service: /healthz, /metrics in both formats with values read at each scrape
/// (vfs_read's counter and histogram grow with the test's own reads), the per-probe
/// metrics, errors for other paths and methods, and a clean end on SIGTERM.
#[test]
fn export_scrapes_follow_the_calls_and_sigterm_detaches() {
    require_kprobes!();
    let links_before = links();
    let mut exporter = Exporter::start(&["vfs_read", "vfs_write", "--latency", "vfs_read", "--duration", "10m"]);
    assert!(links().len() > links_before.len(), "no new link while attached");

    let health = exporter.get("/healthz", None);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"), "{health:?}");

    let first = exporter.get("/metrics", None);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let before = calls(&first.body, "vfs_read");
    reads(20);
    let second = exporter.get("/metrics", None);
    let after = calls(&second.body, "vfs_read");
    assert!(after >= before + 20.0, "vfs_read went from {before} to {after} over 20 reads:\n{}", second.body);
    calls(&second.body, "vfs_write");

    // The histogram: cumulative buckets with log2 bounds, +Inf = count >= the test's reads.
    let body = &second.body;
    let labels = "function=\"vfs_read\",module=\"vmlinux\"";
    let count = sample(body, &format!("multiprobe_function_latency_seconds_count{{{labels}}}")).expect(body);
    assert!(count >= 20.0, "{body}");
    assert!(sample(body, &format!("multiprobe_function_latency_seconds_sum{{{labels}}}")).expect(body) > 0.0);
    let buckets: Vec<(String, f64)> = body
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("multiprobe_function_latency_seconds_bucket{{{labels},le=\"")))
        .map(|rest| {
            let (le, value) = rest.split_once("\"} ").unwrap();
            (le.to_string(), value.parse().unwrap())
        })
        .collect();
    assert!(buckets.len() > 10, "{body}");
    assert_eq!(buckets.last().unwrap(), &("+Inf".to_string(), count), "{body}");
    for pair in buckets.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "buckets are cumulative: {pair:?}");
        if pair[1].0 != "+Inf" {
            let (a, b): (f64, f64) = (pair[0].0.parse().unwrap(), pair[1].0.parse().unwrap());
            assert!((b / a - 2.0).abs() < 1e-9, "log2 bounds: {pair:?}");
        }
    }

    let gauge = |series: &str| sample(body, series).unwrap_or_else(|| panic!("no {series}:\n{body}"));
    assert_eq!(gauge("multiprobe_attached_functions{probe=\"calls\",module=\"vmlinux\"}"), 2.0);
    assert_eq!(gauge("multiprobe_attached_functions{probe=\"latency\",module=\"vmlinux\"}"), 1.0);
    assert!(gauge("multiprobe_probe_missed_total{probe=\"calls\"}") >= 0.0);
    // The first scrape, timed by the exporter, reported by the second.
    assert!(gauge("multiprobe_scrape_duration_seconds{phase=\"read\"}") > 0.0);
    assert!(gauge("multiprobe_scrape_duration_seconds{phase=\"encode\"}") > 0.0);
    assert!(sample(&first.body, "multiprobe_scrape_duration_seconds{phase=\"read\"}").is_none());
    let build = format!("multiprobe_build_info{{version=\"{}\",kernel=\"{}\"}}", env!("CARGO_PKG_VERSION"), {
        testkit::kernel_release()
    });
    assert_eq!(gauge(&build), 1.0);

    // What Prometheus asks for: OpenMetrics.
    let om =
        exporter.get("/metrics", Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"));
    assert_eq!(om.status, 200, "{om:?}");
    assert_eq!(om.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(calls(&om.body, "vfs_read") >= after);

    assert_eq!(exporter.get("/nope", None).status, 404);
    assert_eq!(http(&exporter.addr, "POST", "/metrics", None).status, 405);

    exporter.signal("TERM");
    let (status, stderr) = exporter.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("ended by SIGTERM"), "{stderr}");
    assert!(stderr.contains("served 3 scrapes"), "{stderr}");
    assert!(TcpStream::connect(&exporter.addr).is_err(), "nothing listens after the end");
    assert_eq!(links_settle_to(&links_before), links_before, "SIGTERM left links behind");
}

/// `--duration` ends the service by itself, with a clean detach.
#[test]
fn export_duration_ends_the_service() {
    require_kprobes!();
    let mut exporter = Exporter::start(&["vfs_write", "--duration", "1s"]);
    let (status, stderr) = exporter.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("ended after --duration"), "{stderr}");
    assert!(stderr.contains("served 0 scrapes"), "{stderr}");
}

/// The `multiprobe_function_calls_total` series of a module's functions in a scrape.
fn module_series(body: &str, module: &str) -> Vec<(String, f64)> {
    let suffix = format!(",module=\"{module}\"}}");
    body.lines()
        .filter_map(|l| l.strip_prefix("multiprobe_function_calls_total{function=\""))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once("} ")?;
            let name = format!("{labels}}}").strip_suffix(&suffix)?.strip_suffix('"')?.to_string();
            Some((name, value.parse().ok()?))
        })
        .collect()
}

/// A module loaded while the exporter runs gets its matching functions attached (a probe
/// of its own) and counted, without touching the counts of the functions attached before;
/// where the kernel lets it unload meanwhile (per-function kprobes hold no reference on it),
/// its functions leave the metrics; a kprobe_multi link holds the module, so there it stays
/// until the exporter ends.
#[test]
fn export_follows_a_module_loaded_while_it_runs() {
    require_kprobes!();
    require_config!("CONFIG_MODULES", "loadable modules");
    // The test module ships with the VMs only.
    let Some(dir) = testkit::test_modules_dir() else { return };
    let sh = |cmd: &str| Command::new("sh").args(["-c", cmd]).status().unwrap().success();
    let _ = sh("umount /tmp/binfmt-export 2>/dev/null; rmmod binfmt_misc 2>/dev/null");

    let mut exporter = Exporter::start(&["vfs_read", "binfmt_misc:bm_*", "--duration", "10m"]);
    let first = exporter.get("/metrics", None).body;
    assert!(module_series(&first, "binfmt_misc").is_empty(), "not loaded yet:\n{first}");
    let before = calls(&first, "vfs_read");
    let gauge = "multiprobe_attached_functions{probe=\"calls\",module=\"binfmt_misc\"}";

    assert!(sh(&format!("insmod {}", dir.join("binfmt_misc.ko").display())), "insmod binfmt_misc");
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let body = exporter.get("/metrics", None).body;
        if sample(&body, gauge).is_some() || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let attached = sample(&body, gauge).unwrap_or_else(|| panic!("binfmt_misc never attached:\n{body}"));
    let series = module_series(&body, "binfmt_misc");
    assert_eq!(series.len() as f64, attached, "{body}");
    assert!(series.iter().any(|(name, _)| name == "bm_status_read"), "{body}");
    assert!(series.iter().all(|(name, _)| name.starts_with("bm_")), "only what the pattern selects: {series:?}");
    assert!(calls(&body, "vfs_read") >= before, "vfs_read's count was lost:\n{body}");

    // Calls of the module's functions are counted: one read(2) of its status file, one
    // bm_status_read.
    assert!(sh("mkdir -p /tmp/binfmt-export && mount -t binfmt_misc none /tmp/binfmt-export"));
    for _ in 0..3 {
        std::fs::read("/tmp/binfmt-export/status").unwrap();
    }
    assert!(sh("umount /tmp/binfmt-export"));
    let body = exporter.get("/metrics", None).body;
    let status_reads = module_series(&body, "binfmt_misc").into_iter().find(|(n, _)| n == "bm_status_read").unwrap().1;
    assert!(status_reads >= 3.0, "{body}");

    let held = exporter.stderr.lock().unwrap().contains("(kprobe_multi, calls)");
    if held {
        assert!(!sh("rmmod binfmt_misc 2>/dev/null"), "a kprobe_multi link holds its module");
    } else {
        assert!(sh("rmmod binfmt_misc"), "per-function kprobes let the module go");
        let deadline = Instant::now() + Duration::from_secs(30);
        let body = loop {
            let body = exporter.get("/metrics", None).body;
            if sample(&body, gauge).is_none() || Instant::now() > deadline {
                break body;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        assert!(module_series(&body, "binfmt_misc").is_empty(), "unloaded functions stay:\n{body}");
        assert!(calls(&body, "vfs_read") >= before, "{body}");
    }

    exporter.signal("TERM");
    let (status, stderr) = exporter.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("module binfmt_misc loaded: attached to"), "{stderr}");
    assert!(!stderr.contains("warning: module"), "{stderr}");
    let _ = sh("rmmod binfmt_misc 2>/dev/null");
}

/// A config file of the test's own, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(name: &str, text: &str) -> ConfigFile {
        let path = std::env::temp_dir().join(format!("multiprobe-export-{name}-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        ConfigFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A config file with a mistake is refused before anything is attached, naming the file,
/// the line and the key (no root needed to see it); flags and --config do not mix.
#[test]
fn export_config_errors_name_file_line_and_key() {
    let file = ConfigFile::new("bad", "[[set]]\nname = \"vfs\"\npatterns = [\"vfs_read\"]\nlabel = { a = \"b\" }\n");
    let out =
        Command::new(bin()).args(["export", "--config", file.path(), "--listen", "127.0.0.1:0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with(&format!("error: config file {}, line 4: ", file.path())), "{stderr}");
    assert!(stderr.contains("unknown field `label`"), "{stderr}");
    assert!(!stderr.contains("attached"), "{stderr}");

    let out = Command::new(bin())
        .args(["export", "--config", "/nonexistent/export.toml", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read the config file /nonexistent/export.toml"), "{stderr}");

    for args in [&["vfs_read", "--config", file.path()][..], &["--config", file.path(), "--latency", "vfs_read"]] {
        let out = Command::new(bin()).arg("export").args(args).args(["--listen", "127.0.0.1:0"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Several sets from a file, each series labelled with its set and the set's own labels;
/// SIGHUP reads the file again: the unchanged set keeps its counts, the removed one is
/// detached, the new one attached.
#[test]
fn export_config_sets_and_sighup_reload() {
    require_kprobes!();
    let links_before = links();
    let file = ConfigFile::new(
        "sets",
        "[[set]]\nname = \"reads\"\npatterns = [\"vfs_read\"]\nlabels = { team = \"storage\" }\n\n\
         [[set]]\nname = \"writes\"\npatterns = [\"vfs_write\"]\n",
    );
    let mut exporter = Exporter::start(&["--config", file.path(), "--duration", "10m"]);
    let read_series =
        "multiprobe_function_calls_total{set=\"reads\",team=\"storage\",function=\"vfs_read\",module=\"vmlinux\"}";
    let writes = "multiprobe_function_calls_total{set=\"writes\",function=\"vfs_write\",module=\"vmlinux\"}";
    let opens = "multiprobe_function_calls_total{set=\"opens\",function=\"vfs_open\",module=\"vmlinux\"}";
    let first = exporter.get("/metrics", None).body;
    assert!(sample(&first, writes).is_some(), "{first}");
    let before = sample(&first, read_series).unwrap_or_else(|| panic!("no {read_series}:\n{first}"));
    reads(20);
    let second = exporter.get("/metrics", None).body;
    let grown = sample(&second, read_series).unwrap();
    assert!(grown >= before + 20.0, "{before} -> {grown}");
    let gauge = "multiprobe_attached_functions{set=\"reads\",team=\"storage\",probe=\"calls\",module=\"vmlinux\"}";
    assert_eq!(sample(&second, gauge), Some(1.0), "{second}");

    std::fs::write(
        &file.0,
        "[[set]]\nname = \"reads\"\npatterns = [\"vfs_read\"]\nlabels = { team = \"storage\" }\n\n\
         [[set]]\nname = \"opens\"\npatterns = [\"vfs_open\"]\n",
    )
    .unwrap();
    exporter.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let body = exporter.get("/metrics", None).body;
        if sample(&body, opens).is_some() || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(sample(&body, opens).is_some(), "the new set never showed:\n{body}");
    assert!(sample(&body, writes).is_none(), "the removed set stays:\n{body}");
    assert!(sample(&body, read_series).unwrap() >= grown, "the unchanged set lost its counts:\n{body}");

    // A broken file on SIGHUP changes nothing.
    std::fs::write(&file.0, "[[set]]\nname = \"reads\"\n").unwrap();
    exporter.signal("HUP");
    std::thread::sleep(Duration::from_secs(3));
    let body = exporter.get("/metrics", None).body;
    assert!(sample(&body, opens).is_some() && sample(&body, read_series).is_some(), "{body}");

    exporter.signal("TERM");
    let (status, stderr) = exporter.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("in 2 sets on http://"), "{stderr}");
    assert!(stderr.contains("1 set unchanged, 1 attached, 1 detached"), "{stderr}");
    assert!(stderr.contains("missing field `patterns`; the running sets stay"), "{stderr}");
    assert_eq!(links_settle_to(&links_before), links_before, "links left behind");
}
