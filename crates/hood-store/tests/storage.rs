//! Storage catalog conformance on SQLite and PostgreSQL: namespaces unique
//! per organization and audited, quotas exact under concurrent writes,
//! listings in byte order by prefix and page, deletion in batches, and
//! blobs that are either an object's bytes or swept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use hood_domain::audit::AuditContext;
use hood_domain::identity::Organization;
use hood_domain::storage::{
    MultipartUpload, Namespace, NamespaceName, NamespaceState, ObjectKey, Quota, QuotaExceeded,
    StoredObject, UploadPart, Usage, Visibility,
};
use hood_domain::{BlobId, NamespaceId, OrgId, Timestamp, UploadId};
use hood_store::audit::AuditFilter;
use hood_store::storage::{ObjectListing, UploadListing, WriteRefused};
use hood_store::{Store, StoreError};
use std::sync::Arc;
use support::Harness;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn ctx() -> AuditContext {
    AuditContext {
        actor: "user:test".into(),
        request_id: Some("req-storage".into()),
        reason: None,
    }
}

async fn org(store: &dyn Store) -> OrgId {
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: format!("org-{}", uuid::Uuid::new_v4().simple()),
        name: "storage".into(),
        created_at: T0,
    };
    store.create_org(&org).await.unwrap();
    org.id
}

fn namespace(org: OrgId, name: &str, max_bytes: u64, max_objects: u64) -> Namespace {
    Namespace {
        id: NamespaceId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        name: NamespaceName::parse(name).unwrap(),
        visibility: Visibility::Private,
        quota: Quota::new(max_bytes, max_objects).unwrap(),
        usage: Usage::default(),
        state: NamespaceState::Active,
        created_at: T0,
    }
}

/// Records a blob and commits it as `key` with `size` bytes.
async fn write(
    store: &dyn Store,
    ns: NamespaceId,
    key: &str,
    size: u64,
) -> Result<hood_store::storage::ObjectWritten, WriteRefused> {
    let blob = BlobId::from_uuid(uuid::Uuid::now_v7());
    store.start_blob(blob, ns, T0).await.unwrap();
    let object = StoredObject {
        namespace_id: ns,
        key: ObjectKey::parse(key).unwrap(),
        blob_id: blob,
        size,
        sha256: format!("{size:064x}"),
        md5: Some(format!("{size:032x}")),
        content_type: "application/octet-stream".into(),
        created_at: T0,
    };
    store.commit_object(&object, T0).await.unwrap()
}

