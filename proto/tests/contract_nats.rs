//! The typed client against a real nats-server.

use std::time::Duration;

use async_nats::jetstream;
use gha_proto::v1::{
    JitConfigReply, JitConfigRequest, JobPhase, JobSource, JobState, JobStatus, JobStatusChange,
    QueuedJob,
};
use gha_proto::{Contract, ContractError, JobEvent, headers, subjects, topology};
use gha_testkit::NatsServer;

async fn contract(server: &NatsServer) -> Contract {
    let client = async_nats::connect(server.url()).await.unwrap();
    let contract = Contract::new(client);
    contract.ensure_topology().await.unwrap();
    contract
}

fn queued(job_id: i64, attempt: u32) -> QueuedJob {
    QueuedJob {
        job_id,
        run_id: 500,
        run_attempt: attempt,
        repository: "acme/widgets".into(),
        labels: vec!["self-hosted".into(), "slurm".into()],
        source: JobSource::Poll as i32,
        ..Default::default()
    }
}

async fn stream_messages(contract: &Contract, stream: &str) -> u64 {
    let mut stream = contract.jetstream().get_stream(stream).await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test]
async fn topology_is_created_once_and_ensuring_again_changes_nothing() {
    let server = NatsServer::start().unwrap();
    let contract = contract(&server).await;
    contract.publish(&queued(1, 1)).await.unwrap();
    contract.ensure_topology().await.unwrap();

    for config in topology::streams() {
        let mut stream = contract.jetstream().get_stream(&config.name).await.unwrap();
        assert_eq!(
            stream.info().await.unwrap().config.subjects,
            config.subjects
        );
    }
    contract.job_states().await.unwrap();
    assert_eq!(stream_messages(&contract, topology::JOBS_STREAM).await, 1);
}

#[tokio::test]
async fn a_bucket_made_by_an_older_release_gets_the_longer_history() {
    let server = NatsServer::start().unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    let old = jetstream::kv::Config {
        history: 5,
        ..topology::jobs_bucket()
    };
    jetstream::new(client.clone())
        .create_key_value(old)
        .await
        .unwrap();
    let contract = Contract::new(client);
    contract.ensure_topology().await.unwrap();
    let mut stream = contract
        .jetstream()
        .get_stream(format!("KV_{}", topology::JOBS_BUCKET))
        .await
        .unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.max_messages_per_subject, 16);
}

#[tokio::test]
async fn the_same_msg_id_published_twice_is_stored_once() {
    let server = NatsServer::start().unwrap();
    let contract = contract(&server).await;

    let first = contract.publish(&queued(42, 1)).await.unwrap();
    let again = contract.publish(&queued(42, 1)).await.unwrap();
    let next_attempt = contract.publish(&queued(42, 2)).await.unwrap();

    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.sequence, first.sequence);
    assert!(!next_attempt.duplicate);
    assert_eq!(stream_messages(&contract, topology::JOBS_STREAM).await, 2);
}

