//! A TCP proxy in front of a test's nats-server that finds the moment a
//! client reaches a phase of its start (the first bytes of a protocol
//! line such as `CONNECT` or a JetStream API subject), swallows that
//! request, cuts the connection and holds every new one until the test has
//! restarted the server and calls [`PhaseProxy::resume`]. So a restart
//! lands exactly in the phase under test, with no sleeps.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub struct PhaseProxy {
    /// `nats://127.0.0.1:<proxy port>`, for the client under test.
    pub url: String,
    fired: Arc<Notify>,
    has_fired: Arc<AtomicBool>,
    open: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl PhaseProxy {
    /// Proxies to `127.0.0.1:upstream`; fires once, on the first client
    /// bytes that contain `trigger`.
    pub async fn start(upstream: u16, trigger: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("nats://{}", listener.local_addr().unwrap());
        let fired = Arc::new(Notify::new());
        let has_fired = Arc::new(AtomicBool::new(false));
        let (open, open_rx) = watch::channel(true);
        let open = Arc::new(open);
        let shared = Shared {
            upstream,
            trigger: trigger.as_bytes(),
            fired: fired.clone(),
            has_fired: has_fired.clone(),
            open: open.clone(),
            open_rx,
        };
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move { shared.serve(client).await });
            }
        });
        Self {
            url,
            fired,
            has_fired,
            open,
            task,
        }
    }

    /// Waits until the trigger was seen (and the connection cut).
    pub async fn fired(&self) {
        loop {
            let notified = self.fired.notified();
            if self.has_fired.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Lets held and new connections through again.
    pub fn resume(&self) {
        let _ = self.open.send(true);
    }
}

impl Drop for PhaseProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    upstream: u16,
    trigger: &'static [u8],
    fired: Arc<Notify>,
    has_fired: Arc<AtomicBool>,
    open: Arc<watch::Sender<bool>>,
    open_rx: watch::Receiver<bool>,
}

impl Shared {
    async fn serve(self, mut client: TcpStream) {
        // Held while the server restarts.
        let mut open = self.open_rx.clone();
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        let Ok(mut server) = TcpStream::connect(("127.0.0.1", self.upstream)).await else {
            return;
        };
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let upstream = async {
            let mut buf = vec![0u8; 64 * 1024];
            // The tail of the previous read, so a trigger split across
            // reads is still found.
            let mut tail: Vec<u8> = Vec::new();
            loop {
                let n = client_read.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(());
                }
                let mut window = std::mem::take(&mut tail);
                window.extend_from_slice(&buf[..n]);
                if !self.has_fired.load(Ordering::SeqCst)
                    && window
                        .windows(self.trigger.len())
                        .any(|w| w == self.trigger)
                {
                    // Hold everyone from now until resume(); cut this one
                    // without passing the request on.
                    let _ = self.open.send(false);
                    self.has_fired.store(true, Ordering::SeqCst);
                    self.fired.notify_waiters();
                    return Ok(());
                }
                server_write.write_all(&buf[..n]).await?;
                let keep = self.trigger.len().saturating_sub(1).min(window.len());
                tail = window[window.len() - keep..].to_vec();
            }
        };
        let downstream = tokio::io::copy(&mut server_read, &mut client_write);
        tokio::select! {
            _ = upstream => {}
            _ = downstream => {}
        }
    }
}
