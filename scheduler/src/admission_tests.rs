//! Admission under caps: fairness, caps per pool/repo/org, idempotence.

use super::*;

fn job(job_id: i64, repository: &str, pool: &str, queued_at: i64) -> Candidate {
    Candidate {
        job_id,
        repository: repository.to_string(),
        owner: repository.split('/').next().unwrap().to_string(),
        pool: pool.to_string(),
        queued_at_unix_ms: queued_at,
    }
}

fn drain(admission: &mut Admission) -> Vec<i64> {
    std::iter::from_fn(|| admission.next().map(|c| c.job_id)).collect()
}

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn a_busy_repository_does_not_starve_another_under_a_global_cap() {
    let mut admission = Admission::new(Limits {
        global: Some(4),
        ..limits()
    });
    // 70 jobs from one workflow first, then 3 from another repository.
    for n in 0..70 {
        admission.wait(job(n, "acme/big", "cpu", n));
    }
    for n in 0..3 {
        admission.wait(job(100 + n, "acme/small", "cpu", 1000 + n));
    }
    let first = drain(&mut admission);
    assert_eq!(first, [0, 100, 1, 101], "alternating, oldest first");
    // Capacity frees one at a time: the repositories keep alternating.
    let mut started = Vec::new();
    for done in first {
        admission.finish(done);
        started.extend(drain(&mut admission));
    }
    assert_eq!(started, [2, 102, 3, 4]);
    assert_eq!(admission.active_count(), 4);
    assert_eq!(admission.waiting_count(), 73 - 8);
}

#[test]
fn within_a_repository_the_oldest_goes_first_whatever_the_arrival_order() {
    let mut admission = Admission::new(limits());
    admission.wait(job(3, "a/x", "cpu", 30));
    admission.wait(job(1, "a/x", "cpu", 10));
    admission.wait(job(2, "a/x", "cpu", 20));
    assert_eq!(drain(&mut admission), [1, 2, 3]);
}

#[test]
fn a_repository_at_its_cap_does_not_block_other_repositories() {
    let mut admission = Admission::new(Limits {
        per_repo: Some(2),
        repo_overrides: [("acme/vip".to_string(), 3)].into(),
        ..limits()
    });
    for n in 0..5 {
        admission.wait(job(n, "acme/busy", "cpu", n));
        admission.wait(job(10 + n, "Acme/VIP", "cpu", n));
        admission.wait(job(20 + n, "other/tool", "cpu", 100 + n));
    }
    let started = drain(&mut admission);
    assert_eq!(started, [0, 10, 20, 1, 11, 21, 12]);
    // Finishing one of acme/busy's jobs lets exactly its next one in.
    admission.finish(0);
    assert_eq!(drain(&mut admission), [2]);
}

#[test]
fn org_caps_apply_across_the_org_repositories() {
    let mut admission = Admission::new(Limits {
        per_org: Some(10),
        org_overrides: [("acme".to_string(), 3)].into(),
        ..limits()
    });
    for n in 0..3 {
        admission.wait(job(n, "acme/one", "cpu", n));
        admission.wait(job(10 + n, "acme/two", "cpu", n));
        admission.wait(job(20 + n, "solo/x", "cpu", n));
    }
    let started = drain(&mut admission);
    assert_eq!(started, [0, 10, 20, 1, 21, 22]);
    // Round-robin resumes after solo/x: acme/one is next in turn.
    admission.finish(10);
    assert_eq!(drain(&mut admission), [2]);
    admission.finish(0);
    assert_eq!(drain(&mut admission), [11]);
}

#[test]
fn a_full_pool_holds_back_only_its_own_jobs() {
    let mut admission = Admission::new(Limits {
        per_pool: [("gpu".to_string(), 1)].into(),
        ..limits()
    });
    admission.wait(job(1, "a/x", "gpu", 1));
    admission.wait(job(2, "a/x", "gpu", 2));
    admission.wait(job(3, "a/x", "cpu", 3));
    assert_eq!(drain(&mut admission), [1, 3]);
    assert_eq!(admission.active_in_pool("gpu"), 1);
    assert!(admission.is_waiting(2));
    admission.finish(1);
    assert_eq!(drain(&mut admission), [2]);
}

#[test]
fn adopted_jobs_count_against_the_caps() {
    let mut admission = Admission::new(Limits {
        global: Some(2),
        ..limits()
    });
    admission.wait(job(1, "a/x", "cpu", 1));
    // After a restart two jobs are found running in Slurm, one of them
    // also still in the waiting set.
    assert!(admission.start(job(1, "a/x", "cpu", 1)));
    assert!(admission.start(job(2, "b/y", "cpu", 2)));
    assert!(!admission.start(job(2, "b/y", "cpu", 2)));
    assert!(!admission.is_waiting(1));
    admission.wait(job(3, "c/z", "cpu", 3));
    assert_eq!(admission.next(), None);
    admission.finish(2);
    assert_eq!(drain(&mut admission), [3]);
}

#[test]
fn wait_and_finish_are_idempotent() {
    let mut admission = Admission::new(Limits {
        global: Some(1),
        ..limits()
    });
    assert!(admission.wait(job(1, "a/x", "cpu", 1)));
    assert!(!admission.wait(job(1, "a/x", "cpu", 1)));
    assert_eq!(admission.waiting_count(), 1);
    assert_eq!(drain(&mut admission), [1]);
    // A redelivery of an admitted job does not queue it again.
    assert!(!admission.wait(job(1, "a/x", "cpu", 1)));
    assert_eq!(admission.waiting_count(), 0);
    assert!(admission.finish(1));
    assert!(!admission.finish(1));
    assert_eq!(admission.active_count(), 0);
    assert_eq!(admission.active_in_pool("cpu"), 0);
    // Finishing a waiting job withdraws it.
    admission.wait(job(2, "a/x", "cpu", 2));
    assert!(admission.finish(2));
    assert_eq!(admission.next(), None);
}

#[test]
fn lowered_caps_delay_new_jobs_and_keep_active_ones() {
    let mut admission = Admission::new(limits());
    for n in 0..3 {
        admission.wait(job(n, "a/x", "cpu", n));
    }
    assert_eq!(drain(&mut admission), [0, 1, 2]);
    admission.set_limits(Limits {
        global: Some(2),
        ..limits()
    });
    admission.wait(job(3, "a/x", "cpu", 3));
    admission.finish(0);
    assert_eq!(admission.next(), None, "still 2 active under a cap of 2");
    admission.finish(1);
    assert_eq!(drain(&mut admission), [3]);
    assert_eq!(admission.active_count(), 2);
}

#[test]
fn a_failed_submission_goes_back_in_its_place() {
    let mut admission = Admission::new(Limits {
        global: Some(1),
        ..limits()
    });
    admission.wait(job(1, "a/x", "cpu", 10));
    admission.wait(job(2, "a/x", "cpu", 20));
    let first = admission.next().unwrap();
    assert_eq!(first.job_id, 1);
    // sbatch failed: back to waiting, still ahead of the younger job.
    admission.finish(first.job_id);
    admission.wait(first);
    assert_eq!(admission.next().map(|c| c.job_id), Some(1));
}

#[test]
fn nothing_waits_nothing_starts() {
    let mut admission = Admission::new(limits());
    assert_eq!(admission.next(), None);
    assert!(!admission.finish(42));
}
