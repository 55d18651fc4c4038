//! Service account conformance on SQLite and PostgreSQL: names unique per
//! organization among live accounts, grants replaced whole, keys bound to
//! their account, and a deletion that revokes every key in the same
//! transaction and leaves a key that could still be looked up with no
//! grants at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use hood_domain::audit::AuditContext;
use hood_domain::identity::{ApiKey, Organization, Role, User};
use hood_domain::scope::{Action, Grant, Grants, S3AccessKey, ServiceAccount};
use hood_domain::{ApiKeyId, OrgId, ServiceAccountId, Timestamp, UserId};
use hood_store::audit::AuditFilter;
use hood_store::{Store, StoreError};
use support::Harness;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn ctx() -> AuditContext {
    AuditContext {
        actor: "user:test".into(),
        request_id: Some("req-sa".into()),
        reason: None,
    }
}

async fn org_and_owner(store: &dyn Store) -> (OrgId, UserId) {
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: format!("org-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        name: "sa".into(),
        created_at: T0,
    };
    store.create_org(&org).await.unwrap();
    let user = User {
        id: UserId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org.id,
        email: format!("{}@sa.test", uuid::Uuid::new_v4().simple()),
        display_name: "Owner".into(),
        role: Role::Admin,
        platform_admin: false,
        password_hash: None,
        disabled: false,
        created_at: T0,
    };
    store.create_user(&user).await.unwrap();
    (org.id, user.id)
}

fn grants(scope: &str, actions: &[Action]) -> Grants {
    Grants(vec![Grant::new(
        scope.parse().unwrap(),
        actions.iter().copied(),
    )
    .unwrap()])
}

fn account(org: OrgId, owner: UserId, name: &str) -> ServiceAccount {
    ServiceAccount {
        id: ServiceAccountId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        owner_id: owner,
        name: name.into(),
        grants: grants("storage.acme.namespaces.logs", &[Action::Read]),
        created_at: T0,
    }
}

fn key(org: OrgId, owner: UserId) -> ApiKey {
    let prefix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    ApiKey {
        id: ApiKeyId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        user_id: owner,
        name: "sa key".into(),
        prefix: prefix.clone(),
        secret_hash: format!("HASH-{prefix}"),
        role: Role::Admin,
        scopes: vec![],
        created_at: T0,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    }
}

async fn accounts_are_unique_among_the_live_and_their_grants_replace_whole(db: &Harness) {
    let store = db.migrated().await;
    let (org, owner) = org_and_owner(store).await;
    let reader = account(org, owner, "reader");
    store.create_service_account(&reader, &ctx()).await.unwrap();
    let again = store
        .create_service_account(&account(org, owner, "reader"), &ctx())
        .await;
    assert!(
        matches!(&again, Err(StoreError::Conflict(what)) if what == "service account"),
        "{again:?}"
    );
    assert_eq!(
        store.service_account(org, reader.id).await.unwrap(),
        Some(reader.clone())
    );
    let wider = grants("storage.acme", &[Action::Read, Action::Create]);
    let updated = store
        .set_service_account_grants(org, reader.id, &wider, T0, &ctx())
        .await
        .unwrap();
    assert_eq!(updated.grants, wider);
    assert_eq!(
        store.list_service_accounts(org).await.unwrap(),
        vec![updated.clone()]
    );
    // Another organization's id is not found.
    let (other, _) = org_and_owner(store).await;
    assert!(store
        .service_account(other, reader.id)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store
            .set_service_account_grants(other, reader.id, &wider, T0, &ctx())
            .await,
        Err(StoreError::NotFound("service account"))
    ));
    // Deleted, its name is free again.
    assert!(store
        .delete_service_account(org, reader.id, T0, &ctx())
        .await
        .unwrap());
    assert!(!store
        .delete_service_account(org, reader.id, T0, &ctx())
        .await
        .unwrap());
    store
        .create_service_account(&account(org, owner, "reader"), &ctx())
        .await
        .unwrap();
    // Each change that took power from the account is on the outbox once
    // (the refused and the repeated ones wrote nothing), naming its org.
    assert_eq!(
        credential_events(store, &reader.id.to_string()).await,
        [
            (
                "identity.service_account.updated".to_owned(),
                org.to_string()
            ),
            (
                "identity.service_account.deleted".to_owned(),
                org.to_string()
            ),
        ]
    );
}

