//! Fleet store conformance: hosts, enrollment, certificates, the CA, agent
//! commands, workloads and events — the same bodies on SQLite and
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use hood_domain::host_metrics::{HostCounters, HostSample};
use hood_domain::identity::Organization;
use hood_domain::lifecycle::{CommandState, HostState};
use hood_domain::retention::RetentionCutoffs;
use hood_domain::{CommandId, HostId, OrgId, Timestamp};
use hood_store::fleet::{
    AgentCommand, AgentEventRecord, CaRecord, CommandFinish, EnrollOutcome, EnrollmentToken, Host,
    HostCertificate, HostFilter, WorkloadReport,
};
use hood_store::{Store, StoreError};
use std::sync::Arc;
use support::Harness;
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn host(org: Option<OrgId>) -> Host {
    support::host(org, T0)
}

/// A host already waiting for its agent.
async fn enrolling_host(store: &dyn Store) -> Host {
    let h = host(None);
    store.create_host(&h).await.unwrap();
    store
        .transition_host(h.id, HostState::Provisioning, T0)
        .await
        .unwrap();
    store
        .transition_host(h.id, HostState::Enrolling, T0)
        .await
        .unwrap();
    store.get_host(h.id).await.unwrap().unwrap()
}

fn token(host: HostId, hash: &str, expires_at: Timestamp) -> EnrollmentToken {
    EnrollmentToken {
        token_hash: hash.into(),
        host_id: host,
        created_at: T0,
        expires_at,
        used_at: None,
        key_sha256: None,
    }
}

fn cert(host: HostId, serial: &str) -> HostCertificate {
    HostCertificate {
        serial: serial.into(),
        host_id: host,
        not_before: T0,
        not_after: T0.plus_secs(3600),
        issued_at: T0,
        revoked_at: None,
    }
}

fn command(host: HostId, key: Option<&str>, expires_at: Timestamp) -> AgentCommand {
    AgentCommand::new(
        CommandId::from_uuid(Uuid::now_v7()),
        host,
        "ping",
        serde_json::json!({"n": 1}),
        key.map(str::to_owned),
        T0,
        expires_at,
    )
}

async fn subjects(store: &dyn Store) -> Vec<String> {
    store
        .outbox_pending(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.subject)
        .collect()
}

// -- hosts --

