//! Conformance suite: one set of test bodies, run against both backends.
//!
//! Every body below is an `async fn(&Harness)`; the `conformance!` macro at
//! the bottom generates a `sqlite::<name>` test (fresh database file in a
//! temporary directory) and a `postgres::<name>` test (throwaway database on
//! `HOOD_TEST_POSTGRES_URL`, loudly skipped when unset) for each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use support::Harness;

use hood_domain::event::DomainEvent;
use hood_domain::identity::{
    ApiKey, Organization, Permission, RefreshToken, Role, Session, SigningKey, User,
};
use hood_domain::{ApiKeyId, OrgId, SessionId, Timestamp, UserId};
use hood_store::{RefreshOutcome, Store, StoreError};
use std::sync::Arc;
use uuid::Uuid;

// -- fixtures --

/// Every migration version this binary knows, in order.
fn all_versions() -> Vec<i64> {
    hood_store::migrate::SQLITE
        .iter()
        .map(|m| m.version)
        .collect()
}

fn latest() -> i64 {
    hood_store::migrate::latest_version(hood_store::migrate::SQLITE)
}

const T0: Timestamp = Timestamp(1_700_000_000_000);
const DAY_SECS: i64 = 86_400;

fn new_id() -> Uuid {
    Uuid::now_v7()
}

fn org(slug: &str) -> Organization {
    Organization {
        id: OrgId::from_uuid(new_id()),
        slug: slug.into(),
        name: format!("Org {slug}"),
        created_at: T0,
    }
}

fn user(org: &Organization, email: &str, at: Timestamp) -> User {
    User {
        id: UserId::from_uuid(new_id()),
        org_id: org.id,
        email: email.into(),
        display_name: format!("User {email}"),
        role: Role::Operator,
        platform_admin: false,
        password_hash: Some(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$SECRET-PASSWORD-HASH".into(),
        ),
        disabled: false,
        created_at: at,
    }
}

fn key(user: &User, prefix: &str, at: Timestamp) -> ApiKey {
    ApiKey {
        id: ApiKeyId::from_uuid(new_id()),
        org_id: user.org_id,
        user_id: user.id,
        name: format!("key {prefix}"),
        prefix: prefix.into(),
        secret_hash: format!("SECRET-KEY-HASH-{prefix}"),
        role: Role::Viewer,
        scopes: vec![],
        created_at: at,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    }
}

fn session(user: &User, at: Timestamp) -> Session {
    Session {
        id: SessionId::from_uuid(new_id()),
        user_id: user.id,
        org_id: user.org_id,
        created_at: at,
        expires_at: at.plus_secs(7 * DAY_SECS),
        revoked_at: None,
        revoked_reason: None,
    }
}

fn token(session: &Session, jti: &str, at: Timestamp) -> RefreshToken {
    RefreshToken {
        jti: jti.into(),
        session_id: session.id,
        issued_at: at,
        expires_at: at.plus_secs(7 * DAY_SECS),
        used_at: None,
    }
}

/// An org with one user, both stored.
async fn org_with_user(store: &dyn Store, slug: &str) -> (Organization, User) {
    let o = org(slug);
    store.create_org(&o).await.unwrap();
    let u = user(&o, &format!("someone@{slug}.example"), T0);
    store.create_user(&u).await.unwrap();
    (o, u)
}

async fn pending_subjects(store: &dyn Store) -> Vec<String> {
    store
        .outbox_pending(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.subject)
        .collect()
}

// -- schema --

async fn migrate_twice_then_schema_is_current(db: &Harness) {
    let store = &*db.store;
    assert_eq!(store.backend(), db.backend);
    store.ping().await.unwrap();
    assert!(matches!(
        store.check_schema().await,
        Err(StoreError::SchemaOutOfDate { found: 0, expected }) if expected == latest()
    ));
    assert_eq!(store.migrate().await.unwrap(), all_versions());
    assert_eq!(store.migrate().await.unwrap(), Vec::<i64>::new());
    store.check_schema().await.unwrap();
    store.ping().await.unwrap();
}

