//! A small HTTP proxy that injects faults between a tool and a real S3
//! server: it answers some requests with 500, cuts some off half-way
//! through the request or the response, or plays dead altogether.
//!
//! Each connection carries one request (the proxy asks the server to close
//! after it), so a fault never leaks into the next request.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Answer 500 InternalError without asking the server.
    Error500,
    /// Read half the request body, then close the connection.
    CutRequest,
    /// Pass the request on, send back half the response body, then close.
    CutResponse,
    /// Pass the request on and read the whole answer, then close without
    /// sending any of it: the server did the work, the client never hears.
    LoseResponse,
    /// As LoseResponse, but only after `release`: while it is held
    /// (`held` counts them), the test acts on a tool whose request has
    /// been carried out and not yet answered.
    HoldResponse,
    /// Read the request, then hold it without passing it on (`held`
    /// counts it) until `release`, and close: the server never sees it.
    /// The test acts on a tool that waits on a request not carried out.
    HoldRequest,
}

/// Decides the fault for request number `n` (from 0) with request line `line`.
pub type Rule = Box<dyn FnMut(usize, &str) -> Fault + Send>;

struct State {
    upstream: String,
    rule: Mutex<Rule>,
    requests: AtomicUsize,
    faults: AtomicUsize,
    down: AtomicBool,
    held: AtomicUsize,
    released: (Mutex<bool>, Condvar),
}

pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<State>,
}

impl FaultProxy {
    /// A proxy in front of `upstream_port` on loopback.
    pub fn start(upstream_port: u16, rule: Rule) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            upstream: format!("127.0.0.1:{upstream_port}"),
            rule: Mutex::new(rule),
            requests: AtomicUsize::new(0),
            faults: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            released: (Mutex::new(false), Condvar::new()),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(&state, stream);
                });
            }
        });
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// Every request passes, unless the proxy is down.
    pub fn transparent(upstream_port: u16) -> FaultProxy {
        Self::start(upstream_port, Box::new(|_, _| Fault::Pass))
    }

    /// While down, every connection is closed at once, as by a dead server.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn faults(&self) -> usize {
        self.state.faults.load(Ordering::SeqCst)
    }

    /// How many answers are held (carried out upstream, not yet dropped).
    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Waits up to a minute until `n` answers are held.
    pub fn wait_held(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.held() < n {
            assert!(std::time::Instant::now() < deadline, "no request was held");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Lets every held answer go (lost, as LoseResponse), and every held
    /// request (never passed on).
    pub fn release(&self) {
        let (released, wake) = &self.state.released;
        *released.lock().unwrap() = true;
        wake.notify_all();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.release();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads up to the end of an HTTP head; returns the head and what followed it.
fn read_head(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).to_string(), rest));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads the rest of a body of `len` bytes of which `have` came with the head.
fn read_body(stream: &mut TcpStream, mut have: Vec<u8>, len: usize) -> std::io::Result<Vec<u8>> {
    let already = have.len();
    have.resize(len.max(already), 0);
    if len > already {
        stream.read_exact(&mut have[already..])?;
    }
    Ok(have)
}

fn serve(state: &State, mut client: TcpStream) -> std::io::Result<()> {
    if state.down.load(Ordering::SeqCst) {
        return client.shutdown(Shutdown::Both);
    }
    let (head, early) = read_head(&mut client)?;
    let line = head.lines().next().unwrap_or_default().to_string();
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    let fault = (state.rule.lock().unwrap())(n, &line);
    if fault != Fault::Pass {
        state.faults.fetch_add(1, Ordering::SeqCst);
    }
    let len = content_length(&head);
    match fault {
        Fault::Error500 => {
            read_body(&mut client, early, len)?;
            let body = "<?xml version=\"1.0\"?><Error><Code>InternalError</Code>\
                        <Message>injected by the test proxy</Message></Error>";
            write!(
                client,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            client.shutdown(Shutdown::Both)
        }
        Fault::CutRequest => {
            read_body(&mut client, early, len / 2)?;
            client.shutdown(Shutdown::Both)
        }
        Fault::HoldRequest => {
            read_body(&mut client, early, len)?;
            state.held.fetch_add(1, Ordering::SeqCst);
            let (released, wake) = &state.released;
            let mut go = released.lock().unwrap();
            while !*go {
                go = wake.wait(go).unwrap();
            }
            drop(go);
            client.shutdown(Shutdown::Both)
        }
        Fault::Pass | Fault::CutResponse | Fault::LoseResponse | Fault::HoldResponse => {
            let body = read_body(&mut client, early, len)?;
            let mut upstream = TcpStream::connect(&state.upstream)?;
            let mut forwarded: String = head
                .trim_end_matches("\r\n")
                .split("\r\n")
                .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                .map(|l| format!("{l}\r\n"))
                .collect();
            forwarded.push_str("Connection: close\r\n\r\n");
            upstream.write_all(forwarded.as_bytes())?;
            upstream.write_all(&body)?;
            if fault == Fault::Pass {
                std::io::copy(&mut upstream, &mut client)?;
            } else if matches!(fault, Fault::LoseResponse | Fault::HoldResponse) {
                std::io::copy(&mut upstream, &mut std::io::sink())?;
                if fault == Fault::HoldResponse {
                    state.held.fetch_add(1, Ordering::SeqCst);
                    let (released, wake) = &state.released;
                    let mut go = released.lock().unwrap();
                    while !*go {
                        go = wake.wait(go).unwrap();
                    }
                }
            } else {
                let (response_head, early) = read_head(&mut upstream)?;
                let half = content_length(&response_head) / 2;
                let partial = read_body(&mut upstream, early, half)?;
                client.write_all(response_head.as_bytes())?;
                client.write_all(&partial[..half.min(partial.len())])?;
            }
            client.shutdown(Shutdown::Both)
        }
    }
}