/// The outbox's credential events about one service account, in order:
/// (subject, org id of the payload).
async fn credential_events(store: &dyn Store, account: &str) -> Vec<(String, String)> {
    store
        .outbox_pending(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event.aggregate_id == account)
        .map(|r| {
            (
                r.event.subject,
                r.event.payload["org_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

async fn deleting_an_account_revokes_its_keys_and_leaves_them_no_grants(db: &Harness) {
    let store = db.migrated().await;
    let (org, owner) = org_and_owner(store).await;
    let reader = account(org, owner, "reader");
    store.create_service_account(&reader, &ctx()).await.unwrap();
    let k = key(org, owner);
    store
        .create_service_account_key(reader.id, &k, &ctx())
        .await
        .unwrap();
    let own = key(org, owner);
    store.create_api_key(&own).await.unwrap();
    assert_eq!(
        store.service_account_of_key(k.id).await.unwrap(),
        Some(reader.clone())
    );
    assert_eq!(store.service_account_of_key(own.id).await.unwrap(), None);

    assert!(store
        .delete_service_account(org, reader.id, T0.plus_secs(5), &ctx())
        .await
        .unwrap());
    let revoked = store
        .find_api_key_by_prefix(&k.prefix)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(T0.plus_secs(5)));
    let untouched = store
        .find_api_key_by_prefix(&own.prefix)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.revoked_at, None, "the owner's own key stays");
    let dead = store.service_account_of_key(k.id).await.unwrap().unwrap();
    assert_eq!(dead.grants, Grants::default());
    // No key for a deleted account.
    assert!(matches!(
        store
            .create_service_account_key(reader.id, &key(org, owner), &ctx())
            .await,
        Err(StoreError::NotFound("service account"))
    ));
    let audit = store
        .list_audit(&AuditFilter {
            resource_id: Some(reader.id.to_string()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "service_account.create",
            "service_account.delete",
            "service_account.key.create"
        ]
    );
    assert!(
        !audit.iter().any(|a| a
            .after
            .as_ref()
            .is_some_and(|v| v.to_string().contains("HASH-"))),
        "no secret hash in the audit log"
    );
}

fn s3_key(org: OrgId, account: ServiceAccountId) -> S3AccessKey {
    S3AccessKey {
        access_key_id: format!(
            "HOOD{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase()
        ),
        service_account_id: account,
        org_id: org,
        created_at: T0,
        revoked_at: None,
    }
}

async fn s3_keys_name_their_principal_and_die_with_their_account(db: &Harness) {
    let store = db.migrated().await;
    let (org, owner) = org_and_owner(store).await;
    let writer = account(org, owner, "s3-writer");
    store.create_service_account(&writer, &ctx()).await.unwrap();
    let first = s3_key(org, writer.id);
    let second = S3AccessKey {
        created_at: T0.plus_secs(1),
        ..s3_key(org, writer.id)
    };
    store
        .create_s3_key(&first, b"sealed-1", &ctx())
        .await
        .unwrap();
    store
        .create_s3_key(&second, b"sealed-2", &ctx())
        .await
        .unwrap();
    let principal = store
        .s3_principal(&first.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(principal.key, first);
    assert_eq!(principal.sealed_secret, b"sealed-1");
    assert_eq!(principal.account, writer);
    assert_eq!(principal.owner_role, Role::Admin);
    assert!(!principal.owner_disabled);
    assert!(principal.org_slug.starts_with("org-"));
    assert!(store
        .s3_principal("HOODNOSUCHKEY0000000")
        .await
        .unwrap()
        .is_none());
    let listed = store.list_s3_keys(org, writer.id).await.unwrap();
    assert_eq!(listed, [second.clone(), first.clone()], "newest first");

    // Revoked one by one, or all with their account.
    assert!(store
        .revoke_s3_key(
            org,
            writer.id,
            &first.access_key_id,
            T0.plus_secs(2),
            &ctx()
        )
        .await
        .unwrap());
    assert!(!store
        .revoke_s3_key(
            org,
            writer.id,
            &first.access_key_id,
            T0.plus_secs(3),
            &ctx()
        )
        .await
        .unwrap());
    let revoked = store
        .s3_principal(&first.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.key.revoked_at, Some(T0.plus_secs(2)));
    assert!(store
        .delete_service_account(org, writer.id, T0.plus_secs(4), &ctx())
        .await
        .unwrap());
    let orphan = store
        .s3_principal(&second.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(orphan.key.revoked_at, Some(T0.plus_secs(4)));
    assert_eq!(orphan.account.grants, Grants::default());
    assert_eq!(
        credential_events(store, &writer.id.to_string()).await,
        [
            ("identity.s3_key.revoked".to_owned(), org.to_string()),
            (
                "identity.service_account.deleted".to_owned(),
                org.to_string()
            ),
        ]
    );
    assert!(matches!(
        store
            .create_s3_key(&s3_key(org, writer.id), b"x", &ctx())
            .await,
        Err(StoreError::NotFound("service account"))
    ));
    // The audit names the key ids, never a secret.
    let audit = store
        .list_audit(&AuditFilter {
            resource_id: Some(writer.id.to_string()),
            limit: 20,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "service_account.create",
            "service_account.delete",
            "service_account.s3_key.create",
            "service_account.s3_key.create",
            "service_account.s3_key.revoke"
        ]
    );
    assert!(!audit
        .iter()
        .any(|a| format!("{:?}{:?}", a.before, a.after).contains("sealed")));
}

conformance!(
    s3_keys_name_their_principal_and_die_with_their_account,
    accounts_are_unique_among_the_live_and_their_grants_replace_whole,
    deleting_an_account_revokes_its_keys_and_leaves_them_no_grants,
);
