#![allow(clippy::expect_used, clippy::unwrap_used)]

//! Retention: old raw usage, finished workflows with their journal, step
//! logs, agent events, published outbox rows, finished agent commands and
//! old notifications go; everything else stays
//! (rollups, live and stuck workflows, recent records) — on SQLite and
//! PostgreSQL.

#[macro_use]
mod support;

use hood_domain::retention::{RetentionCutoffs, RetentionPolicy};
use hood_domain::rpc::{Granularity, UsageEvent, UsageStatus};
use hood_domain::{OrgId, RpcKeyId, Timestamp};
use hood_store::fleet::AgentEventRecord;
use hood_store::usage::UsageQuery;
use hood_store::workflow::NewWorkflow;
use hood_store::Store;
use support::Harness;
use uuid::Uuid;

const DAY: i64 = 24 * 3_600_000;
/// "Now" of the test: far enough from the epoch for 90-day cutoffs.
const NOW: Timestamp = Timestamp(1_000 * DAY);

fn usage(n: u32, org: OrgId, key: RpcKeyId, at: Timestamp) -> UsageEvent {
    UsageEvent {
        request_id: format!("req-{n}"),
        org_id: org,
        key_id: key,
        chain: "ethereum-anvil".into(),
        method: "eth_blockNumber".into(),
        compute_units: 10,
        status: UsageStatus::Ok,
        http_status: 200,
        latency_us: 100,
        at,
    }
}

async fn workflow(
    db: &Harness,
    store: &dyn Store,
    id: &str,
    parent: Option<&str>,
    state: &str,
    updated: Timestamp,
) {
    store
        .create_workflow(&NewWorkflow {
            id: id.into(),
            name: "w".into(),
            version: 1,
            input: serde_json::json!({}),
            parent_id: parent.map(str::to_owned),
            created_at: updated,
        })
        .await
        .unwrap();
    db.exec(&format!(
        "UPDATE workflows SET state = '{state}', updated_at = {}, next_run_at = NULL WHERE id = '{id}'",
        updated.millis()
    ))
    .await;
    // A journal: one step, one execution log line, one signal.
    db.exec(&format!(
        "INSERT INTO workflow_steps (workflow_id, step_index, step_name, state, attempt, generation, updated_at) \
         VALUES ('{id}', 0, 's', 'completed', 1, 1, {t}); \
         INSERT INTO workflow_step_executions (workflow_id, step_index, step_name, kind, event, attempt, owner, generation, at) \
         VALUES ('{id}', 0, 's', 'action', 'started', 1, 'o', 1, {t}); \
         INSERT INTO workflow_signals (id, workflow_id, name, payload, created_at) \
         VALUES ('sig-{id}', '{id}', 'x', '{{}}', {t})",
        t = updated.millis()
    ))
    .await;
}

async fn count(db: &Harness, sql: &str) -> i64 {
    db.scalar(sql).await.unwrap_or(0)
}

