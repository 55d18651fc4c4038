//! Feed conformance on SQLite and PostgreSQL: an event fans out to every
//! user of its organization once (redelivery adds nothing), each user reads
//! only their own items, newest first or after a cursor, and marks them
//! read, some or all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use hood_domain::feed::{feed_event, FeedItem};
use hood_domain::identity::{Organization, Role, User};
use hood_domain::{OrgId, Timestamp, UserId};
use hood_store::feed::FeedQuery;
use hood_store::Store;
use serde_json::json;
use support::Harness;

const T0: Timestamp = Timestamp(1_700_000_000_000);

async fn org(store: &dyn Store, users: usize) -> (OrgId, Vec<UserId>) {
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: format!("org-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        name: "feed".into(),
        created_at: T0,
    };
    store.create_org(&org).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..users {
        let user = User {
            id: UserId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org.id,
            email: format!("{}@feed.test", uuid::Uuid::new_v4().simple()),
            display_name: "Someone".into(),
            role: Role::Viewer,
            platform_admin: false,
            password_hash: None,
            disabled: false,
            created_at: T0,
        };
        store.create_user(&user).await.unwrap();
        ids.push(user.id);
    }
    (org.id, ids)
}

fn node_event(org: OrgId, event: &str, state: &str) -> hood_domain::feed::FeedEvent {
    feed_event(
        event,
        "node.state_changed",
        &json!({"org_id": org.to_string(), "chain": "ethereum-anvil", "state": state, "from_state": "healthy"}),
        T0,
    )
    .unwrap()
}

fn titles(items: &[FeedItem]) -> Vec<&str> {
    items
        .iter()
        .map(|i| i.detail["state"].as_str().unwrap())
        .collect()
}

async fn events_fan_out_once_to_their_organization_s_users(db: &Harness) {
    let store = db.migrated().await;
    let (acme, acme_users) = org(store, 2).await;
    let (globex, globex_users) = org(store, 1).await;
    let all = FeedQuery {
        limit: 100,
        ..FeedQuery::default()
    };
    assert_eq!(
        store
            .fan_out(&node_event(acme, "e1", "degraded"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .fan_out(&node_event(acme, "e1", "degraded"))
            .await
            .unwrap(),
        0,
        "a redelivered event adds nothing"
    );
    store
        .fan_out(&node_event(acme, "e2", "down"))
        .await
        .unwrap();
    store
        .fan_out(&node_event(globex, "e3", "failed"))
        .await
        .unwrap();
    for user in &acme_users {
        let items = store.feed(*user, &all).await.unwrap();
        assert_eq!(titles(&items), ["down", "degraded"], "newest first");
        assert!(items.iter().all(|i| i.user_id == *user && i.org_id == acme));
        assert_eq!(store.unread_feed_items(*user).await.unwrap(), 2);
    }
    let theirs = store.feed(globex_users[0], &all).await.unwrap();
    assert_eq!(titles(&theirs), ["failed"]);

    // A follow's cursor: what came after, oldest first.
    let alice = acme_users[0];
    let items = store.feed(alice, &all).await.unwrap();
    let (newest, oldest) = (items[0].id, items[1].id);
    assert_eq!(store.newest_feed_item(alice).await.unwrap(), Some(newest));
    store
        .fan_out(&node_event(acme, "e4", "healthy"))
        .await
        .unwrap();
    let after = store
        .feed(
            alice,
            &FeedQuery {
                after: Some(oldest),
                ..all.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(titles(&after), ["down", "healthy"]);
    let before = store
        .feed(
            alice,
            &FeedQuery {
                before: Some(newest),
                ..all.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(titles(&before), ["degraded"]);

    // Read: some, then all; only one's own.
    let later = Timestamp(T0.0 + 1_000);
    assert_eq!(
        store
            .mark_feed_read(alice, Some(&[oldest]), later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .mark_feed_read(alice, Some(&[oldest]), later)
            .await
            .unwrap(),
        0
    );
    let bob_items = store.feed(acme_users[1], &all).await.unwrap();
    assert_eq!(
        store
            .mark_feed_read(alice, Some(&[bob_items[0].id]), later)
            .await
            .unwrap(),
        0,
        "another user's item is not marked"
    );
    let unread = store
        .feed(
            alice,
            &FeedQuery {
                unread_only: true,
                ..all.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(titles(&unread), ["healthy", "down"]);
    assert_eq!(store.mark_feed_read(alice, None, later).await.unwrap(), 2);
    assert_eq!(store.unread_feed_items(alice).await.unwrap(), 0);
    assert_eq!(store.unread_feed_items(acme_users[1]).await.unwrap(), 3);
    let read = store.feed(alice, &all).await.unwrap();
    assert!(read.iter().all(|i| i.read_at == Some(later)));

    // A user's items go with them.
    assert!(store.delete_user(acme, alice).await.unwrap());
    assert_eq!(store.newest_feed_item(alice).await.unwrap(), None);
}

conformance!(events_fan_out_once_to_their_organization_s_users);