async fn namespaces_are_unique_per_organization_and_audited(db: &Harness) {
    let store = db.migrated().await;
    let (a, b) = (org(store).await, org(store).await);
    let logs = namespace(a, "logs", 1000, 10);
    store.create_namespace(&logs, &ctx()).await.unwrap();
    let again = store
        .create_namespace(&namespace(a, "logs", 1000, 10), &ctx())
        .await;
    assert!(
        matches!(&again, Err(StoreError::Conflict(what)) if what == "namespace"),
        "{again:?}"
    );
    // Another organization may use the name.
    store
        .create_namespace(&namespace(b, "logs", 1000, 10), &ctx())
        .await
        .unwrap();
    let found = store
        .namespace_by_name(a, &NamespaceName::parse("logs").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, logs);
    // By the organization's slug (anonymous S3 reads): that
    // organization's namespace of the name, not another's.
    let slug = store.get_org(a).await.unwrap().unwrap().slug;
    let logs_name = NamespaceName::parse("logs").unwrap();
    let by_slug = store
        .namespace_by_org_slug(&slug, &logs_name)
        .await
        .unwrap();
    assert_eq!(by_slug, Some(logs.clone()));
    let other_slug = store.get_org(b).await.unwrap().unwrap().slug;
    let theirs = store
        .namespace_by_org_slug(&other_slug, &logs_name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(theirs.org_id, b);
    assert_ne!(theirs.id, logs.id);
    assert_eq!(
        store
            .namespace_by_org_slug("no-such-org", &logs_name)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.list_namespaces(a).await.unwrap(), vec![logs.clone()]);
    let audit = store
        .list_audit(&AuditFilter {
            org_id: Some(a),
            action: Some("storage.namespace.create".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "one row for the one creation");
    assert_eq!(audit[0].resource_id, logs.id.to_string());
    assert_eq!(audit[0].request_id.as_deref(), Some("req-storage"));
}

async fn writes_keep_usage_exact_and_stop_at_the_quota(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let ns = namespace(org, "quota", 100, 3);
    store.create_namespace(&ns, &ctx()).await.unwrap();

    let first = write(store, ns.id, "a", 60).await.unwrap();
    assert_eq!(
        first.usage,
        Usage {
            bytes: 60,
            objects: 1
        }
    );
    assert_eq!(
        write(store, ns.id, "b", 41).await.unwrap_err(),
        WriteRefused::Quota(QuotaExceeded::Bytes {
            limit: 100,
            used: 60,
            needed: 41
        })
    );
    // Exactly at the limit is allowed.
    let full = write(store, ns.id, "b", 40).await.unwrap();
    assert_eq!(
        full.usage,
        Usage {
            bytes: 100,
            objects: 2
        }
    );
    // Replacing frees the old version's bytes and makes its blob garbage.
    let replaced = write(store, ns.id, "a", 10).await.unwrap();
    assert_eq!(
        replaced.usage,
        Usage {
            bytes: 50,
            objects: 2
        }
    );
    let old_blob = replaced.replaced.as_ref().unwrap().blob_id;
    assert_eq!(old_blob, first.object.blob_id);
    write(store, ns.id, "c", 0).await.unwrap();
    assert_eq!(
        write(store, ns.id, "d", 1).await.unwrap_err(),
        WriteRefused::Quota(QuotaExceeded::Objects { limit: 3 })
    );
    let stored = store.namespace(ns.id).await.unwrap().unwrap();
    assert_eq!(
        stored.usage,
        Usage {
            bytes: 50,
            objects: 3
        }
    );

    // Deleting frees bytes and the count; the blob is garbage.
    let gone = store
        .delete_object(ns.id, &ObjectKey::parse("b").unwrap(), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.size, 40);
    assert!(store
        .delete_object(ns.id, &ObjectKey::parse("b").unwrap(), T0)
        .await
        .unwrap()
        .is_none());
    let stored = store.namespace(ns.id).await.unwrap().unwrap();
    assert_eq!(
        stored.usage,
        Usage {
            bytes: 10,
            objects: 2
        }
    );
    let mut garbage: Vec<BlobId> = store
        .sweepable_blobs(T0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    garbage.sort();
    let mut expected = vec![old_blob, gone.blob_id];
    expected.sort();
    // The refused writes' blobs were never committed: still `writing`,
    // not yet abandoned at T0.
    assert_eq!(garbage, expected);
    store.forget_blobs(&garbage).await.unwrap();
    assert!(store.sweepable_blobs(T0, 100).await.unwrap().is_empty());
}

async fn concurrent_writes_never_exceed_the_quota(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let ns = namespace(org, "race", 100, 1000);
    store.create_namespace(&ns, &ctx()).await.unwrap();
    let shared: Arc<dyn Store> = db.store.clone();
    let writers = (0..10).map(|i| {
        let store = shared.clone();
        tokio::spawn(async move { write(&*store, ns.id, &format!("k{i}"), 30).await })
    });
    let mut admitted = 0;
    for w in writers {
        if w.await.unwrap().is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3, "30-byte writes into 100 bytes");
    let stored = store.namespace(ns.id).await.unwrap().unwrap();
    assert_eq!(
        stored.usage,
        Usage {
            bytes: 90,
            objects: 3
        }
    );
}

async fn listings_follow_byte_order_by_prefix_and_page(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let ns = namespace(org, "list", 10_000, 100);
    store.create_namespace(&ns, &ctx()).await.unwrap();
    for key in [
        "logs/b", "logs/a", "logs0", "Logs/x", "logs/é", "logs/z/1", "other",
    ] {
        write(store, ns.id, key, 1).await.unwrap();
    }
    let keys = |objects: Vec<StoredObject>| -> Vec<String> {
        objects.into_iter().map(|o| o.key.to_string()).collect()
    };
    let all = store
        .list_objects(
            ns.id,
            &ObjectListing {
                limit: 100,
                ..ObjectListing::default()
            },
        )
        .await
        .unwrap();
    assert!(
        all.iter()
            .all(|o| o.md5.as_deref() == Some(format!("{:032x}", 1).as_str())),
        "the MD5 is stored and read back"
    );
    // UTF-8 byte order: upper case first, `é` after every ASCII letter.
    assert_eq!(
        keys(all),
        ["Logs/x", "logs/a", "logs/b", "logs/z/1", "logs/é", "logs0", "other"]
    );
    let first = store
        .list_objects(
            ns.id,
            &ObjectListing {
                prefix: "logs/".into(),
                after: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(keys(first), ["logs/a", "logs/b"]);
    let second = store
        .list_objects(
            ns.id,
            &ObjectListing {
                prefix: "logs/".into(),
                after: Some("logs/b".into()),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(keys(second), ["logs/z/1", "logs/é"]);
    let last = store
        .list_objects(
            ns.id,
            &ObjectListing {
                prefix: "logs/".into(),
                after: Some("logs/é".into()),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert!(last.is_empty());
}

async fn deletion_purges_in_batches_then_removes_the_namespace(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let ns = namespace(org, "doomed", 10_000, 100);
    store.create_namespace(&ns, &ctx()).await.unwrap();
    let mut blobs = vec![];
    for i in 0..5 {
        blobs.push(
            write(store, ns.id, &format!("o{i}"), 7)
                .await
                .unwrap()
                .object
                .blob_id,
        );
    }
    let name = NamespaceName::parse("doomed").unwrap();
    let deleting = store
        .begin_namespace_deletion(org, &name, T0, &ctx())
        .await
        .unwrap();
    assert_eq!(deleting.state, NamespaceState::Deleting);
    // Asking again changes nothing; writes are refused from now on.
    assert_eq!(
        store
            .begin_namespace_deletion(org, &name, T0, &ctx())
            .await
            .unwrap(),
        deleting
    );
    assert_eq!(
        write(store, ns.id, "late", 1).await.unwrap_err(),
        WriteRefused::NoNamespace
    );
    assert_eq!(
        store.deleting_namespaces(10).await.unwrap(),
        vec![deleting.clone()]
    );
    assert_eq!(
        store.purge_namespace(ns.id, 2, T0).await.unwrap(),
        (2, false)
    );
    let halfway = store.namespace(ns.id).await.unwrap().unwrap();
    assert_eq!(
        halfway.usage,
        Usage {
            bytes: 21,
            objects: 3
        }
    );
    assert_eq!(
        store.purge_namespace(ns.id, 2, T0).await.unwrap(),
        (2, false)
    );
    assert_eq!(
        store.purge_namespace(ns.id, 2, T0).await.unwrap(),
        (1, true)
    );
    assert!(store.namespace(ns.id).await.unwrap().is_none());
    assert_eq!(
        store.purge_namespace(ns.id, 2, T0).await.unwrap(),
        (0, true)
    );
    // The name is free again.
    store
        .create_namespace(&namespace(org, "doomed", 10, 1), &ctx())
        .await
        .unwrap();
    // Every object's blob, and the refused late write's abandoned one
    // (swept once it is old enough), is left to the sweeper.
    let mut swept: Vec<BlobId> = store
        .sweepable_blobs(T0.plus_millis(1), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(swept.len(), 6);
    swept.retain(|b| blobs.contains(b));
    assert_eq!(swept.len(), 5);
    let audit = store
        .list_audit(&AuditFilter {
            org_id: Some(org),
            resource_id: Some(ns.id.to_string()),
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
            "storage.namespace.create",
            "storage.namespace.delete",
            "storage.namespace.purge"
        ]
    );
}

async fn an_abandoned_upload_is_swept_and_cannot_commit_afterwards(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let ns = namespace(org, "slow", 10_000, 100);
    store.create_namespace(&ns, &ctx()).await.unwrap();
    let blob = BlobId::from_uuid(uuid::Uuid::now_v7());
    store.start_blob(blob, ns.id, T0).await.unwrap();
    // Not abandoned yet at its own start time.
    assert!(store.sweepable_blobs(T0, 10).await.unwrap().is_empty());
    let swept = store.sweepable_blobs(T0.plus_secs(1), 10).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].id, blob);
    let late = StoredObject {
        namespace_id: ns.id,
        key: ObjectKey::parse("late").unwrap(),
        blob_id: blob,
        size: 5,
        sha256: "0".repeat(64),
        md5: None,
        content_type: "text/plain".into(),
        created_at: T0,
    };
    let refused = store.commit_object(&late, T0.plus_secs(2)).await;
    assert!(
        matches!(refused, Err(StoreError::NotFound("upload"))),
        "{refused:?}"
    );
    assert!(store
        .object(ns.id, &ObjectKey::parse("late").unwrap())
        .await
        .unwrap()
        .is_none());
    let stored = store.namespace(ns.id).await.unwrap().unwrap();
    assert_eq!(stored.usage, Usage::default());
}

/// Records a blob and commits it as part `number` of `upload`.
async fn put_part(store: &dyn Store, ns: NamespaceId, upload: UploadId, number: u32) -> UploadPart {
    let blob = BlobId::from_uuid(uuid::Uuid::now_v7());
    store.start_blob(blob, ns, T0).await.unwrap();
    let part = UploadPart {
        upload_id: upload,
        number,
        blob_id: blob,
        size: u64::from(number) * 10,
        sha256: format!("{number:064x}"),
        md5: Some(format!("{number:032x}")),
    };
    store.commit_part(&part, T0).await.unwrap();
    part
}

async fn multipart_parts_are_blobs_until_the_upload_ends(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let ns = namespace(org, "parts", 10_000, 100);
    store.create_namespace(&ns, &ctx()).await.unwrap();
    let upload = MultipartUpload {
        id: UploadId::from_uuid(uuid::Uuid::now_v7()),
        namespace_id: ns.id,
        key: ObjectKey::parse("big/object").unwrap(),
        content_type: "application/octet-stream".into(),
        created_at: T0,
    };
    store.create_upload(&upload).await.unwrap();
    assert_eq!(
        store.upload(ns.id, upload.id).await.unwrap(),
        Some(upload.clone())
    );
    let first = put_part(store, ns.id, upload.id, 1).await;
    let _second = put_part(store, ns.id, upload.id, 2).await;
    // A part uploaded again replaces the earlier one, whose blob is garbage.
    let again = put_part(store, ns.id, upload.id, 1).await;
    let parts = store.upload_parts(upload.id).await.unwrap();
    assert_eq!(parts.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(parts[0].blob_id, again.blob_id);
    assert_eq!(parts[0], again, "every field read back, the MD5 too");
    assert_eq!(
        parts[1].md5.as_deref(),
        Some(format!("{:032x}", 2).as_str())
    );
    let garbage = store.sweepable_blobs(T0, 10).await.unwrap();
    assert_eq!(
        garbage.iter().map(|b| b.id).collect::<Vec<_>>(),
        [first.blob_id]
    );
    store.forget_blobs(&[first.blob_id]).await.unwrap();
    // Parts count against no quota and are no objects.
    let stored = store.namespace(ns.id).await.unwrap().unwrap();
    assert_eq!(stored.usage, Usage::default());
    // Stale uploads are found by age; ending one turns its parts garbage.
    assert!(store.stale_uploads(T0, 10).await.unwrap().is_empty());
    assert_eq!(
        store.stale_uploads(T0.plus_secs(1), 10).await.unwrap(),
        std::slice::from_ref(&upload)
    );
    assert!(store.end_upload(upload.id, T0).await.unwrap());
    assert!(!store.end_upload(upload.id, T0).await.unwrap());
    assert_eq!(store.sweepable_blobs(T0, 10).await.unwrap().len(), 2);
    assert!(store.upload(ns.id, upload.id).await.unwrap().is_none());
    // A part for an ended upload is refused (and its blob stays writing,
    // for the sweeper).
    let late = BlobId::from_uuid(uuid::Uuid::now_v7());
    store.start_blob(late, ns.id, T0).await.unwrap();
    let refused = store
        .commit_part(
            &UploadPart {
                upload_id: upload.id,
                number: 3,
                blob_id: late,
                size: 1,
                sha256: "0".repeat(64),
                md5: None,
            },
            T0,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotFound("upload"))),
        "{refused:?}"
    );
}

async fn deleting_a_namespace_ends_its_uploads_first(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let ns = namespace(org, "open-uploads", 10_000, 100);
    store.create_namespace(&ns, &ctx()).await.unwrap();
    write(store, ns.id, "kept-until-purge", 5).await.unwrap();
    let upload = MultipartUpload {
        id: UploadId::from_uuid(uuid::Uuid::now_v7()),
        namespace_id: ns.id,
        key: ObjectKey::parse("in-flight").unwrap(),
        content_type: "application/octet-stream".into(),
        created_at: T0,
    };
    store.create_upload(&upload).await.unwrap();
    put_part(store, ns.id, upload.id, 1).await;
    store
        .begin_namespace_deletion(org, &ns.name, T0, &ctx())
        .await
        .unwrap();
    // No new upload into a namespace being deleted.
    let refused = store
        .create_upload(&MultipartUpload {
            id: UploadId::from_uuid(uuid::Uuid::now_v7()),
            ..upload.clone()
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotFound("namespace"))),
        "{refused:?}"
    );
    // The first pass ends the upload; the next ones purge the objects.
    assert_eq!(
        store.purge_namespace(ns.id, 10, T0).await.unwrap(),
        (0, false)
    );
    assert!(store.upload(ns.id, upload.id).await.unwrap().is_none());
    assert_eq!(
        store.purge_namespace(ns.id, 10, T0).await.unwrap(),
        (1, true)
    );
    assert!(store.namespace(ns.id).await.unwrap().is_none());
    // Every blob (the object's and the part's) is garbage for the sweeper.
    assert_eq!(store.sweepable_blobs(T0, 10).await.unwrap().len(), 2);
}

async fn uploads_list_by_key_then_upload_in_pages(db: &Harness) {
    let store = db.migrated().await;
    let org = org(store).await;
    let ns = namespace(org, "pending", 10_000, 100);
    store.create_namespace(&ns, &ctx()).await.unwrap();
    let other = namespace(org, "elsewhere", 10_000, 100);
    store.create_namespace(&other, &ctx()).await.unwrap();
    let start = |ns: NamespaceId, key: &str| MultipartUpload {
        id: UploadId::from_uuid(uuid::Uuid::now_v7()),
        namespace_id: ns,
        key: ObjectKey::parse(key).unwrap(),
        content_type: "application/octet-stream".into(),
        created_at: T0,
    };
    // Two uploads of `logs/b`, one each of `logs/a`, `logs0` and `x`; one
    // in another namespace. Ids are time-ordered, so each key's uploads
    // list in the order they started.
    let mut made = Vec::new();
    for key in ["logs/b", "x", "logs/a", "logs/b", "logs0"] {
        let upload = start(ns.id, key);
        store.create_upload(&upload).await.unwrap();
        made.push(upload);
    }
    store
        .create_upload(&start(other.id, "logs/a"))
        .await
        .unwrap();
    let list = |prefix: &str, after_key: Option<&str>, after_upload: Option<UploadId>, limit| {
        let listing = UploadListing {
            prefix: prefix.into(),
            after_key: after_key.map(str::to_owned),
            after_upload,
            limit,
        };
        async move {
            store
                .list_uploads(ns.id, &listing)
                .await
                .unwrap()
                .into_iter()
                .map(|u| (u.key.to_string(), u.id))
                .collect::<Vec<_>>()
        }
    };
    let (x, a, l0) = (made[1].id, made[2].id, made[4].id);
    // A key's uploads list in id order.
    let (b1, b2) = if made[0].id.to_string() < made[3].id.to_string() {
        (made[0].id, made[3].id)
    } else {
        (made[3].id, made[0].id)
    };
    let key = |k: &str| k.to_owned();
    assert_eq!(
        list("", None, None, 100).await,
        [
            (key("logs/a"), a),
            (key("logs/b"), b1),
            (key("logs/b"), b2),
            (key("logs0"), l0),
            (key("x"), x)
        ]
    );
    assert_eq!(
        list("logs/", None, None, 100).await,
        [(key("logs/a"), a), (key("logs/b"), b1), (key("logs/b"), b2)]
    );
    // Pages: after a key, or within a key after one of its uploads.
    assert_eq!(
        list("logs/", None, None, 2).await,
        [(key("logs/a"), a), (key("logs/b"), b1)]
    );
    assert_eq!(
        list("logs/", Some("logs/b"), Some(b1), 2).await,
        [(key("logs/b"), b2)]
    );
    assert_eq!(list("logs/", Some("logs/b"), None, 2).await, []);
    assert_eq!(
        list("", Some("logs/b"), None, 100).await,
        [(key("logs0"), l0), (key("x"), x)]
    );
    // An ended upload is no longer listed.
    assert!(store.end_upload(b1, T0).await.unwrap());
    assert_eq!(list("logs/b", None, None, 100).await, [(key("logs/b"), b2)]);
}

conformance!(
    uploads_list_by_key_then_upload_in_pages,
    multipart_parts_are_blobs_until_the_upload_ends,
    deleting_a_namespace_ends_its_uploads_first,
    namespaces_are_unique_per_organization_and_audited,
    writes_keep_usage_exact_and_stop_at_the_quota,
    concurrent_writes_never_exceed_the_quota,
    listings_follow_byte_order_by_prefix_and_page,
    deletion_purges_in_batches_then_removes_the_namespace,
    an_abandoned_upload_is_swept_and_cannot_commit_afterwards,
);