async fn hosts_follow_the_machine(db: &Harness) {
    let store = db.migrated().await;
    let org = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: T0,
    };
    store.create_org(&org).await.unwrap();
    let mut h = host(Some(org.id));
    h.provider_ref = serde_json::json!({"sandbox": "/tmp/x"});
    store.create_host(&h).await.unwrap();
    assert_eq!(store.get_host(h.id).await.unwrap().unwrap(), h);
    assert!(matches!(
        store.create_host(&h).await,
        Err(StoreError::Conflict(f)) if f == "id"
    ));

    // A record cannot be born in a non-initial state.
    let mut born_ready = host(None);
    born_ready.state = HostState::Ready;
    assert!(matches!(
        store.create_host(&born_ready).await,
        Err(StoreError::InvalidTransition(_))
    ));

    // Illegal moves are refused and change nothing.
    assert!(matches!(
        store.transition_host(h.id, HostState::Ready, T0).await,
        Err(StoreError::InvalidTransition(_))
    ));
    assert_eq!(
        store.get_host(h.id).await.unwrap().unwrap().state,
        HostState::Requested
    );
    let t1 = T0.plus_secs(1);
    assert_eq!(
        store
            .transition_host(h.id, HostState::Provisioning, t1)
            .await
            .unwrap(),
        HostState::Requested
    );
    // Same state: a no-op, not an error.
    assert_eq!(
        store
            .transition_host(h.id, HostState::Provisioning, t1)
            .await
            .unwrap(),
        HostState::Provisioning
    );
    // Compare-and-set: only from the named state.
    assert!(!store
        .transition_host_from(h.id, HostState::Requested, HostState::Provisioning, t1)
        .await
        .unwrap());
    assert!(store
        .transition_host_from(h.id, HostState::Provisioning, HostState::Enrolling, t1)
        .await
        .unwrap());
    assert!(matches!(
        store
            .transition_host_from(h.id, HostState::Deleted, HostState::Ready, t1)
            .await,
        Err(StoreError::InvalidTransition(_))
    ));
    assert!(matches!(
        store
            .transition_host(HostId::from_uuid(Uuid::now_v7()), HostState::Ready, t1)
            .await,
        Err(StoreError::NotFound("host"))
    ));

    store
        .set_host_provider_info(h.id, Some("10.0.0.7"), &serde_json::json!({"pid": 7}), t1)
        .await
        .unwrap();
    let got = store.get_host(h.id).await.unwrap().unwrap();
    assert_eq!(got.state, HostState::Enrolling);
    assert_eq!(got.address.as_deref(), Some("10.0.0.7"));
    assert_eq!(got.provider_ref, serde_json::json!({"pid": 7}));
    assert_eq!(got.updated_at, t1);

    let other = host(None);
    store.create_host(&other).await.unwrap();
    let mine = store
        .list_hosts(&HostFilter {
            org_id: Some(org.id),
            ..HostFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.iter().map(|h| h.id).collect::<Vec<_>>(), vec![h.id]);
    let enrolling = store
        .list_hosts(&HostFilter {
            state: Some(HostState::Enrolling),
            provider: Some("local".into()),
            ..HostFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(enrolling.len(), 1);
    assert_eq!(
        store
            .list_hosts(&HostFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );

    let subjects = subjects(store).await;
    assert_eq!(
        subjects
            .iter()
            .filter(|s| *s == "fleet.host.state_changed")
            .count(),
        2,
        "{subjects:?}"
    );
    assert_eq!(
        subjects
            .iter()
            .filter(|s| *s == "fleet.host.created")
            .count(),
        2
    );
}

async fn sessions_heartbeats_workloads_and_events(db: &Harness) {
    let store = db.migrated().await;
    let h = enrolling_host(store).await;
    let t1 = T0.plus_secs(10);
    store
        .host_session_started(h.id, "s1", "1.2.3", t1)
        .await
        .unwrap();
    let got = store.get_host(h.id).await.unwrap().unwrap();
    assert_eq!(got.connected_at, Some(t1));
    assert_eq!(got.last_seen_at, Some(t1));
    assert_eq!(got.agent_version.as_deref(), Some("1.2.3"));

    let w = |id: &str, state: &str| WorkloadReport {
        workload_id: id.into(),
        state: state.into(),
        pid: Some(42),
        restarts: 1,
        observation: serde_json::json!({"head": 7}),
        updated_at: t1,
    };
    store
        .record_heartbeat(h.id, &[w("a", "running"), w("b", "starting")], t1)
        .await
        .unwrap();
    let t2 = T0.plus_secs(25);
    store
        .record_heartbeat(h.id, &[w("b", "running")], t2)
        .await
        .unwrap();
    let workloads = store.list_host_workloads(h.id).await.unwrap();
    assert_eq!(workloads, vec![w("b", "running")]);
    assert_eq!(
        store.get_host(h.id).await.unwrap().unwrap().last_seen_at,
        Some(t2)
    );

    // A newer session elsewhere is not closed by the old one ending.
    store
        .host_session_started(h.id, "s2", "1.2.3", t2)
        .await
        .unwrap();
    store.host_session_ended(h.id, "s1", t2).await.unwrap();
    assert!(store
        .get_host(h.id)
        .await
        .unwrap()
        .unwrap()
        .connected_at
        .is_some());
    store.host_session_ended(h.id, "s2", t2).await.unwrap();
    assert!(store
        .get_host(h.id)
        .await
        .unwrap()
        .unwrap()
        .connected_at
        .is_none());

    let event = |kind: &str| AgentEventRecord {
        seq: 0,
        host_id: h.id,
        kind: kind.into(),
        workload_id: Some("b".into()),
        message: "m".into(),
        payload: serde_json::json!({"code": 1}),
        at: t2,
    };
    let s1 = store
        .insert_agent_event(&event("workload_started"))
        .await
        .unwrap();
    let s2 = store
        .insert_agent_event(&event("workload_exited"))
        .await
        .unwrap();
    assert!(s2 > s1);
    let events = store.list_agent_events(h.id, 0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["workload_started", "workload_exited"]
    );
    assert_eq!(events[1].payload, serde_json::json!({"code": 1}));
    assert_eq!(
        store.list_agent_events(h.id, s1, 10).await.unwrap().len(),
        1
    );
    assert!(subjects(store)
        .await
        .contains(&"fleet.agent.event".to_owned()));
    assert!(matches!(
        store
            .record_heartbeat(HostId::from_uuid(Uuid::now_v7()), &[], t2)
            .await,
        Err(StoreError::NotFound("host"))
    ));
}

// -- enrollment --

async fn enrollment_token_is_single_use_under_concurrency(db: &Harness) {
    let store = db.migrated().await;
    let h = enrolling_host(store).await;
    store
        .insert_enrollment_token(&token(h.id, "hash-1", T0.plus_secs(600)))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store: Arc<dyn Store> = db.reopen().await;
        tasks.push(tokio::spawn(async move {
            store
                .consume_enrollment_token("hash-1", T0.plus_secs(1))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if let Some(host) = t.await.unwrap() {
            assert_eq!(host, h.id);
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let stored = store
        .find_enrollment_token("hash-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.used_at, Some(T0.plus_secs(1)));

    // Expired and unknown tokens buy nothing.
    store
        .insert_enrollment_token(&token(h.id, "hash-2", T0.plus_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        store
            .consume_enrollment_token("hash-2", T0.plus_secs(5))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.consume_enrollment_token("nope", T0).await.unwrap(),
        None
    );
    assert!(matches!(
        store
            .insert_enrollment_token(&token(HostId::from_uuid(Uuid::now_v7()), "h3", T0))
            .await,
        Err(StoreError::NotFound("host"))
    ));
}

async fn enrollment_is_atomic(db: &Harness) {
    let store = db.migrated().await;
    let h = enrolling_host(store).await;
    let now = T0.plus_secs(2);
    store
        .insert_enrollment_token(&token(h.id, "tok", T0.plus_secs(600)))
        .await
        .unwrap();

    // Two enrollments race with one token: one wins.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let store: Arc<dyn Store> = db.reopen().await;
        let c = cert(h.id, &format!("serial-{i}"));
        tasks.push(tokio::spawn(async move {
            store
                .complete_enrollment("tok", "k1", &c, "box", "0.1.0", now)
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == EnrollOutcome::Enrolled)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, EnrollOutcome::Enrolled | EnrollOutcome::TokenRejected)));
    let got = store.get_host(h.id).await.unwrap().unwrap();
    assert_eq!(got.state, HostState::Ready);
    assert_eq!(got.hostname.as_deref(), Some("box"));
    assert_eq!(got.agent_version.as_deref(), Some("0.1.0"));
    let mut recorded = 0;
    for i in 0..4 {
        if store
            .get_host_certificate(&format!("serial-{i}"))
            .await
            .unwrap()
            .is_some()
        {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1, "only the winner's certificate is recorded");

    // A host that is not waiting for its agent: refused, token kept.
    let ready = h;
    store
        .insert_enrollment_token(&token(ready.id, "tok2", T0.plus_secs(600)))
        .await
        .unwrap();
    assert_eq!(
        store
            .complete_enrollment("tok2", "k1", &cert(ready.id, "s-x"), "box", "0.1.0", now)
            .await
            .unwrap(),
        EnrollOutcome::HostNotEnrolling(HostState::Ready)
    );
    assert!(store
        .find_enrollment_token("tok2")
        .await
        .unwrap()
        .unwrap()
        .used_at
        .is_none());
    assert!(store.get_host_certificate("s-x").await.unwrap().is_none());

    // A token of another host cannot enroll this one.
    let other = enrolling_host(store).await;
    assert_eq!(
        store
            .complete_enrollment("tok2", "k1", &cert(other.id, "s-y"), "box", "0.1.0", now)
            .await
            .unwrap(),
        EnrollOutcome::TokenRejected
    );
}

// -- certificates and the CA --

async fn certificates_and_revocation(db: &Harness) {
    let store = db.migrated().await;
    let h = enrolling_host(store).await;
    store
        .insert_host_certificate(&cert(h.id, "aa"))
        .await
        .unwrap();
    store
        .insert_host_certificate(&cert(h.id, "bb"))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_host_certificate(&cert(h.id, "aa")).await,
        Err(StoreError::Conflict(f)) if f == "serial"
    ));
    assert!(matches!(
        store
            .insert_host_certificate(&cert(HostId::from_uuid(Uuid::now_v7()), "cc"))
            .await,
        Err(StoreError::NotFound("host"))
    ));
    assert_eq!(
        store.get_host_certificate("aa").await.unwrap().unwrap(),
        cert(h.id, "aa")
    );
    let t1 = T0.plus_secs(5);
    assert!(store.revoke_host_certificate("aa", t1).await.unwrap());
    assert!(store
        .revoke_host_certificate("aa", T0.plus_secs(9))
        .await
        .unwrap());
    assert_eq!(
        store
            .get_host_certificate("aa")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(t1),
        "the first revocation time is kept"
    );
    assert!(!store.revoke_host_certificate("zz", t1).await.unwrap());
    assert_eq!(store.revoke_host_certificates(h.id, t1).await.unwrap(), 1);
    assert!(store
        .get_host_certificate("bb")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
}

async fn one_ca_when_replicas_race(db: &Harness) {
    let store = db.migrated().await;
    assert!(store.get_ca().await.unwrap().is_none());
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store: Arc<dyn Store> = db.reopen().await;
        tasks.push(tokio::spawn(async move {
            store
                .insert_ca_if_absent(&CaRecord {
                    cert_pem: format!("cert-{i}"),
                    sealed_key: vec![i; 40],
                    created_at: T0,
                })
                .await
                .unwrap()
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    let stored = store.get_ca().await.unwrap().unwrap();
    assert!(
        seen.iter().all(|ca| *ca == stored),
        "every caller sees the winner"
    );
}

// -- commands --

async fn command_idempotency_key(db: &Harness) {
    let store = db.migrated().await;
    let h = enrolling_host(store).await;
    let first = command(h.id, Some("start:node-1"), T0.plus_secs(60));
    let (a, created) = store.enqueue_agent_command(&first).await.unwrap();
    assert!(created);
    assert_eq!(a, first);
    let again = command(h.id, Some("start:node-1"), T0.plus_secs(60));
    let (b, created) = store.enqueue_agent_command(&again).await.unwrap();
    assert!(!created);
    assert_eq!(b.id, first.id, "the same logical command is one row");

    // Concurrent enqueues of one key: still one row.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store: Arc<dyn Store> = db.reopen().await;
        let c = command(h.id, Some("restart:node-2"), T0.plus_secs(60));
        tasks.push(tokio::spawn(async move {
            store.enqueue_agent_command(&c).await.unwrap().0.id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);

    // Another host may use the same key; no key means the id is the key.
    let other = enrolling_host(store).await;
    let (_, created) = store
        .enqueue_agent_command(&command(other.id, Some("start:node-1"), T0.plus_secs(60)))
        .await
        .unwrap();
    assert!(created);
    let (_, created) = store
        .enqueue_agent_command(&command(h.id, None, T0.plus_secs(60)))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(store.list_agent_commands(h.id, 10).await.unwrap().len(), 3);

    assert!(matches!(
        store
            .enqueue_agent_command(&command(HostId::from_uuid(Uuid::now_v7()), None, T0))
            .await,
        Err(StoreError::NotFound("host"))
    ));
    let mut acked = command(h.id, None, T0);
    acked.state = CommandState::Acked;
    assert!(matches!(
        store.enqueue_agent_command(&acked).await,
        Err(StoreError::InvalidTransition(_))
    ));
}

async fn command_lifecycle_and_illegal_transitions(db: &Harness) {
    let store = db.migrated().await;
    let h = enrolling_host(store).await;
    let other = enrolling_host(store).await;
    let c = command(h.id, None, T0.plus_secs(60));
    store.enqueue_agent_command(&c).await.unwrap();
    let t1 = T0.plus_secs(1);

    // Nothing may finish or be acked before it is dispatched.
    assert!(matches!(
        store
            .finish_agent_command(
                h.id,
                c.id,
                &CommandFinish::Succeeded(serde_json::json!(1)),
                t1
            )
            .await,
        Err(StoreError::InvalidTransition(_))
    ));
    assert!(matches!(
        store.ack_agent_command(h.id, c.id, t1).await,
        Err(StoreError::InvalidTransition(_))
    ));

    let due = store
        .agent_commands_to_dispatch(h.id, t1, 10)
        .await
        .unwrap();
    assert_eq!(due.iter().map(|c| c.id).collect::<Vec<_>>(), vec![c.id]);
    assert!(store.mark_agent_command_dispatched(c.id, t1).await.unwrap());
    assert!(!store.mark_agent_command_dispatched(c.id, t1).await.unwrap());
    assert!(store
        .agent_commands_to_dispatch(h.id, t1, 10)
        .await
        .unwrap()
        .is_empty());

    // Another host cannot touch it.
    assert!(matches!(
        store.ack_agent_command(other.id, c.id, t1).await,
        Err(StoreError::NotFound("command"))
    ));
    assert_eq!(
        store.ack_agent_command(h.id, c.id, t1).await.unwrap(),
        CommandState::Dispatched
    );
    assert_eq!(
        store.ack_agent_command(h.id, c.id, t1).await.unwrap(),
        CommandState::Acked,
        "a repeated ack is a no-op"
    );
    assert!(store
        .record_agent_command_progress(h.id, c.id, 40, "downloading", t1)
        .await
        .unwrap());
    let t2 = T0.plus_secs(2);
    assert_eq!(
        store
            .finish_agent_command(
                h.id,
                c.id,
                &CommandFinish::Succeeded(serde_json::json!({"ok": true})),
                t2
            )
            .await
            .unwrap(),
        CommandState::Acked
    );
    let got = store.get_agent_command(c.id).await.unwrap().unwrap();
    assert_eq!(got.state, CommandState::Succeeded);
    assert_eq!(got.result, Some(serde_json::json!({"ok": true})));
    assert_eq!(got.progress_percent, Some(40));
    assert_eq!(got.progress_message.as_deref(), Some("downloading"));
    assert_eq!(
        (got.dispatched_at, got.acked_at, got.finished_at),
        (Some(t1), Some(t1), Some(t2))
    );
    assert_eq!(got.attempts, 1);

    // Outcomes are final.
    assert!(matches!(
        store
            .finish_agent_command(h.id, c.id, &CommandFinish::Failed("late".into()), t2)
            .await,
        Err(StoreError::InvalidTransition(_))
    ));
    assert!(matches!(
        store.ack_agent_command(h.id, c.id, t2).await,
        Err(StoreError::InvalidTransition(_))
    ));
    assert!(!store
        .record_agent_command_progress(h.id, c.id, 50, "x", t2)
        .await
        .unwrap());

    // A fast command may report before its ack: dispatched -> failed.
    let fast = command(h.id, None, T0.plus_secs(60));
    store.enqueue_agent_command(&fast).await.unwrap();
    store
        .mark_agent_command_dispatched(fast.id, t1)
        .await
        .unwrap();
    store
        .finish_agent_command(h.id, fast.id, &CommandFinish::Failed("boom".into()), t2)
        .await
        .unwrap();
    let got = store.get_agent_command(fast.id).await.unwrap().unwrap();
    assert_eq!(got.state, CommandState::Failed);
    assert_eq!(got.error.as_deref(), Some("boom"));
    assert_eq!(
        subjects(store)
            .await
            .iter()
            .filter(|s| *s == "fleet.command.finished")
            .count(),
        2
    );
}

async fn redelivery_and_expiry(db: &Harness) {
    let store = db.migrated().await;
    let h = enrolling_host(store).await;
    let t1 = T0.plus_secs(1);
    let dispatched = command(h.id, None, T0.plus_secs(60));
    let acked = command(h.id, None, T0.plus_secs(60));
    let queued_late = command(h.id, None, T0.plus_secs(10));
    let done = command(h.id, None, T0.plus_secs(10));
    for c in [&dispatched, &acked, &queued_late, &done] {
        store.enqueue_agent_command(c).await.unwrap();
    }
    for c in [&dispatched, &acked, &done] {
        assert!(store.mark_agent_command_dispatched(c.id, t1).await.unwrap());
    }
    store.ack_agent_command(h.id, acked.id, t1).await.unwrap();
    store
        .finish_agent_command(
            h.id,
            done.id,
            &CommandFinish::Succeeded(serde_json::json!(null)),
            t1,
        )
        .await
        .unwrap();

    // Reconnect: only the unacknowledged one goes back to the queue.
    assert_eq!(
        store
            .requeue_dispatched_agent_commands(h.id, t1)
            .await
            .unwrap(),
        1
    );
    let state = |id| async move { store.get_agent_command(id).await.unwrap().unwrap().state };
    assert_eq!(state(dispatched.id).await, CommandState::Queued);
    assert_eq!(state(acked.id).await, CommandState::Acked);
    assert!(store
        .mark_agent_command_dispatched(dispatched.id, t1)
        .await
        .unwrap());
    assert_eq!(
        store
            .get_agent_command(dispatched.id)
            .await
            .unwrap()
            .unwrap()
            .attempts,
        2
    );

    // Overdue commands are not offered, and a sweep expires them.
    assert!(store
        .agent_commands_to_dispatch(h.id, T0.plus_secs(10), 10)
        .await
        .unwrap()
        .is_empty());
    let mut expired = store
        .expire_overdue_agent_commands(T0.plus_secs(10))
        .await
        .unwrap();
    assert_eq!(expired, vec![queued_late.id]);
    expired = store
        .expire_overdue_agent_commands(T0.plus_secs(60))
        .await
        .unwrap();
    expired.sort();
    let mut want = vec![dispatched.id, acked.id];
    want.sort();
    assert_eq!(expired, want);
    assert_eq!(state(done.id).await, CommandState::Succeeded);
    let acked_row = store.get_agent_command(acked.id).await.unwrap().unwrap();
    assert_eq!(acked_row.state, CommandState::Expired);
    assert!(acked_row.acked_at.is_some());
    assert!(store
        .expire_overdue_agent_commands(T0.plus_secs(3600))
        .await
        .unwrap()
        .is_empty());
    // An expired command cannot be finished late.
    assert!(matches!(
        store
            .finish_agent_command(
                h.id,
                acked.id,
                &CommandFinish::Succeeded(serde_json::json!(1)),
                T0.plus_secs(61)
            )
            .await,
        Err(StoreError::InvalidTransition(_))
    ));
}

/// The cluster monitor's samples: kept per host, read back oldest first
/// within a window and a limit, replaced at the same instant, refused for
/// an unknown host, pruned by age, and gone with their host's other rows
/// untouched.
async fn host_samples_are_kept_windowed_and_pruned(db: &Harness) {
    let store = db.migrated().await;
    let h = enrolling_host(store).await;
    let other = enrolling_host(store).await;
    let counters = |n: u64| HostCounters {
        cpu_busy_ticks: n,
        cpu_total_ticks: 10 * n,
        memory_total_bytes: 1 << 40,
        memory_available_bytes: 1 << 30,
        disk_total_bytes: u64::MAX,
        disk_available_bytes: 7,
        net_rx_bytes: 100 * n,
        net_tx_bytes: 50 * n,
    };
    for i in 0..5u64 {
        let at = T0.plus_secs(10 * i as i64);
        let sample = HostSample {
            at,
            counters: counters(i),
        };
        store.record_host_sample(h.id, &sample).await.unwrap();
    }
    store
        .record_host_sample(
            other.id,
            &HostSample {
                at: T0,
                counters: counters(99),
            },
        )
        .await
        .unwrap();
    // The same instant again: replaced, not doubled.
    store
        .record_host_sample(
            h.id,
            &HostSample {
                at: T0.plus_secs(40),
                counters: counters(4),
            },
        )
        .await
        .unwrap();

    let all = store.host_samples(h.id, T0, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].at < w[1].at), "oldest first");
    // A value past BIGINT is kept at its largest; the rest as given.
    assert_eq!(all[2].counters.disk_total_bytes, i64::MAX as u64);
    assert_eq!(
        HostCounters {
            disk_total_bytes: u64::MAX,
            ..all[2].counters
        },
        counters(2)
    );
    // A window and a limit: the newest `limit` within it.
    let recent = store.host_samples(h.id, T0.plus_secs(15), 2).await.unwrap();
    let at: Vec<_> = recent.iter().map(|s| s.at).collect();
    assert_eq!(at, vec![T0.plus_secs(30), T0.plus_secs(40)]);
    assert_eq!(store.host_samples(other.id, T0, 10).await.unwrap().len(), 1);

    let unknown = HostId::from_uuid(Uuid::now_v7());
    assert!(matches!(
        store
            .record_host_sample(
                unknown,
                &HostSample {
                    at: T0,
                    counters: counters(1)
                }
            )
            .await,
        Err(StoreError::NotFound(_))
    ));

    let cutoffs = RetentionCutoffs {
        host_metrics_before: Some(T0.plus_secs(25)),
        ..RetentionCutoffs::default()
    };
    let report = store.prune(&cutoffs, 2, 10).await.unwrap();
    // Three of h's and other's one, in batches of two.
    assert_eq!(report.host_samples, 4);
    assert_eq!(report.total(), 4);
    let left = store.host_samples(h.id, T0, 100).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(store
        .host_samples(other.id, T0, 10)
        .await
        .unwrap()
        .is_empty());
}

conformance!(
    hosts_follow_the_machine,
    sessions_heartbeats_workloads_and_events,
    enrollment_token_is_single_use_under_concurrency,
    enrollment_is_atomic,
    certificates_and_revocation,
    one_ca_when_replicas_race,
    command_idempotency_key,
    command_lifecycle_and_illegal_transitions,
    redelivery_and_expiry,
    host_samples_are_kept_windowed_and_pruned,
);