async fn concurrent_migrations_apply_once(db: &Harness) {
    let stores: Vec<Arc<dyn Store>> = vec![db.reopen().await, db.reopen().await, db.reopen().await];
    let tasks: Vec<_> = stores
        .iter()
        .map(|s| {
            let s = Arc::clone(s);
            tokio::spawn(async move { s.migrate().await })
        })
        .collect();
    let mut applied = vec![];
    for t in tasks {
        applied.extend(t.await.unwrap().unwrap());
    }
    applied.sort_unstable();
    assert_eq!(
        applied,
        all_versions(),
        "each migration applied by exactly one runner"
    );
    db.store.check_schema().await.unwrap();
}

async fn edited_or_newer_schema_is_refused(db: &Harness) {
    let store = db.migrated().await;
    db.exec("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        .await;
    assert!(matches!(store.migrate().await, Err(StoreError::Corrupt(_))));
    assert!(matches!(
        store.check_schema().await,
        Err(StoreError::Corrupt(_))
    ));

    let fresh = Harness::fresh_like(db).await;
    if let Some(fresh) = fresh {
        let store = fresh.migrated().await;
        fresh
            .exec("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (99, 'future', 'x', 0)")
            .await;
        assert!(matches!(
            store.check_schema().await,
            Err(StoreError::SchemaTooNew { found: 99, expected }) if expected == latest()
        ));
        assert!(matches!(
            store.migrate().await,
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}

async fn data_survives_reopening(db: &Harness) {
    let store = db.migrated().await;
    let (o, u) = org_with_user(store, "durable").await;
    let k = key(&u, "durable1", T0);
    store.create_api_key(&k).await.unwrap();

    let again = db.reopen().await;
    again.check_schema().await.unwrap();
    assert_eq!(again.migrate().await.unwrap(), Vec::<i64>::new());
    assert_eq!(again.get_org(o.id).await.unwrap(), Some(o));
    assert_eq!(
        again.get_user(u.id).await.unwrap().map(|x| x.email),
        Some(u.email)
    );
    assert_eq!(
        again.find_api_key_by_prefix("durable1").await.unwrap(),
        Some(k)
    );
}

// -- organizations --

async fn orgs_create_get_list_and_slug_conflict(db: &Harness) {
    let store = db.migrated().await;
    let a = org("alpha");
    let mut b = org("beta");
    b.created_at = T0.plus_secs(1);
    store.create_org(&a).await.unwrap();
    store.create_org(&b).await.unwrap();
    assert_eq!(store.get_org(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.get_org(OrgId::from_uuid(new_id())).await.unwrap(),
        None
    );
    assert_eq!(store.list_orgs().await.unwrap(), vec![a.clone(), b.clone()]);

    let before = store.outbox_pending(1000).await.unwrap().len();
    let dup = org("alpha");
    match store.create_org(&dup).await {
        Err(StoreError::Conflict(field)) => assert_eq!(field, "slug"),
        other => panic!("expected slug conflict, got {other:?}"),
    }
    let mut same_id = org("gamma");
    same_id.id = a.id;
    assert!(matches!(
        store.create_org(&same_id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.outbox_pending(1000).await.unwrap().len(),
        before,
        "a failed mutation leaves no outbox row"
    );
    assert_eq!(store.list_orgs().await.unwrap().len(), 2);
}

// -- users --

async fn users_crud_and_case_insensitive_email(db: &Harness) {
    let store = db.migrated().await;
    let o = org("acme");
    store.create_org(&o).await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);

    let alice = user(&o, "Alice@Example.COM", T0);
    store.create_user(&alice).await.unwrap();
    let mut bob = user(&o, "bob@example.com", T0.plus_secs(5));
    bob.password_hash = None;
    bob.platform_admin = true;
    store.create_user(&bob).await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 2);

    let stored = store.get_user(alice.id).await.unwrap().unwrap();
    assert_eq!(stored.email, "alice@example.com", "stored lower-cased");
    assert_eq!(
        stored,
        User {
            email: "alice@example.com".into(),
            ..alice.clone()
        }
    );
    for probe in [
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
        "aLiCe@example.com",
    ] {
        assert_eq!(
            store.find_user_by_email(probe).await.unwrap().map(|u| u.id),
            Some(alice.id)
        );
    }
    assert_eq!(
        store
            .find_user_by_email("nobody@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_user(bob.id).await.unwrap(), Some(bob.clone()));

    match store.create_user(&user(&o, "ALICE@example.com", T0)).await {
        Err(StoreError::Conflict(field)) => assert_eq!(field, "email"),
        other => panic!("expected email conflict, got {other:?}"),
    }
    let orphan = user(&org("ghost"), "orphan@example.com", T0);
    assert!(matches!(
        store.create_user(&orphan).await,
        Err(StoreError::NotFound("org"))
    ));

    let listed: Vec<UserId> = store
        .list_users(o.id)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(listed, vec![alice.id, bob.id], "oldest first");
    assert!(store
        .list_users(OrgId::from_uuid(new_id()))
        .await
        .unwrap()
        .is_empty());

    let mut changed = stored.clone();
    changed.role = Role::Admin;
    changed.display_name = "Alice A.".into();
    changed.disabled = true;
    changed.password_hash = Some("$argon2id$new".into());
    changed.platform_admin = true; // not changeable through update_user
    store.update_user(&changed).await.unwrap();
    let after = store.get_user(alice.id).await.unwrap().unwrap();
    assert_eq!(after.role, Role::Admin);
    assert_eq!(after.display_name, "Alice A.");
    assert!(after.disabled);
    assert_eq!(after.password_hash.as_deref(), Some("$argon2id$new"));
    assert!(!after.platform_admin);

    let mut unknown = changed.clone();
    unknown.id = UserId::from_uuid(new_id());
    assert!(matches!(
        store.update_user(&unknown).await,
        Err(StoreError::NotFound("user"))
    ));
}

async fn deleting_a_user_cascades_to_keys_and_sessions(db: &Harness) {
    let store = db.migrated().await;
    let (o, u) = org_with_user(store, "cascade").await;
    let other = user(&o, "stays@cascade.example", T0);
    store.create_user(&other).await.unwrap();
    let k = key(&u, "cascade1", T0);
    store.create_api_key(&k).await.unwrap();
    let kept = key(&other, "cascade2", T0);
    store.create_api_key(&kept).await.unwrap();
    let s = session(&u, T0);
    store
        .create_session(&s, &token(&s, "cascade-jti", T0))
        .await
        .unwrap();

    assert!(store.delete_user(o.id, u.id).await.unwrap());
    assert_eq!(store.get_user(u.id).await.unwrap(), None);
    assert_eq!(
        store.find_api_key_by_prefix("cascade1").await.unwrap(),
        None
    );
    assert_eq!(store.get_session(s.id).await.unwrap(), None);
    assert_eq!(
        db.scalar("SELECT count(*) FROM refresh_tokens").await,
        Some(0)
    );
    assert_eq!(
        store.find_api_key_by_prefix("cascade2").await.unwrap(),
        Some(kept)
    );
    assert!(
        !store.delete_user(o.id, u.id).await.unwrap(),
        "second delete finds nothing"
    );
}

async fn org_scoping_hides_other_orgs_rows(db: &Harness) {
    let store = db.migrated().await;
    let (a, ua) = org_with_user(store, "org-a").await;
    let (b, _ub) = org_with_user(store, "org-b").await;
    let k = key(&ua, "scoped1", T0);
    store.create_api_key(&k).await.unwrap();

    assert_eq!(store.get_api_key(b.id, k.id).await.unwrap(), None);
    assert_eq!(
        store.get_api_key(a.id, k.id).await.unwrap(),
        Some(k.clone())
    );
    assert!(store.list_api_keys(b.id, None).await.unwrap().is_empty());
    assert!(store
        .list_api_keys(b.id, Some(ua.id))
        .await
        .unwrap()
        .is_empty());

    assert!(!store
        .revoke_api_key(b.id, k.id, T0.plus_secs(1))
        .await
        .unwrap());
    assert_eq!(
        store
            .get_api_key(a.id, k.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );

    let mut moved = ua.clone();
    moved.org_id = b.id;
    moved.role = Role::Admin;
    assert!(matches!(
        store.update_user(&moved).await,
        Err(StoreError::NotFound("user"))
    ));
    assert_eq!(
        store.get_user(ua.id).await.unwrap().unwrap().role,
        Role::Operator
    );

    assert!(!store.delete_user(b.id, ua.id).await.unwrap());
    assert!(store.get_user(ua.id).await.unwrap().is_some());

    // A key (or session) can only act for a user of its own org.
    let mut cross = key(&ua, "scoped2", T0);
    cross.org_id = b.id;
    assert!(matches!(
        store.create_api_key(&cross).await,
        Err(StoreError::NotFound("user"))
    ));
    let mut cross_session = session(&ua, T0);
    cross_session.org_id = b.id;
    assert!(matches!(
        store
            .create_session(&cross_session, &token(&cross_session, "cross", T0))
            .await,
        Err(StoreError::NotFound("user"))
    ));
}

// -- sessions and refresh tokens --

async fn refresh_rotation_and_reuse_detection(db: &Harness) {
    let store = db.migrated().await;
    let (_o, u) = org_with_user(store, "sessions").await;
    let s = session(&u, T0);
    store
        .create_session(&s, &token(&s, "jti-1", T0))
        .await
        .unwrap();
    assert_eq!(store.get_session(s.id).await.unwrap(), Some(s.clone()));
    assert_eq!(
        store
            .get_session(SessionId::from_uuid(new_id()))
            .await
            .unwrap(),
        None
    );

    let t1 = T0.plus_secs(60);
    let next = token(&s, "jti-2", t1);
    match store
        .rotate_refresh_token("jti-1", &next, t1)
        .await
        .unwrap()
    {
        RefreshOutcome::Rotated { session } => {
            assert_eq!(session.id, s.id);
            assert_eq!(session.expires_at, next.expires_at, "session extended");
            assert_eq!(store.get_session(s.id).await.unwrap(), Some(session));
        }
        other => panic!("expected Rotated, got {other:?}"),
    }
    assert_eq!(
        db.scalar("SELECT used_at FROM refresh_tokens WHERE jti = 'jti-1'")
            .await,
        Some(t1.millis()),
        "old token is spent"
    );
    assert_eq!(
        db.scalar("SELECT used_at FROM refresh_tokens WHERE jti = 'jti-2'")
            .await,
        None
    );

    // Replaying the spent token revokes the whole family...
    let t2 = T0.plus_secs(120);
    assert_eq!(
        store
            .rotate_refresh_token("jti-1", &token(&s, "jti-x", t2), t2)
            .await
            .unwrap(),
        RefreshOutcome::ReuseDetected { session_id: s.id }
    );
    let revoked = store.get_session(s.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(t2));
    assert_eq!(
        revoked.revoked_reason.as_deref(),
        Some("refresh_token_reuse")
    );
    // ...including the newest, still unspent token.
    assert!(matches!(
        store
            .rotate_refresh_token("jti-2", &token(&s, "jti-3", t2), t2)
            .await
            .unwrap(),
        RefreshOutcome::Rejected { .. }
    ));
    assert_eq!(
        db.scalar("SELECT count(*) FROM refresh_tokens WHERE jti IN ('jti-x', 'jti-3')")
            .await,
        Some(0),
        "nothing issued after reuse"
    );
    assert!(matches!(
        store
            .rotate_refresh_token("no-such-jti", &token(&s, "jti-4", t2), t2)
            .await
            .unwrap(),
        RefreshOutcome::Rejected { .. }
    ));
}

async fn expired_or_revoked_sessions_do_not_rotate(db: &Harness) {
    let store = db.migrated().await;
    let (_o, u) = org_with_user(store, "expiry").await;

    // Expired refresh token.
    let s = session(&u, T0);
    let mut short = token(&s, "short", T0);
    short.expires_at = T0.plus_secs(10);
    store.create_session(&s, &short).await.unwrap();
    let late = T0.plus_secs(11);
    assert!(matches!(
        store
            .rotate_refresh_token("short", &token(&s, "short-2", late), late)
            .await
            .unwrap(),
        RefreshOutcome::Rejected { .. }
    ));
    assert_eq!(
        db.scalar("SELECT used_at FROM refresh_tokens WHERE jti = 'short'")
            .await,
        None,
        "a rejected exchange spends nothing"
    );

    // Expired session.
    let mut s2 = session(&u, T0);
    s2.expires_at = T0.plus_secs(10);
    store
        .create_session(&s2, &token(&s2, "sess-exp", T0))
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_refresh_token("sess-exp", &token(&s2, "sess-exp-2", late), late)
            .await
            .unwrap(),
        RefreshOutcome::Rejected { .. }
    ));

    // Logged-out session; revoking is idempotent and keeps the first reason.
    let s3 = session(&u, T0);
    store
        .create_session(&s3, &token(&s3, "logout", T0))
        .await
        .unwrap();
    assert!(store
        .revoke_session(s3.id, "logout", T0.plus_secs(1))
        .await
        .unwrap());
    assert!(store
        .revoke_session(s3.id, "admin", T0.plus_secs(2))
        .await
        .unwrap());
    let got = store.get_session(s3.id).await.unwrap().unwrap();
    assert_eq!(got.revoked_at, Some(T0.plus_secs(1)));
    assert_eq!(got.revoked_reason.as_deref(), Some("logout"));
    assert!(!store
        .revoke_session(SessionId::from_uuid(new_id()), "logout", T0)
        .await
        .unwrap());
    let t = T0.plus_secs(3);
    assert!(matches!(
        store
            .rotate_refresh_token("logout", &token(&s3, "logout-2", t), t)
            .await
            .unwrap(),
        RefreshOutcome::Rejected { .. }
    ));
    assert_eq!(
        store
            .get_session(s3.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_reason
            .as_deref(),
        Some("logout")
    );
}

async fn concurrent_rotation_of_one_token_rotates_once(db: &Harness) {
    db.migrated().await;
    let store = Arc::clone(&db.store);
    let (_o, u) = org_with_user(&*store, "race").await;
    let s = session(&u, T0);
    store
        .create_session(&s, &token(&s, "contended", T0))
        .await
        .unwrap();

    let now = T0.plus_secs(30);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            let next = token(&s, &format!("next-{i}"), now);
            tokio::spawn(async move { store.rotate_refresh_token("contended", &next, now).await })
        })
        .collect();
    let mut rotated = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RefreshOutcome::Rotated { .. } => rotated += 1,
            RefreshOutcome::ReuseDetected { session_id } => assert_eq!(session_id, s.id),
            RefreshOutcome::Rejected { reason } => panic!("unexpected rejection: {reason}"),
        }
    }
    assert_eq!(rotated, 1, "exactly one exchange wins");
    assert_eq!(
        db.scalar("SELECT count(*) FROM refresh_tokens WHERE jti LIKE 'next-%'")
            .await,
        Some(1)
    );
}

// -- API keys --

async fn api_keys_lifecycle(db: &Harness) {
    let store = db.migrated().await;
    let (o, u1) = org_with_user(store, "keys").await;
    let u2 = user(&o, "second@keys.example", T0);
    store.create_user(&u2).await.unwrap();

    let mut k1 = key(&u1, "pfx1", T0);
    k1.scopes = vec![Permission::Read, Permission::Operate];
    k1.role = Role::Operator;
    k1.expires_at = Some(T0.plus_secs(DAY_SECS));
    let k2 = key(&u1, "pfx2", T0.plus_secs(1));
    let k3 = key(&u2, "pfx3", T0.plus_secs(2));
    for k in [&k1, &k2, &k3] {
        store.create_api_key(k).await.unwrap();
    }
    assert_eq!(
        store.find_api_key_by_prefix("pfx1").await.unwrap(),
        Some(k1.clone())
    );
    assert_eq!(store.find_api_key_by_prefix("nope").await.unwrap(), None);
    assert_eq!(
        store.get_api_key(o.id, k3.id).await.unwrap(),
        Some(k3.clone())
    );

    let all: Vec<ApiKeyId> = store
        .list_api_keys(o.id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(all, vec![k3.id, k2.id, k1.id], "newest first");
    let mine: Vec<ApiKeyId> = store
        .list_api_keys(o.id, Some(u1.id))
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(mine, vec![k2.id, k1.id]);

    match store.create_api_key(&key(&u2, "pfx1", T0)).await {
        Err(StoreError::Conflict(field)) => assert_eq!(field, "prefix"),
        other => panic!("expected prefix conflict, got {other:?}"),
    }
    let mut ghost_user = key(&u1, "pfx9", T0);
    ghost_user.user_id = UserId::from_uuid(new_id());
    assert!(matches!(
        store.create_api_key(&ghost_user).await,
        Err(StoreError::NotFound(_))
    ));

    let r1 = T0.plus_secs(100);
    assert!(store.revoke_api_key(o.id, k1.id, r1).await.unwrap());
    assert!(store
        .revoke_api_key(o.id, k1.id, r1.plus_secs(50))
        .await
        .unwrap());
    assert_eq!(
        store
            .get_api_key(o.id, k1.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(r1)
    );
    assert!(!store
        .revoke_api_key(o.id, ApiKeyId::from_uuid(new_id()), r1)
        .await
        .unwrap());
    let revocations = pending_subjects(store)
        .await
        .into_iter()
        .filter(|s| s == "identity.api_key.revoked")
        .count();
    assert_eq!(revocations, 1, "revoking twice announces once");

    let used = T0.plus_secs(200);
    store.touch_api_key(k2.id, used).await.unwrap();
    store.touch_api_key(k2.id, T0.plus_secs(150)).await.unwrap();
    assert_eq!(
        store
            .get_api_key(o.id, k2.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(used)
    );
    store
        .touch_api_key(ApiKeyId::from_uuid(new_id()), used)
        .await
        .unwrap();
}

// -- signing keys --

async fn signing_keys_insert_and_list(db: &Harness) {
    let store = db.migrated().await;
    assert!(store.list_signing_keys().await.unwrap().is_empty());
    let old = SigningKey {
        kid: "kid-old".into(),
        sealed_private_key: vec![0, 1, 2, 255],
        public_key_pem: "-----BEGIN PUBLIC KEY-----\nold\n-----END PUBLIC KEY-----\n".into(),
        created_at: T0,
        retired_at: Some(T0.plus_secs(10)),
    };
    let new = SigningKey {
        kid: "kid-new".into(),
        sealed_private_key: vec![9; 64],
        public_key_pem: "new".into(),
        created_at: T0.plus_secs(5),
        retired_at: None,
    };
    store.insert_signing_key(&old).await.unwrap();
    store.insert_signing_key(&new).await.unwrap();
    let mut clash = new.clone();
    clash.public_key_pem = "replacement".into();
    store.insert_signing_key(&clash).await.unwrap();
    assert_eq!(
        store.list_signing_keys().await.unwrap(),
        vec![new, old],
        "newest first, first insert wins"
    );
}

// -- bootstrap --

fn bootstrap_set(n: usize) -> (Organization, User, ApiKey) {
    let o = org(&format!("hood-{n}"));
    let mut admin = user(&o, &format!("admin{n}@hood.local"), T0);
    admin.role = Role::Admin;
    admin.platform_admin = true;
    let mut k = key(&admin, &format!("boot{n}"), T0);
    k.role = Role::Admin;
    (o, admin, k)
}

async fn bootstrap_only_once(db: &Harness) {
    let store = db.migrated().await;
    let (o, admin, k) = bootstrap_set(1);
    assert!(store.bootstrap(&o, &admin, &k).await.unwrap());
    assert_eq!(store.get_org(o.id).await.unwrap(), Some(o.clone()));
    assert!(
        store
            .get_user(admin.id)
            .await
            .unwrap()
            .unwrap()
            .platform_admin
    );
    assert_eq!(
        store.find_api_key_by_prefix("boot1").await.unwrap(),
        Some(k)
    );
    assert_eq!(
        pending_subjects(store).await,
        vec![
            "identity.org.created",
            "identity.user.created",
            "identity.api_key.created"
        ]
    );

    let (o2, admin2, k2) = bootstrap_set(2);
    assert!(!store.bootstrap(&o2, &admin2, &k2).await.unwrap());
    assert_eq!(
        store.get_org(o2.id).await.unwrap(),
        None,
        "a lost bootstrap writes nothing"
    );
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert_eq!(pending_subjects(store).await.len(), 3);
}

async fn racing_bootstraps_have_one_winner(db: &Harness) {
    db.migrated().await;
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move {
                let (o, admin, k) = bootstrap_set(n);
                store.bootstrap(&o, &admin, &k).await
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(db.store.count_users().await.unwrap(), 1);
    assert_eq!(db.store.list_orgs().await.unwrap().len(), 1);
}

// -- outbox --

async fn outbox_records_every_mutation_in_order(db: &Harness) {
    let store = db.migrated().await;
    let o = org("outbox");
    store.create_org(&o).await.unwrap();
    let u = user(&o, "Writer@Outbox.example", T0);
    store.create_user(&u).await.unwrap();
    let mut changed = u.clone();
    changed.role = Role::Admin;
    store.update_user(&changed).await.unwrap();
    let k = key(&u, "outbox1", T0);
    store.create_api_key(&k).await.unwrap();
    store
        .revoke_api_key(o.id, k.id, T0.plus_secs(1))
        .await
        .unwrap();
    store.delete_user(o.id, u.id).await.unwrap();

    // Failed mutations announce nothing.
    assert!(store.create_org(&org("outbox")).await.is_err());
    let mut missing = u.clone();
    missing.id = UserId::from_uuid(new_id());
    assert!(store.update_user(&missing).await.is_err());
    assert!(!store.delete_user(o.id, missing.id).await.unwrap());

    let pending = store.outbox_pending(100).await.unwrap();
    let subjects: Vec<&str> = pending.iter().map(|r| r.event.subject.as_str()).collect();
    assert_eq!(
        subjects,
        vec![
            "identity.org.created",
            "identity.user.created",
            "identity.user.updated",
            "identity.api_key.created",
            "identity.api_key.revoked",
            "identity.user.deleted",
        ]
    );
    assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq), "seq order");
    for r in &pending {
        assert_eq!(r.id.as_uuid().get_version_num(), 7, "event ids are UUID v7");
        assert_eq!(r.published_at, None);
        let text = r.event.payload.to_string();
        assert!(!text.contains("SECRET"), "payload leaks a secret: {text}");
    }
    assert_eq!(
        pending[0].event,
        DomainEvent {
            subject: "identity.org.created".into(),
            aggregate_type: "org".into(),
            aggregate_id: o.id.to_string(),
            payload: serde_json::json!({
                "org_id": o.id, "slug": "outbox", "name": "Org outbox", "created_at": T0.millis()
            }),
        }
    );
    assert_eq!(pending[1].event.payload["email"], "writer@outbox.example");
    assert_eq!(pending[3].event.aggregate_id, k.id.to_string());
    assert_eq!(pending[3].event.payload["prefix"], "outbox1");

    assert_eq!(
        store.outbox_pending(2).await.unwrap(),
        pending[..2].to_vec()
    );
    let first_three: Vec<_> = pending[..3].iter().map(|r| r.id).collect();
    store
        .outbox_mark_published(&first_three, T0.plus_secs(9))
        .await
        .unwrap();
    store
        .outbox_mark_published(&first_three, T0.plus_secs(99))
        .await
        .unwrap();
    store.outbox_mark_published(&[], T0).await.unwrap();
    let rest = store.outbox_pending(100).await.unwrap();
    assert_eq!(rest, pending[3..].to_vec());
    assert_eq!(
        db.scalar(&format!(
            "SELECT published_at FROM outbox WHERE id = '{}'",
            pending[0].id
        ))
        .await,
        Some(T0.plus_secs(9).millis()),
        "marking twice keeps the first time"
    );
    let all: Vec<_> = rest.iter().map(|r| r.id).collect();
    store
        .outbox_mark_published(&all, T0.plus_secs(10))
        .await
        .unwrap();
    assert!(store.outbox_pending(100).await.unwrap().is_empty());
}

// -- corrupt data --

async fn garbage_rows_are_corrupt_not_panics(db: &Harness) {
    let store = db.migrated().await;
    let (o, u) = org_with_user(store, "garbage").await;
    let k = key(&u, "garbage1", T0);
    store.create_api_key(&k).await.unwrap();

    db.exec(&format!(
        "UPDATE users SET role = 'root' WHERE id = '{}'",
        u.id
    ))
    .await;
    assert!(matches!(
        store.get_user(u.id).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.find_user_by_email(&u.email).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.list_users(o.id).await,
        Err(StoreError::Corrupt(_))
    ));

    db.exec("UPDATE api_keys SET scopes = 'read,everything' WHERE prefix = 'garbage1'")
        .await;
    assert!(matches!(
        store.find_api_key_by_prefix("garbage1").await,
        Err(StoreError::Corrupt(_))
    ));
    db.exec(r#"UPDATE api_keys SET scopes = '["root"]' WHERE prefix = 'garbage1'"#)
        .await;
    assert!(matches!(
        store.get_api_key(o.id, k.id).await,
        Err(StoreError::Corrupt(_))
    ));

    db.exec("INSERT INTO orgs (id, slug, name, created_at) VALUES ('not-a-uuid', 'bad', 'Bad', 0)")
        .await;
    assert!(matches!(
        store.list_orgs().await,
        Err(StoreError::Corrupt(_))
    ));

    db.exec("UPDATE outbox SET payload = '{not json' WHERE seq = (SELECT min(seq) FROM outbox)")
        .await;
    assert!(matches!(
        store.outbox_pending(10).await,
        Err(StoreError::Corrupt(_))
    ));
}

conformance!(
    migrate_twice_then_schema_is_current,
    concurrent_migrations_apply_once,
    edited_or_newer_schema_is_refused,
    data_survives_reopening,
    orgs_create_get_list_and_slug_conflict,
    users_crud_and_case_insensitive_email,
    deleting_a_user_cascades_to_keys_and_sessions,
    org_scoping_hides_other_orgs_rows,
    refresh_rotation_and_reuse_detection,
    expired_or_revoked_sessions_do_not_rotate,
    concurrent_rotation_of_one_token_rotates_once,
    api_keys_lifecycle,
    signing_keys_insert_and_list,
    bootstrap_only_once,
    racing_bootstraps_have_one_winner,
    outbox_records_every_mutation_in_order,
    garbage_rows_are_corrupt_not_panics,
);

// -- backend-specific odds and ends --

#[tokio::test]
async fn sqlite_in_memory_database_keeps_its_data() {
    let store: Arc<dyn Store> = hood_store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), all_versions());
    store.check_schema().await.unwrap();
    let o = org("memory");
    store.create_org(&o).await.unwrap();
    assert_eq!(store.list_orgs().await.unwrap(), vec![o]);
}

#[tokio::test]
async fn unsupported_url_scheme_is_an_error() {
    let err = hood_store::connect("mysql://u:hunter2@h/db")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Database(_)));
    assert!(
        !err.to_string().contains("hunter2"),
        "password redacted: {err}"
    );
}
