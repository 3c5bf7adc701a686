//! Network faults in front of the real registry: an HTTP/1.1 proxy on a
//! free loopback port that answers some requests with 503, cuts a response
//! off mid-body, drops the `Range` header or redirects blobs elsewhere,
//! and otherwise relays the registry's own answers byte for byte.
//!
//! The registry itself never misbehaves, so the client's retries and
//! resumed downloads are tested through this; every byte still comes from
//! `docker-registry`. One request per connection (`Connection: close`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// What to do to the next requests; change it any time.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Answer this many of the next requests with `503` (then decrement).
    pub unavailable: u32,
    /// Cut the response of the next request whose path contains `.0`
    /// after `.1` body bytes (then clear).
    pub cut_body: Option<(String, usize)>,
    /// Remove `Range` from forwarded requests: a registry without ranges.
    pub ignore_range: bool,
    /// Answer blob requests with `307` to the same path (plus a signature
    /// query) on this `host:port`, as registries that keep blobs in S3 do.
    pub redirect_blobs_to: Option<String>,
}

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub path: String,
    /// The `Range` header the client sent, if any.
    pub range: Option<String>,
    /// Whether the client sent an `Authorization` header.
    pub authorization: bool,
}

#[derive(Default)]
struct Shared {
    faults: Faults,
    seen: Vec<SeenRequest>,
}

/// The proxy, stopped on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts relaying to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let upstream = upstream.to_owned();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let shared = Arc::clone(&shared);
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("fault-proxy".into())
                .spawn(move || {
                    for client in listener.incoming() {
                        if stopping.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(client) = client else { continue };
                        let shared = Arc::clone(&shared);
                        let upstream = upstream.clone();
                        std::thread::spawn(move || {
                            let _ = relay(client, &upstream, &shared);
                        });
                    }
                })?
        };
        Ok(Self {
            addr,
            shared,
            stopping,
            acceptor: Some(acceptor),
        })
    }

    /// `127.0.0.1:<port>`: use it as the registry's host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Sets the faults for the next requests.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Every request relayed or refused so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.lock().seen.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Handles one connection: one request, one (possibly damaged) response.
fn relay(client: TcpStream, upstream: &str, shared: &Mutex<Shared>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let path = head
        .first()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_owned();
    let range = header_value(&head, "range");
    let (unavailable, cut, ignore_range, redirect) = {
        let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.seen.push(SeenRequest {
            path: path.clone(),
            range: range.clone(),
            authorization: header_value(&head, "authorization").is_some(),
        });
        let faults = &mut shared.faults;
        let unavailable = faults.unavailable > 0;
        faults.unavailable = faults.unavailable.saturating_sub(1);
        let cut = match &faults.cut_body {
            Some((fragment, bytes)) if !unavailable && path.contains(fragment.as_str()) => {
                let bytes = *bytes;
                faults.cut_body = None;
                Some(bytes)
            }
            _ => None,
        };
        let redirect = faults
            .redirect_blobs_to
            .clone()
            .filter(|_| path.contains("/blobs/"));
        (unavailable, cut, faults.ignore_range, redirect)
    };
    let mut client = client;
    if unavailable {
        client.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return client.shutdown(Shutdown::Both);
    }
    if let Some(host) = redirect {
        let answer = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{host}{path}?X-Signature=test\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        client.write_all(answer.as_bytes())?;
        return client.shutdown(Shutdown::Both);
    }
    let mut upstream = TcpStream::connect(upstream)?;
    let mut request = String::new();
    for line in &head {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name == "connection" || (ignore_range && name == "range") {
            continue;
        }
        request.push_str(line);
    }
    request.push_str("Connection: close\r\n\r\n");
    upstream.write_all(request.as_bytes())?;
    let mut response = BufReader::new(upstream);
    match cut {
        None => {
            std::io::copy(&mut response, &mut client)?;
        }
        Some(body_bytes) => {
            loop {
                let mut line = String::new();
                if response.read_line(&mut line)? == 0 {
                    break;
                }
                client.write_all(line.as_bytes())?;
                if line == "\r\n" {
                    break;
                }
            }
            std::io::copy(&mut (&mut response).take(body_bytes as u64), &mut client)?;
        }
    }
    client.flush()?;
    client.shutdown(Shutdown::Both)
}

fn header_value(head: &[String], name: &str) -> Option<String> {
    head.iter().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}
