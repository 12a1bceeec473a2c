//! The end-to-end test of `multiprobe export` against a real Prometheus (a step of
//! `cargo xtask test`, after the 6.12 kernel's tests).
//!
//! ```text
//!  host                                         guest (6.12 VM, QEMU user network)
//!  prometheus --web.listen-address=127.0.0.1:P   multiprobe export vfs_read 'binfmt_misc:*'
//!    scrapes 127.0.0.1:F  --(hostfwd)-->           --listen 10.0.2.15:9435
//!  phase server 127.0.0.1:T  <--(10.0.2.2:T)--   /init polls it: wait, load, stop
//! ```
//!
//! The host checks, through Prometheus's HTTP API, that `vfs_read`'s counter grows under the
//! guest's workload, then tells the guest to load binfmt_misc and checks that a later scrape
//! shows its functions while vfs_read's count goes on from where it was. Nothing listens
//! beyond loopback: the guest's exporter only on the address given (the guest prints its
//! listening sockets), QEMU's forward, Prometheus and the phase server on 127.0.0.1 (read
//! from /proc/net/tcp*). Prometheus and the VM are stopped on every way out.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::guest::{self, GUEST_ADDR, Guest};
use crate::kernels::{self, Kernel};
use crate::qemu::{Forward, Vm};
use crate::tools;

/// The kernel the step runs on.
pub const KERNEL: &str = "6.12";
/// The exporter's port in the guest.
const GUEST_PORT: u16 = 9435;
/// The module loaded halfway (one of the test modules, with a few dozen traceable functions).
const MODULE: &str = "binfmt_misc";
/// How long each wait for Prometheus or the guest may take (the VM is emulated).
const WAIT: Duration = Duration::from_secs(90);
const DONE: &str = "E2E-DONE";

/// What the guest is told when it asks the phase server.
const WAIT_PHASE: u8 = 0;
const LOAD_PHASE: u8 = 1;
const STOP_PHASE: u8 = 2;