#[tokio::test]
async fn compare_and_set_race_between_two_writers_has_exactly_one_winner() {
    let server = NatsServer::start().unwrap();
    let contract = contract(&server).await;
    let states = contract.job_states().await.unwrap();
    let initial = JobState {
        job: Some(queued(7, 1)),
        phase: JobPhase::Queued as i32,
        attempt: 1,
        ..Default::default()
    };
    let revision = states.create("7", &initial).await.unwrap();

    // Two writers read the same revision and both try to move the job on.
    let other = contract.job_states().await.unwrap();
    let mut submitted = initial.clone();
    submitted.phase = JobPhase::Submitted as i32;
    submitted.slurm_job_id = 1001;
    let mut withdrawn = initial.clone();
    withdrawn.phase = JobPhase::Withdrawn as i32;
    let (a, b) = tokio::join!(
        states.update("7", &submitted, revision),
        other.update("7", &withdrawn, revision)
    );

    let winners = [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count();
    assert_eq!(winners, 1, "a: {a:?}, b: {b:?}");
    let loser = if a.is_ok() { b } else { a };
    assert!(
        matches!(loser, Err(ContractError::RevisionMismatch { expected, .. }) if expected == revision),
        "{loser:?}"
    );
    let stored = states.get("7").await.unwrap().unwrap();
    assert!(stored.revision > revision);
    assert!(stored.value == submitted || stored.value == withdrawn);
}

#[tokio::test]
async fn create_of_an_existing_key_is_refused() {
    let server = NatsServer::start().unwrap();
    let contract = contract(&server).await;
    let states = contract.job_states().await.unwrap();
    let state = JobState {
        job: Some(queued(8, 1)),
        ..Default::default()
    };
    states.create("8", &state).await.unwrap();
    let err = states.create("8", &state).await.unwrap_err();
    assert!(
        matches!(err, ContractError::AlreadyExists { .. }),
        "{err:?}"
    );
    assert_eq!(states.keys().await.unwrap(), vec!["8".to_string()]);
    assert!(states.get("9").await.unwrap().is_none());
}

#[tokio::test]
async fn the_scheduler_consumer_sees_jobs_and_status_in_order_with_readable_headers() {
    let server = NatsServer::start().unwrap();
    let contract = contract(&server).await;
    contract.publish(&queued(11, 1)).await.unwrap();
    contract
        .publish(&JobStatusChange {
            job_id: 11,
            run_attempt: 1,
            repository: "acme/widgets".into(),
            status: JobStatus::InProgress as i32,
            runner_name: "gha-node1-77".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let consumer = contract.scheduler_jobs(2).await.unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let first = messages.next().await.unwrap().unwrap();
    assert!(matches!(&first.body, JobEvent::Queued(job) if job.job_id == 11));
    assert_eq!(
        headers::get(first.headers(), headers::LABELS),
        Some("self-hosted,slurm")
    );
    assert_eq!(first.delivered(), 1);
    first.ack().await.unwrap();
    let second = messages.next().await.unwrap().unwrap();
    assert!(
        matches!(&second.body, JobEvent::Status(change) if change.status == JobStatus::InProgress as i32)
    );
    assert_eq!(
        headers::get(second.headers(), headers::STATUS),
        Some("in_progress")
    );
    second.ack().await.unwrap();

    let mut js_consumer: jetstream::consumer::PullConsumer = contract
        .jetstream()
        .get_stream(topology::JOBS_STREAM)
        .await
        .unwrap()
        .get_consumer(topology::SCHEDULER_JOBS_CONSUMER)
        .await
        .unwrap();
    let info = js_consumer.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
}

#[tokio::test]
async fn a_message_asked_to_retry_comes_back_with_a_higher_delivery_count() {
    let server = NatsServer::start().unwrap();
    let contract = contract(&server).await;
    contract.publish(&queued(12, 1)).await.unwrap();
    let consumer = contract.scheduler_jobs(1).await.unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let first = messages.next().await.unwrap().unwrap();
    first.retry_after(Duration::ZERO).await.unwrap();
    let again = messages.next().await.unwrap().unwrap();
    assert_eq!(again.body, first.body);
    assert_eq!(again.delivered(), 2);
    assert!(!again.is_last_delivery());
    again.ack().await.unwrap();
}

#[tokio::test]
async fn an_undecodable_payload_is_dead_lettered_and_skipped() {
    let server = NatsServer::start().unwrap();
    let contract = contract(&server).await;
    let mut garbage = async_nats::HeaderMap::new();
    garbage.insert(headers::NATS_MSG_ID, "garbage-1");
    contract
        .jetstream()
        .publish_with_headers(
            subjects::JOBS_QUEUED,
            garbage,
            vec![0xff, 0xff, 0xff].into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    contract.publish(&queued(13, 1)).await.unwrap();

    let consumer = contract.scheduler_jobs(4).await.unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let next = messages.next().await.unwrap().unwrap();
    assert!(matches!(&next.body, JobEvent::Queued(job) if job.job_id == 13));
    next.ack().await.unwrap();

    let dead = contract
        .jetstream()
        .get_stream(topology::DEAD_LETTER_STREAM)
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&subjects::dead_letter(topology::JOBS_STREAM))
        .await
        .expect("a dead letter");
    assert_eq!(dead.payload.as_ref(), &[0xff, 0xff, 0xff]);
    let reason = dead.headers.get(headers::DEAD_REASON).unwrap().as_str();
    assert!(reason.contains("decoding QueuedJob"), "{reason}");
    assert_eq!(
        dead.headers
            .get(headers::ORIGINAL_SUBJECT)
            .unwrap()
            .as_str(),
        subjects::JOBS_QUEUED
    );
}

#[tokio::test]
async fn jit_config_request_is_answered_by_the_serving_side() {
    let server = NatsServer::start().unwrap();
    let contract = contract(&server).await;
    let mut requests = contract.serve_jit_config().await.unwrap();
    let scheduler = contract.clone();
    let serving = tokio::spawn(async move {
        let request = requests.next().await.unwrap().unwrap();
        let reply = JitConfigReply {
            encoded_jit_config: format!("jit-for-{}", request.body.slurm_job_id),
            runner_name: "gha-local-77".into(),
            runner_id: 3,
            ..Default::default()
        };
        scheduler
            .reply(request.reply.unwrap(), &reply)
            .await
            .unwrap();
        request.body
    });

    let reply = contract
        .request_jit_config(
            &JitConfigRequest {
                slurm_job_id: 77,
                job_id: 11,
                claim: "claim".into(),
                hostname: "node1".into(),
            },
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(reply.encoded_jit_config, "jit-for-77");
    assert_eq!(serving.await.unwrap().claim, "claim");
}

#[tokio::test]
async fn a_request_nobody_answers_fails_with_the_subject_named() {
    let server = NatsServer::start().unwrap();
    let contract = contract(&server).await;
    let err = contract
        .request_jit_config(&JitConfigRequest::default(), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(err, ContractError::Request { .. }), "{err:?}");
    assert!(
        err.to_string().contains(subjects::SCHEDULER_JITCONFIG),
        "{err}"
    );
}
