//! One suite, two object stores: the local filesystem (`hood up`) and a
//! real S3-compatible server (`moto_server`, cluster mode's
//! `HOOD_STORAGE_URL=s3://…`). Objects go in whole and come back whole and
//! by range (a 20 MB one crosses the multipart threshold), a refused write
//! and a replaced version leave no bytes behind, multipart parts compose
//! into one object and leave no bytes once completed or aborted, and a
//! deleted namespace (an upload still open in it)
//! leaves none once the sweeper ran: the store holds exactly the live
//! objects' blobs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use hood_domain::audit::AuditContext;
use hood_domain::identity::Organization;
use hood_domain::storage::{Namespace, Quota, Visibility};
use hood_domain::{OrgId, Timestamp};
use hood_identity::master_key::MasterKey;
use hood_identity::presign::Presigner;
use hood_storage::{NewNamespace, Storage, StorageConfig, StorageError};
use hood_store::{IdentityStore as _, Store};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use std::sync::Arc;

fn ctx() -> AuditContext {
    AuditContext::system("test")
}

fn bytes(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

/// A body in 1 MiB chunks, as HTTP delivers it.
fn body(data: &Bytes) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(1024 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}

async fn read_all(storage: &Storage, ns: &Namespace, key: &str, range: Option<&str>) -> Vec<u8> {
    let read = storage.read_object(ns, key, range).await.unwrap();
    let parts: Vec<Bytes> = read.bytes.try_collect().await.unwrap();
    parts.concat()
}

/// Every path under the namespace's prefix in the object store.
async fn stored_paths(objects: &Arc<dyn ObjectStore>, ns: &Namespace) -> Vec<String> {
    let prefix = ObjectPath::from(format!("namespaces/{}", ns.id));
    let mut paths: Vec<String> = objects
        .list(Some(&prefix))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    paths.sort();
    paths
}

async fn suite(objects: Arc<dyn ObjectStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = hood_store::connect(&hood_testkit::sqlite_url(&dir))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: Timestamp(1_700_000_000_000),
    };
    store.create_org(&org).await.unwrap();
    let dyn_store: Arc<dyn Store> = store.clone();
    let storage = Storage::new(
        dyn_store,
        objects.clone(),
        Presigner::new(&MasterKey::generate()),
        Arc::new(hood_clock::SystemClock),
        StorageConfig::default(),
    );
    let quota = 30 * 1024 * 1024;
    let ns = storage
        .create_namespace(
            org.id,
            NewNamespace {
                name: "data".into(),
                visibility: Visibility::Private,
                quota: Some(Quota::new(quota, 10).unwrap()),
            },
            &ctx(),
        )
        .await
        .unwrap();

    // 20 MB whole and by range.
    let big = bytes(20 * 1024 * 1024, 7);
    let written = storage
        .put_object(&ns, "big/one.bin", None, None, body(&big))
        .await
        .unwrap();
    assert_eq!(written.object.size, big.len() as u64);
    let ns = storage.active_namespace(org.id, "data").await.unwrap();
    assert_eq!(read_all(&storage, &ns, "big/one.bin", None).await, big);
    assert_eq!(
        read_all(&storage, &ns, "big/one.bin", Some("bytes=9000000-9000999")).await,
        big[9_000_000..9_001_000]
    );
    assert_eq!(
        read_all(&storage, &ns, "big/one.bin", Some("bytes=-5")).await,
        big[big.len() - 5..]
    );
    assert_eq!(stored_paths(&objects, &ns).await.len(), 1);

    // Beyond the quota, announced or not: refused, nothing kept.
    let over = bytes(11 * 1024 * 1024, 9);
    let refused = storage
        .put_object(&ns, "over.bin", None, Some(over.len() as u64), body(&over))
        .await;
    assert!(
        matches!(refused, Err(StorageError::Quota(_))),
        "{refused:?}"
    );
    let refused = storage
        .put_object(&ns, "over.bin", None, None, body(&over))
        .await;
    assert!(
        matches!(refused, Err(StorageError::Quota(_))),
        "{refused:?}"
    );
    assert_eq!(
        stored_paths(&objects, &ns).await.len(),
        1,
        "refused bytes kept"
    );

    // A replacement leaves only the new version's bytes.
    let small = bytes(1000, 3);
    let replaced = storage
        .put_object(&ns, "big/one.bin", Some("text/plain"), None, body(&small))
        .await
        .unwrap();
    assert!(replaced.replaced.is_some());
    let ns = storage.active_namespace(org.id, "data").await.unwrap();
    assert_eq!(ns.usage.bytes, 1000);
    assert_eq!(read_all(&storage, &ns, "big/one.bin", None).await, small);
    assert_eq!(stored_paths(&objects, &ns).await.len(), 1);
    for i in 0..3 {
        storage
            .put_object(&ns, &format!("many/{i}"), None, None, body(&small))
            .await
            .unwrap();
    }
    let page = storage
        .list_objects(&ns, Some("many/"), None, 2)
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 2);
    assert_eq!(page.next_after.as_deref(), Some("many/1"));
    storage.delete_object(&ns, "many/0").await.unwrap();
    assert_eq!(stored_paths(&objects, &ns).await.len(), 3);

    // Folded at `/`: one folder level, a page of one at a time, no folder
    // listed twice; under a folder, its objects.
    let first = storage
        .list_folded(&ns, "", Some("/"), None, 1)
        .await
        .unwrap();
    assert_eq!(first.prefixes, ["big/"]);
    assert!(first.objects.is_empty());
    assert_eq!(first.next_after.as_deref(), Some("big/"));
    let second = storage
        .list_folded(&ns, "", Some("/"), first.next_after.as_deref(), 1)
        .await
        .unwrap();
    assert_eq!(second.prefixes, ["many/"]);
    assert_eq!(second.next_after, None);
    let inside = storage
        .list_folded(&ns, "many/", Some("/"), None, 10)
        .await
        .unwrap();
    let keys: Vec<&str> = inside.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["many/1", "many/2"]);
    assert!(inside.prefixes.is_empty());

    // Multipart: parts are blobs until completion composes them in order
    // into one object (the parts' bytes then go); an aborted upload leaves
    // nothing; an open one is ended by its namespace's deletion.
    let upload = storage
        .create_upload(&ns, "parts/whole.bin", Some("application/x-tar"))
        .await
        .unwrap();
    let (first, second) = (bytes(5 * 1024 * 1024, 1), bytes(1234, 2));
    let p2 = storage
        .put_part(&upload, 2, None, body(&second))
        .await
        .unwrap();
    let p1 = storage
        .put_part(&upload, 1, Some(first.len() as u64), body(&first))
        .await
        .unwrap();
    assert_eq!(stored_paths(&objects, &ns).await.len(), 3 + 2);
    let refused = storage
        .complete_upload(&ns, &upload, &[(2, None), (1, None)])
        .await;
    assert!(
        matches!(refused, Err(StorageError::Completion(_))),
        "{refused:?}"
    );
    let done = storage
        .complete_upload(
            &ns,
            &upload,
            &[
                (1, Some(format!("\"{}\"", p1.sha256))),
                (2, Some(p2.sha256.clone())),
            ],
        )
        .await
        .unwrap();
    assert_eq!(done.object.size, (first.len() + second.len()) as u64);
    assert_eq!(done.object.content_type, "application/x-tar");
    let ns = storage.active_namespace(org.id, "data").await.unwrap();
    assert_eq!(
        read_all(&storage, &ns, "parts/whole.bin", None).await,
        [first.as_ref(), second.as_ref()].concat()
    );
    assert_eq!(stored_paths(&objects, &ns).await.len(), 4, "parts deleted");
    assert!(matches!(
        storage.upload(&ns, &upload.id.to_string()).await,
        Err(StorageError::NotFound("upload"))
    ));
    let aborted = storage
        .create_upload(&ns, "parts/aborted", None)
        .await
        .unwrap();
    storage
        .put_part(&aborted, 1, None, body(&second))
        .await
        .unwrap();
    storage.abort_upload(&aborted).await.unwrap();
    assert_eq!(stored_paths(&objects, &ns).await.len(), 4);
    let open = storage
        .create_upload(&ns, "parts/open", None)
        .await
        .unwrap();
    storage
        .put_part(&open, 1, None, body(&second))
        .await
        .unwrap();
    assert_eq!(stored_paths(&objects, &ns).await.len(), 5);

    // A deleted namespace leaves nothing once swept.
    storage
        .delete_namespace(org.id, "data", &ctx())
        .await
        .unwrap();
    let first_pass = storage.sweep_once().await.unwrap();
    let report = storage.sweep_once().await.unwrap();
    assert_eq!(first_pass.objects_purged + report.objects_purged, 4);
    assert_eq!(report.namespaces_removed, 1);
    assert_eq!(first_pass.blobs_deleted + report.blobs_deleted, 5);
    assert!(stored_paths(&objects, &ns).await.is_empty());
    assert!(matches!(
        storage.namespace(org.id, "data").await,
        Err(StorageError::NotFound("namespace"))
    ));
}

#[tokio::test]
async fn the_suite_on_the_local_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    suite(objects).await;
}

#[tokio::test]
async fn the_suite_on_an_s3_server() {
    let Some(server) = hood_testkit::s3::S3Server::start("the_suite_on_an_s3_server") else {
        return;
    };
    server.create_bucket("hood-storage");
    let objects: Arc<dyn ObjectStore> = Arc::new(server.bucket("hood-storage"));
    suite(objects).await;
}
