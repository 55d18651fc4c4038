//! SSH key conformance on SQLite and PostgreSQL: a user holds a key once
//! (another user may hold the same one), keys are found by fingerprint,
//! removal is the owner's only, every change has its audit row, and keys
//! go with their user.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use hood_domain::audit::AuditContext;
use hood_domain::identity::{Organization, Role, User};
use hood_domain::ssh_key::{parse_public_key, SshKey};
use hood_domain::{OrgId, SshKeyId, Timestamp, UserId};
use hood_store::audit::AuditFilter;
use hood_store::{Store, StoreError};
use support::Harness;

const T0: Timestamp = Timestamp(1_700_000_000_000);
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeztSW0VxjoraB0z8fn3ilcYAa5JqFsYZfjSNY7J8DB ops@example";
const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBD1sw9NFt/Z/R10OU1aQp8sV+7KUcaburlJ3rtrjS6+2YkW8vj5C9orbMADLjXMGK9c6gHKjZic6l/JiEN9Q3dw= root@vm";

fn ctx() -> AuditContext {
    AuditContext {
        actor: "user:test".into(),
        request_id: Some("req-ssh".into()),
        reason: None,
    }
}

async fn user(store: &dyn Store, org: Option<OrgId>) -> (OrgId, UserId) {
    let org = match org {
        Some(org) => org,
        None => {
            let org = Organization {
                id: OrgId::from_uuid(uuid::Uuid::now_v7()),
                slug: format!("org-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
                name: "ssh".into(),
                created_at: T0,
            };
            store.create_org(&org).await.unwrap();
            org.id
        }
    };
    let user = User {
        id: UserId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        email: format!("{}@ssh.test", uuid::Uuid::new_v4().simple()),
        display_name: "Someone".into(),
        role: Role::Admin,
        platform_admin: false,
        password_hash: None,
        disabled: false,
        created_at: T0,
    };
    store.create_user(&user).await.unwrap();
    (org, user.id)
}

fn key(org: OrgId, user: UserId, line: &str, at: i64) -> SshKey {
    let parsed = parse_public_key(line).unwrap();
    SshKey {
        id: SshKeyId::from_uuid(uuid::Uuid::now_v7()),
        user_id: user,
        org_id: org,
        name: parsed.comment.clone(),
        algorithm: parsed.algorithm,
        public_key: parsed.public_key,
        fingerprint: parsed.fingerprint,
        created_at: Timestamp(T0.0 + at),
    }
}

async fn keys_are_held_once_per_user_and_found_by_fingerprint(db: &Harness) {
    let store = db.migrated().await;
    let (org, alice) = user(store, None).await;
    let (_, bob) = user(store, Some(org)).await;
    let a1 = key(org, alice, ED25519, 0);
    let a2 = key(org, alice, ECDSA, 1);
    store.add_ssh_key(&a1, &ctx()).await.unwrap();
    store.add_ssh_key(&a2, &ctx()).await.unwrap();
    // The same key again, under another id: refused, nothing changed.
    assert!(matches!(
        store.add_ssh_key(&key(org, alice, ED25519, 2), &ctx()).await,
        Err(StoreError::Conflict(ref what)) if what == "ssh key"
    ));
    // Another user may hold the same key (a shared laptop).
    let b1 = key(org, bob, ED25519, 3);
    store.add_ssh_key(&b1, &ctx()).await.unwrap();
    assert_eq!(
        store.ssh_keys_of_user(alice).await.unwrap(),
        vec![a1.clone(), a2.clone()]
    );
    assert_eq!(
        store
            .ssh_keys_with_fingerprint(&a1.fingerprint)
            .await
            .unwrap(),
        vec![a1.clone(), b1.clone()]
    );
    // No user, no key.
    let orphan = key(org, UserId::from_uuid(uuid::Uuid::now_v7()), ECDSA, 4);
    assert!(matches!(
        store.add_ssh_key(&orphan, &ctx()).await,
        Err(StoreError::NotFound("user"))
    ));

    // Only the owner removes a key; removing twice finds nothing.
    let later = Timestamp(T0.0 + 10);
    assert!(!store
        .remove_ssh_key(bob, a1.id, later, &ctx())
        .await
        .unwrap());
    assert!(store
        .remove_ssh_key(alice, a1.id, later, &ctx())
        .await
        .unwrap());
    assert!(!store
        .remove_ssh_key(alice, a1.id, later, &ctx())
        .await
        .unwrap());
    assert_eq!(
        store.ssh_keys_of_user(alice).await.unwrap(),
        vec![a2.clone()]
    );
    assert_eq!(
        store
            .ssh_keys_with_fingerprint(&a1.fingerprint)
            .await
            .unwrap(),
        vec![b1]
    );

    // One audit row per change, with the request's id.
    let rows = store
        .list_audit(&AuditFilter {
            org_id: Some(org),
            resource_type: Some("ssh_key".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut actions: Vec<_> = rows.iter().map(|r| r.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "ssh_key.add",
            "ssh_key.add",
            "ssh_key.add",
            "ssh_key.remove"
        ]
    );
    assert!(rows
        .iter()
        .all(|r| r.request_id.as_deref() == Some("req-ssh")));

    // A deleted user's keys go with them.
    assert!(store.delete_user(org, alice).await.unwrap());
    assert!(store
        .ssh_keys_with_fingerprint(&a2.fingerprint)
        .await
        .unwrap()
        .is_empty());
}

conformance!(keys_are_held_once_per_user_and_found_by_fingerprint);
