//! The per-test nats-server: free port, JetStream on, restartable, cleaned up.

use std::time::Duration;

use gha_testkit::{NatsServer, eventually};

#[tokio::test]
async fn two_servers_get_different_ports_and_serve_jetstream() {
    let a = NatsServer::start().unwrap();
    let b = NatsServer::start().unwrap();
    assert_ne!(a.port(), b.port());

    let client = async_nats::connect(a.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let info = js.query_account().await.expect("JetStream is enabled");
    assert_eq!(info.streams, 0);
}

#[tokio::test]
async fn restart_keeps_the_store_and_the_port() {
    let mut server = NatsServer::start().unwrap();
    let port = server.port();
    {
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "KEEP".into(),
            subjects: vec!["keep.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        js.publish("keep.one", "1".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    server.restart().unwrap();
    assert_eq!(server.port(), port);

    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let messages = eventually("the stream after restart", Duration::from_secs(10), || {
        let js = js.clone();
        async move {
            let mut stream = js.get_stream("KEEP").await.ok()?;
            Some(stream.info().await.ok()?.state.messages)
        }
    })
    .await
    .unwrap();
    assert_eq!(messages, 1);
}

#[test]
fn drop_kills_the_server_and_removes_its_store() {
    let server = NatsServer::start().unwrap();
    let store = server.store_dir();
    let port = server.port();
    assert!(store.exists());
    drop(server);
    assert!(!store.exists(), "store {} left behind", store.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening on {port}"
    );
}
