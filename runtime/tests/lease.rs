//! Leases against a real nats-server: one holder at a time, a released
//! lease handed over at once, a crashed holder's lease taken after it
//! lapses, and a holder that cannot renew stops acting by itself.

use std::time::{Duration, Instant};

use gha_proto::Contract;
use gha_proto::v1::Lease;
use gha_runtime::lease::{self, LeaseConfig, LeaseHandle, LeaseMetrics};
use gha_testkit::NatsServer;
use gha_testkit::eventually::eventually;
use tokio_util::sync::CancellationToken;

struct Replica {
    handle: LeaseHandle,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn replica(contract: &Contract, holder: &str, ttl: Duration) -> Replica {
    let kv = contract
        .bucket::<Lease>(gha_proto::topology::LEASES_BUCKET)
        .await
        .expect("bucket");
    let handle = LeaseHandle::new(LeaseMetrics::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(lease::keep(
        kv,
        LeaseConfig::new("test-lease", holder, ttl),
        handle.clone(),
        shutdown.clone(),
    ));
    Replica {
        handle,
        shutdown,
        task,
    }
}

async fn contract(nats: &NatsServer) -> Contract {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let contract = Contract::new(client);
    contract.ensure_topology().await.expect("topology");
    contract
}

async fn one_holder(replicas: &[&Replica]) -> usize {
    eventually(
        "one replica holds the lease",
        Duration::from_secs(20),
        || async {
            let holders: Vec<usize> = (0..replicas.len())
                .filter(|&index| replicas[index].handle.is_held())
                .collect();
            (holders.len() == 1).then(|| holders[0])
        },
    )
    .await
    .expect("a holder")
}

#[tokio::test]
async fn two_replicas_never_hold_at_once_and_a_released_lease_passes_on_at_once() {
    let nats = NatsServer::start().expect("nats");
    let contract = contract(&nats).await;
    let ttl = Duration::from_secs(10);
    let a = replica(&contract, "a", ttl).await;
    let b = replica(&contract, "b", ttl).await;
    let first = one_holder(&[&a, &b]).await;
    // Sampled for a while: never both.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert!(
            !(a.handle.is_held() && b.handle.is_held()),
            "both replicas hold the lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (holder, other) = if first == 0 { (a, b) } else { (b, a) };
    holder.shutdown.cancel();
    holder.task.await.expect("keeper ends");
    assert!(!holder.handle.is_held());
    // Well within one TTL: the release, not the lapse, handed it over.
    let handed = eventually(
        "the other replica takes the released lease",
        ttl / 2,
        || async { other.handle.is_held().then_some(()) },
    )
    .await;
    assert!(handed.is_ok(), "not handed over within half a TTL");
    assert_eq!(other.handle.term(), Some(2), "a new holder is a new term");
}

#[tokio::test]
async fn a_crashed_holders_lease_is_taken_once_it_lapses() {
    let nats = NatsServer::start().expect("nats");
    let contract = contract(&nats).await;
    let ttl = Duration::from_secs(2);
    let a = replica(&contract, "a", ttl).await;
    one_holder(&[&a]).await;
    // A crash: the keeper stops without releasing.
    a.task.abort();
    let crashed_at = Instant::now();
    let b = replica(&contract, "b", ttl).await;
    eventually(
        "b takes the lapsed lease",
        Duration::from_secs(20),
        || async { b.handle.is_held().then_some(()) },
    )
    .await
    .expect("taken over");
    let waited = crashed_at.elapsed();
    assert!(
        waited >= ttl,
        "taken after {waited:?}, before the crashed holder's lease lapsed"
    );
    b.shutdown.cancel();
}

#[tokio::test]
async fn a_holder_cut_off_from_nats_stops_acting_within_its_ttl() {
    let mut nats = NatsServer::start().expect("nats");
    let contract = contract(&nats).await;
    let ttl = Duration::from_secs(2);
    let a = replica(&contract, "a", ttl).await;
    one_holder(&[&a]).await;
    nats.kill();
    let cut_at = Instant::now();
    // Watched closely (not with a growing poll interval): the moment it
    // stops is what is asserted.
    while a.handle.is_held() {
        assert!(
            cut_at.elapsed() <= ttl,
            "still acting {:?} after the cut",
            cut_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // NATS back: it takes its own lease again.
    nats.restart().expect("restart");
    eventually(
        "held again after NATS returns",
        Duration::from_secs(30),
        || async { a.handle.is_held().then_some(()) },
    )
    .await
    .expect("held again");
    a.shutdown.cancel();
}
