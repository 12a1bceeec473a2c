//! The HTTP side of `multiprobe export`: `/metrics`, `/healthz` and a short index, served
//! one request at a time by `tiny_http` (scrapes come every few seconds, from one or two
//! Prometheus servers: a thread per request would buy nothing).

use std::io::{self, Cursor};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tiny_http::{Header, Method, Request, Response, Server};

use super::metrics::{self, Format, ScrapeTimes};
use super::sets::Sets;
use crate::error::CliError;

/// The listening socket, bound before anything is attached so that a busy port fails fast.
pub struct Listener {
    server: Server,
    /// Set before [`Listener::stop`] wakes the serving thread, so that it can tell the
    /// wake-up from an accept error.
    stopping: AtomicBool,
}

impl Listener {
    /// Listens on `addr` (port 0: any free port, see [`Listener::addr`]).
    pub fn bind(addr: SocketAddr) -> Result<Listener, CliError> {
        let server = Server::http(addr).map_err(|e| {
            let kind = e.downcast_ref::<io::Error>().map(io::Error::kind);
            let error = CliError::new(format!("cannot listen on {addr}: {e}"));
            match kind {
                Some(io::ErrorKind::AddrInUse) => error.hint(format!(
                    "another process listens on port {}: stop it, or choose another with --listen",
                    addr.port()
                )),
                Some(io::ErrorKind::PermissionDenied) => {
                    error.hint("ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a higher one")
                }
                Some(io::ErrorKind::AddrNotAvailable) => error.hint(
                    "the address is not one of this machine's: 127.0.0.1 (local scrapers), 0.0.0.0 or [::] (all)",
                ),
                _ => error,
            }
        })?;
        Ok(Listener { server, stopping: AtomicBool::new(false) })
    }

    /// The address actually listened on.
    pub fn addr(&self) -> String {
        match self.server.server_addr().to_ip() {
            Some(ip) => ip.to_string(),
            None => "?".into(),
        }
    }

    /// Answers requests until [`Listener::stop`]; returns how many scrapes it served.
    pub fn serve(&self, probes: &Sets) -> u64 {
        let mut scrapes = 0;
        let mut previous = None;
        loop {
            match self.server.recv() {
                Ok(request) => {
                    let is_scrape = path(&request) == "/metrics";
                    let response = respond(&request, probes, &mut previous);
                    scrapes += u64::from(is_scrape && response.status_code().0 == 200);
                    // A scraper that hung up gets nothing more: not the exporter's failure.
                    let _ = request.respond(response);
                }
                Err(_) if self.stopping.load(Ordering::SeqCst) => return scrapes,
                // Accept failures (out of file descriptors, say) must not end the service.
                Err(e) => {
                    crate::error::warning(format_args!("accepting a connection failed: {e}"));
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
    }

    /// Makes [`Listener::serve`] return once the request it is answering, if any, is done.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
    }
}

/// The request's path, without the query.
fn path(request: &Request) -> &str {
    request.url().split(['?', '#']).next().unwrap_or("")
}

fn respond(request: &Request, probes: &Sets, previous: &mut Option<ScrapeTimes>) -> Response<Cursor<Vec<u8>>> {
    if !matches!(request.method(), Method::Get | Method::Head) {
        return text(405, "only GET and HEAD are served\n").with_header(header("Allow", "GET, HEAD"));
    }
    match path(request) {
        "/metrics" => {
            let accept = request.headers().iter().find(|h| h.field.equiv("Accept")).map(|h| h.value.as_str());
            let format = Format::negotiate(accept);
            let started = Instant::now();
            let snapshot = probes.snapshot();
            let read = started.elapsed();
            let body = snapshot.and_then(|mut s| {
                s.previous = *previous;
                metrics::encode(s, format).map_err(|_| CliError::new("encoding the metrics failed"))
            });
            match body {
                Ok(body) => {
                    *previous = Some(ScrapeTimes {
                        read_seconds: read.as_secs_f64(),
                        encode_seconds: (started.elapsed() - read).as_secs_f64(),
                    });
                    Response::from_string(body).with_header(header("Content-Type", format.content_type()))
                }
                Err(e) => {
                    crate::error::warning(format_args!("a scrape failed: {}", e.message));
                    text(500, &format!("reading the probes' maps failed: {}\n", e.message))
                }
            }
        }
        "/healthz" => text(200, "ok\n"),
        "/" => text(200, "multiprobe export: metrics at /metrics, health at /healthz\n"),
        _ => text(404, "not found: metrics are at /metrics, health at /healthz\n"),
    }
}

fn text(status: u16, body: &str) -> Response<Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header names and values are ASCII")
}
