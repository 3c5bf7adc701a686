//! The contract's topology on a three-node JetStream cluster: streams and
//! buckets at three replicas survive losing the meta leader and then the
//! stream leader, with a client that reconnects by itself.

use std::collections::BTreeSet;
use std::time::Duration;

use gha_proto::topology::{self, Layout};
use gha_proto::v1::QueuedJob;
use gha_proto::{Contract, ContractError};
use gha_testkit::NatsCluster;
use gha_testkit::eventually::eventually;

fn job(job_id: i64) -> QueuedJob {
    QueuedJob {
        job_id,
        run_attempt: 1,
        repository: "org/repo".into(),
        labels: vec!["slurm".into()],
        ..QueuedJob::default()
    }
}

/// Publishes `job`, retrying while the cluster elects new leaders (the
/// dedup id makes a retry after a lost ack harmless).
async fn publish_through_elections(contract: &Contract, job_id: i64) {
    eventually("publish acknowledged", Duration::from_secs(60), || async {
        match contract.publish(&job(job_id)).await {
            Ok(_) => Some(()),
            Err(ContractError::Publish { .. }) => None,
            Err(err) => panic!("publish {job_id}: {err}"),
        }
    })
    .await
    .expect("published");
}

async fn stream_leader(contract: &Contract) -> Option<String> {
    let mut stream = contract
        .jetstream()
        .get_stream(topology::JOBS_STREAM)
        .await
        .ok()?;
    let info = stream.info().await.ok()?;
    info.cluster.as_ref()?.leader.clone()
}

#[tokio::test]
async fn replicated_streams_survive_losing_the_meta_leader_and_then_the_stream_leader() {
    let mut cluster = NatsCluster::start().expect("three nodes");
    let servers: Vec<async_nats::ServerAddr> = cluster
        .url_list()
        .iter()
        .map(|url| url.parse().expect("url"))
        .collect();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(servers.as_slice())
        .await
        .expect("connect");
    let contract = Contract::new(client);
    let layout = Layout::replicated(3).unwrap();
    eventually(
        "topology at 3 replicas",
        Duration::from_secs(60),
        || async { contract.ensure_topology_in(layout).await.ok() },
    )
    .await
    .expect("topology");
    let mut stream = contract
        .jetstream()
        .get_stream(topology::JOBS_STREAM)
        .await
        .expect("stream");
    assert_eq!(stream.info().await.expect("info").config.num_replicas, 3);

    for job_id in 1..=20 {
        publish_through_elections(&contract, job_id).await;
    }
    let meta = cluster.wait_for_meta_leader().expect("meta leader");
    cluster.kill(meta);
    for job_id in 21..=40 {
        publish_through_elections(&contract, job_id).await;
    }
    cluster.restart(meta).expect("old meta leader back");

    let leader = eventually("a stream leader", Duration::from_secs(60), || async {
        stream_leader(&contract).await
    })
    .await
    .expect("stream leader");
    let index = cluster.index_of(&leader).expect("a node of ours");
    cluster.kill(index);
    for job_id in 41..=60 {
        publish_through_elections(&contract, job_id).await;
    }

    // Every job is in the stream exactly once, read by a fresh consumer.
    let seen = eventually("all 60 jobs readable", Duration::from_secs(60), || async {
        let consumer = contract
            .consumer::<gha_proto::JobEvent>(
                topology::JOBS_STREAM,
                async_nats::jetstream::consumer::pull::Config {
                    deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
                    ..Default::default()
                },
                100,
            )
            .await
            .ok()?;
        let mut ids = Vec::new();
        let mut messages = consumer.messages().await.ok()?;
        while ids.len() < 60 {
            let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
            let Ok(Some(Ok(delivery))) = next else { break };
            if let gha_proto::JobEvent::Queued(job) = delivery.body {
                ids.push(job.job_id);
            }
        }
        (ids.len() == 60).then_some(ids)
    })
    .await
    .expect("read back");
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), 60, "duplicates or losses: {seen:?}");
    assert_eq!(
        unique.into_iter().collect::<Vec<_>>(),
        (1..=60).collect::<Vec<_>>()
    );
}
