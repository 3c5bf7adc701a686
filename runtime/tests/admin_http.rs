//! The admin endpoint over real HTTP.

use std::sync::Arc;

use gha_runtime::admin::{Health, serve};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[tokio::test]
async fn metrics_and_health_are_served_until_shutdown() {
    let mut registry = Registry::with_prefix("gha_test");
    let published = Counter::<u64>::default();
    registry.register("published", "Messages published", published.clone());
    published.inc_by(3);
    let health = Health::default();
    health.ok("nats");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        Arc::new(registry),
        health.clone(),
        shutdown.clone(),
    ));

    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("gha_test_published_total 3"), "{body}");

    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".into()));
    health.failing("nats", "disconnected");
    let (status, body) = get(addr, "/healthz").await;
    assert_eq!(status, 503);
    assert_eq!(body, "nats: disconnected\n");

    shutdown.cancel();
    server.await.unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