async fn old_records_go_and_the_rest_stays(db: &Harness) {
    let store = db.migrated().await;
    let old = NOW.plus_millis(-100 * DAY);
    let recent = NOW.plus_millis(-DAY);

    // Usage: 3 old events and 2 recent ones, all rolled up.
    let (org, key) = (
        OrgId::from_uuid(Uuid::now_v7()),
        RpcKeyId::from_uuid(Uuid::now_v7()),
    );
    let events: Vec<UsageEvent> = (0..5)
        .map(|n| usage(n, org, key, if n < 3 { old } else { recent }))
        .collect();
    assert_eq!(store.record_usage(&events).await.unwrap(), 5);
    let rollups = |g| UsageQuery {
        org_id: org,
        key_id: None,
        chain: None,
        from: Timestamp(0),
        to: NOW,
        granularity: g,
    };
    let daily_before = store
        .usage_rollups(&rollups(Granularity::Day))
        .await
        .unwrap();
    let hourly_before = store
        .usage_rollups(&rollups(Granularity::Hour))
        .await
        .unwrap();

    // Workflows: an old finished parent with an old finished child, an old
    // failed one, an old stuck one, an old running one, a recent completed one.
    workflow(db, store, "parent", None, "completed", old).await;
    workflow(db, store, "child", Some("parent"), "completed", old).await;
    workflow(db, store, "failed", None, "failed", old).await;
    workflow(db, store, "stuck", None, "stuck", old).await;
    workflow(db, store, "running", None, "running", old).await;
    workflow(db, store, "recent", None, "completed", recent).await;

    // Agent events: one old, one recent.
    let host = support::host(None, old);
    store.create_host(&host).await.unwrap();
    for at in [old, recent] {
        store
            .insert_agent_event(&AgentEventRecord {
                seq: 0,
                host_id: host.id,
                kind: "workload_started".into(),
                workload_id: None,
                message: "m".into(),
                payload: serde_json::json!({}),
                at,
            })
            .await
            .unwrap();
    }
    // Agent commands: finished long ago (each final state), finished
    // recently, and one still queued long ago (kept: not finished).
    for (key, state, at) in [
        ("old-ok", "succeeded", old),
        ("old-failed", "failed", old),
        ("old-expired", "expired", old),
        ("recent-ok", "succeeded", recent),
        ("old-queued", "queued", old),
    ] {
        db.exec(&format!(
            "INSERT INTO agent_commands (id, host_id, kind, payload, idempotency_key, state, \
             attempts, created_at, expires_at) VALUES ('{}', '{}', 'ping', '{{}}', '{key}', \
             '{state}', 1, {t}, {t})",
            Uuid::now_v7(),
            host.id,
            t = at.millis()
        ))
        .await;
    }
    // Outbox: everything so far is unpublished; publish two, one long ago.
    db.exec(&format!(
        "UPDATE outbox SET published_at = {} WHERE seq = (SELECT min(seq) FROM outbox)",
        old.millis()
    ))
    .await;
    db.exec(&format!(
        "UPDATE outbox SET published_at = {} WHERE seq = (SELECT max(seq) FROM outbox)",
        recent.millis()
    ))
    .await;
    // Notifications: one user, an old item (read or not) and a recent one.
    let feed_org = hood_domain::identity::Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: format!("feed-{}", &Uuid::new_v4().simple().to_string()[..8]),
        name: "feed".into(),
        created_at: old,
    };
    store.create_org(&feed_org).await.unwrap();
    store
        .create_user(&hood_domain::identity::User {
            id: hood_domain::UserId::from_uuid(Uuid::now_v7()),
            org_id: feed_org.id,
            email: format!("{}@feed.test", Uuid::new_v4().simple()),
            display_name: "Reader".into(),
            role: hood_domain::identity::Role::Viewer,
            platform_admin: false,
            password_hash: None,
            disabled: false,
            created_at: old,
        })
        .await
        .unwrap();
    for (event, at) in [("feed-old", old), ("feed-recent", recent)] {
        let item = hood_domain::feed::feed_event(
            event,
            "allocation.active",
            &serde_json::json!({"org_id": feed_org.id.to_string(), "sku": "cpu.1c"}),
            at,
        )
        .unwrap();
        assert_eq!(store.fan_out(&item).await.unwrap(), 1);
    }
    let outbox_before = count(db, "SELECT count(*) FROM outbox").await;

    // Batches of 1 and a budget of 1 batch: a pass deletes one of each kind.
    let cutoffs = RetentionPolicy::default().cutoffs(NOW);
    let first = store.prune(&cutoffs, 1, 1).await.unwrap();
    assert_eq!(first.usage_events, 1);
    assert_eq!(first.finished_workflows, 1);
    // Then until nothing is left to do.
    let mut total = first;
    loop {
        let r = store.prune(&cutoffs, 2, 10).await.unwrap();
        if r.total() == 0 {
            break;
        }
        total.usage_events += r.usage_events;
        total.finished_workflows += r.finished_workflows;
        total.step_executions += r.step_executions;
        total.agent_events += r.agent_events;
        total.published_outbox += r.published_outbox;
        total.finished_agent_commands += r.finished_agent_commands;
        total.feed_items += r.feed_items;
    }
    assert_eq!(total.usage_events, 3);
    // child before parent, then failed: 3 finished workflows.
    assert_eq!(total.finished_workflows, 3);
    assert_eq!(total.agent_events, 1);
    assert_eq!(total.published_outbox, 1);
    assert_eq!(total.finished_agent_commands, 3);
    assert_eq!(total.feed_items, 1);
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM feed_items WHERE event_id = 'feed-recent'"
        )
        .await,
        1,
        "the recent notification stays"
    );
    let mut kept: Vec<String> = store
        .list_agent_commands(host.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.idempotency_key)
        .collect();
    kept.sort();
    assert_eq!(kept, ["old-queued", "recent-ok"]);

    assert_eq!(count(db, "SELECT count(*) FROM usage_events").await, 2);
    assert_eq!(
        store
            .usage_rollups(&rollups(Granularity::Day))
            .await
            .unwrap(),
        daily_before
    );
    assert_eq!(
        store
            .usage_rollups(&rollups(Granularity::Hour))
            .await
            .unwrap(),
        hourly_before
    );
    let mut left: Vec<String> = store
        .list_workflows(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    left.sort();
    assert_eq!(left, ["recent", "running", "stuck"]);
    // The journal of the deleted ones went with them; old execution logs of
    // the kept ones went by their own retention.
    assert_eq!(count(db, "SELECT count(*) FROM workflow_steps").await, 3);
    assert_eq!(count(db, "SELECT count(*) FROM workflow_signals").await, 3);
    assert_eq!(
        count(db, "SELECT count(*) FROM workflow_step_executions").await,
        1,
        "only the recent run's log is within 14 days"
    );
    assert_eq!(
        store.list_agent_events(host.id, 0, 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM outbox").await,
        outbox_before - 1
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM outbox WHERE published_at IS NULL").await,
        outbox_before - 2,
        "unpublished events are never deleted"
    );

    // Keeping everything deletes nothing.
    workflow(db, store, "another-old", None, "completed", old).await;
    let none = store
        .prune(&RetentionCutoffs::default(), 100, 10)
        .await
        .unwrap();
    assert_eq!(none.total(), 0);
}

conformance!(old_records_go_and_the_rest_stays);