/// Runs the step; returns the summary line's detail.
pub fn run(kernel: &Kernel, cli: &Path, work: &Path) -> Result<String> {
    tools::ensure(&[tools::PROMETHEUS])?;
    let dir = work.join("run").join(format!("export-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let outcome = run_in(kernel, cli, work, &dir);
    if outcome.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

fn run_in(kernel: &Kernel, cli: &Path, work: &Path, dir: &Path) -> Result<String> {
    let forward = Forward { host: free_port()?, guest: GUEST_PORT };
    let phases = PhaseServer::start()?;
    let net_modules = kernels::net_modules(kernel, work)?;
    let initramfs = dir.join("initramfs.cpio.gz");
    let guest = Guest {
        kernel,
        multiprobe: Some(cli),
        tests: &[],
        init: init_script(kernel, &net_modules, phases.port),
        scripts: Vec::new(),
        net_modules,
        host_files: Vec::new(),
    };
    guest.write_initramfs(&initramfs)?;
    let vm = Vm {
        vmlinuz: kernel.vmlinuz.clone(),
        initramfs,
        append: Vec::new(),
        timeout: Duration::from_secs(300),
        inactivity: Duration::from_secs(120),
        log: work.join("logs").join(format!("export-e2e-{}.log", kernel.label)),
        done_marker: DONE.to_string(),
        forwards: vec![forward],
    };
    let (tx, console) = mpsc::channel::<String>();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let booted = scope.spawn(|| {
            vm.run(&mut |line| {
                println!("[e2e] {line}");
                let _ = tx.send(line.to_string());
            })
        });
        let checked = check(&console, forward, &phases, dir);
        // Every way out: the guest stops its exporter and powers off when told, or the VM's
        // own timeout ends it.
        phases.set(STOP_PHASE);
        let exit = checked.and_then(|detail| {
            let line = wait_line(&console, "E2E-EXPORTER-EXIT ")?;
            ensure!(line.ends_with("EXIT 0"), "the exporter did not end cleanly on SIGTERM: {line}");
            Ok(detail)
        });
        let booted = booted.join().map_err(|_| anyhow::anyhow!("the VM thread panicked"))?;
        // A failed check says more than the VM's end it caused.
        let detail = exit.map_err(|e| anyhow::anyhow!("{e:#} (console log: {})", vm.log.display()))?;
        if let Some(failure) = booted?.failure {
            bail!("{failure}; console log: {}", vm.log.display());
        }
        Ok(format!("{detail}; {:.0}s", started.elapsed().as_secs_f64()))
    })
}

/// The checks, with Prometheus running for their duration.
fn check(console: &mpsc::Receiver<String>, forward: Forward, phases: &PhaseServer, dir: &Path) -> Result<String> {
    let net = wait_line(console, "MULTIPROBE-NET ")?;
    ensure!(net.ends_with("up"), "the guest has no network: {net}");
    // The guest's listening sockets, printed once the exporter serves.
    let listening: Vec<String> = wait_lines(console, "E2E-SERVING")?
        .iter()
        .filter_map(|l| l.split("E2E-LISTEN ").nth(1).map(str::to_string))
        .collect();
    let exporter: Vec<&String> = listening.iter().filter(|l| l.contains(&format!(":{GUEST_PORT} "))).collect();
    ensure!(!exporter.is_empty(), "nothing listens on port {GUEST_PORT} in the guest: {listening:?}");
    for line in &exporter {
        let local = line.split_whitespace().nth(3).unwrap_or("");
        ensure!(local == format!("{GUEST_ADDR}:{GUEST_PORT}"), "the exporter listens on {local}, not where asked");
    }

    let prometheus = Prometheus::start(dir, forward.host)?;
    let only_loopback = loopback_only(&[forward.host, prometheus.port, phases.port])?;
    eprintln!("e2e: Prometheus on 127.0.0.1:{}, scraping 127.0.0.1:{}; {only_loopback}", prometheus.port, forward.host);

    let calls = r#"multiprobe_function_calls_total{function="vfs_read",module="vmlinux",job="multiprobe"}"#;
    let first = wait_for(&prometheus, calls, |v| v.first().copied())?;
    let grown = wait_for(&prometheus, calls, |v| v.first().copied().filter(|n| *n > first))?;
    eprintln!("e2e: Prometheus saw vfs_read's count go from {first} to {grown}");
    let module_functions = format!(r#"multiprobe_attached_functions{{module="{MODULE}",probe="calls"}}"#);
    ensure!(
        prometheus.query(&module_functions)?.is_empty(),
        "{MODULE} shows up before it is loaded: {module_functions}"
    );

    phases.set(LOAD_PHASE);
    wait_line(console, "E2E-MODULE-LOADED")?;
    eprintln!("e2e: {MODULE} loaded in the guest");
    let attached = wait_for(&prometheus, &module_functions, |v| v.first().copied().filter(|n| *n > 0.0))?;
    let series = format!(r#"count(multiprobe_function_calls_total{{module="{MODULE}"}})"#);
    let counted = wait_for(&prometheus, &series, |v| v.first().copied())?;
    ensure!(counted == attached, "{attached} {MODULE} functions attached but {counted} counters scraped");
    let after = wait_for(&prometheus, calls, |v| v.first().copied())?;
    ensure!(after >= grown, "vfs_read's count went back from {grown} to {after}: a module load lost it");
    Ok(format!(
        "vfs_read {first} -> {grown} -> {after} in Prometheus; {attached} {MODULE} functions after its load; \
         {only_loopback}"
    ))
}

/// The guest's `/init`: network, a workload calling vfs_read, the exporter, its listening
/// sockets, then the phases the host gives. (Debian's static busybox wget crashes with
/// `-T`: `timeout` bounds it instead.)
fn init_script(kernel: &Kernel, net_modules: &[PathBuf], phase_port: u16) -> String {
    let mut script = guest::init_preamble(kernel);
    script.push_str(&guest::network_setup(net_modules));
    script.push_str(&format!(
        r#"while :; do cat /etc/passwd /proc/version >/dev/null; sleep 0.2; done &
LOAD=$!
/bin/multiprobe export vfs_read '{MODULE}:*' --listen {GUEST_ADDR}:{GUEST_PORT} </dev/null &
EXP=$!
# The host's next phase: load or stop (with an argument: stop only).
phase() {{
  while :; do
    s=$(timeout 10 wget -q -O - http://10.0.2.2:{phase_port}/ 2>/dev/null)
    case "$s" in
      stop) echo stop; return;;
      load) [ -z "$1" ] && {{ echo load; return; }};;
    esac
    sleep 0.5
  done
}}
i=0
while ! netstat -ltn | grep -q ':{GUEST_PORT} ' && [ $i -lt 600 ]; do sleep 0.5; i=$((i+1)); done
netstat -ltn | grep LISTEN | sed 's/^/E2E-LISTEN /'
echo E2E-SERVING
if [ "$(phase)" = load ]; then
  insmod /modules/{MODULE}.ko && echo E2E-MODULE-LOADED
  phase stop >/dev/null
fi
kill -TERM $EXP
wait $EXP
echo "E2E-EXPORTER-EXIT $?"
kill $LOAD
echo {DONE}
poweroff -f
"#
    ));
    script
}

/// Waits for a console line containing `marker`; returns it.
fn wait_line(console: &mpsc::Receiver<String>, marker: &str) -> Result<String> {
    Ok(wait_lines(console, marker)?.pop().unwrap_or_default())
}

/// Waits for a console line containing `marker`; returns the lines up to it, it last.
fn wait_lines(console: &mpsc::Receiver<String>, marker: &str) -> Result<Vec<String>> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match console.recv_timeout(left) {
            Ok(line) => {
                let last = line.contains(marker);
                seen.push(line);
                if last {
                    return Ok(seen);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!("the guest did not print {marker:?} within {WAIT:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the VM ended before printing {marker:?}"),
        }
    }
}

/// Queries until `accept` takes the result's values; returns what it made of them.
fn wait_for(prometheus: &Prometheus, query: &str, accept: impl Fn(&[f64]) -> Option<f64>) -> Result<f64> {
    let deadline = Instant::now() + WAIT;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last = prometheus.query(query)?;
        if let Some(value) = accept(&last) {
            return Ok(value);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("Prometheus never gave what was expected for {query} within {WAIT:?}; last: {last:?}")
}

/// Prometheus on 127.0.0.1, scraping the forwarded exporter every second; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, target: u16) -> Result<Prometheus> {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: multiprobe\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target}']\n"
            ),
        )?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new(tools::PROMETHEUS.command)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting prometheus")?;
        let mut prometheus = Prometheus { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_get(port, "/-/ready").is_ok_and(|(status, _)| status == 200) {
            if let Some(status) = prometheus.child.try_wait()? {
                bail!("prometheus exited ({status}); its log: {}", dir.join("prometheus.log").display());
            }
            ensure!(Instant::now() < deadline, "prometheus was not ready within 30s");
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(prometheus)
    }

    /// The values of an instant query's result (a vector), in Prometheus's order.
    fn query(&self, promql: &str) -> Result<Vec<f64>> {
        let (status, body) = http_get(self.port, &format!("/api/v1/query?query={}", url_encode(promql)))?;
        ensure!(status == 200, "Prometheus answered {status} to {promql}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).with_context(|| format!("Prometheus said {body}"))?;
        let result = json["data"]["result"].as_array().with_context(|| format!("no result for {promql}: {body}"))?;
        result
            .iter()
            .map(|r| r["value"][1].as_str().and_then(|v| v.parse().ok()).with_context(|| format!("no value in {r}")))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers the guest's `GET /` with the phase it is in; stops serving on drop.
struct PhaseServer {
    port: u16,
    phase: Arc<AtomicU8>,
}

impl PhaseServer {
    fn start() -> Result<PhaseServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let phase = Arc::new(AtomicU8::new(WAIT_PHASE));
        let serving = phase.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let now = serving.load(Ordering::SeqCst);
                if now == u8::MAX {
                    return;
                }
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let body = ["wait", "load", "stop"][usize::from(now.min(STOP_PHASE))];
                let _ = write!(stream, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            }
        });
        Ok(PhaseServer { port, phase })
    }

    fn set(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
    }
}

impl Drop for PhaseServer {
    fn drop(&mut self) {
        // Wakes the accepting thread, which sees the end mark and returns.
        self.phase.store(u8::MAX, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A port nobody listens on now, on 127.0.0.1.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A GET on 127.0.0.1:port: status and body.
fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").with_context(|| format!("not HTTP: {raw}"))?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).with_context(|| format!("no status: {head}"))?;
    Ok((status, body.to_string()))
}

/// Percent-encodes a query parameter.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Checks, in the host's /proc/net/tcp and tcp6, that every listening socket on `ports` is
/// bound to 127.0.0.1 and that each port has one; returns a line saying so.
fn loopback_only(ports: &[u16]) -> Result<String> {
    let mut seen = BTreeSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (local, port) in listening(&text) {
            if ports.contains(&port) {
                ensure!(local == "0100007F", "port {port} listens on {local} (hex, from {file}), not 127.0.0.1 only");
                seen.insert(port);
            }
        }
    }
    for port in ports {
        ensure!(seen.contains(port), "nothing listens on 127.0.0.1:{port}");
    }
    Ok(format!("{} host ports, all on 127.0.0.1 only", ports.len()))
}

/// `(local address in hex, port)` of the LISTEN sockets in a /proc/net/tcp* text.
fn listening(text: &str) -> Vec<(String, u16)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (addr, port) = fields.get(1)?.split_once(':')?;
            (*fields.get(3)? == "0A").then(|| Some((addr.to_string(), u16::from_str_radix(port, 16).ok()?)))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listening_sockets() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue\n   \
            0: 0100007F:24CB 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n   \
            1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n   \
            2: 0100007F:24CB 0100007F:9C40 01 00000000:00000000 00:00000000 00000000\n";
        assert_eq!(listening(text), [("0100007F".to_string(), 9419), ("00000000".to_string(), 2024)]);
    }

    #[test]
    fn encodes_promql() {
        assert_eq!(url_encode(r#"a{b="c"}"#), "a%7Bb%3D%22c%22%7D");
    }
}
