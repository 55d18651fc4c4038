//! The artifact store on the local file system (what `hood up` uses), with
//! a real catalog: SQLite, and PostgreSQL where `HOOD_TEST_POSTGRES_URL` is
//! set. S3 is covered by URL/config unit tests only: there is no S3 server
//! in this environment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use futures::StreamExt;
use hood_artifacts::{
    ArtifactError, ArtifactRecord, ArtifactStore, PushOutcome, PushRequest, StoreLocation,
};
use hood_domain::UserId;
use hood_store::Store;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// An artifact store in a temporary directory over a fresh catalog.
struct Fixture {
    artifacts: ArtifactStore,
    catalog: Arc<dyn Store>,
    root: PathBuf,
    _dir: tempfile::TempDir,
    _pg: Option<hood_testkit::PgDatabase>,
}

impl Fixture {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let catalog = hood_store::connect(&hood_testkit::sqlite_url(&dir))
            .await
            .unwrap();
        Self::with_catalog(dir, catalog, None).await
    }

    async fn postgres(test: &str) -> Option<Self> {
        let pg = hood_testkit::PgDatabase::create(test).await?;
        let catalog = hood_store::connect(&pg.url).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        Some(Self::with_catalog(dir, catalog, Some(pg)).await)
    }

    async fn with_catalog(
        dir: tempfile::TempDir,
        catalog: Arc<dyn Store>,
        pg: Option<hood_testkit::PgDatabase>,
    ) -> Self {
        catalog.migrate().await.unwrap();
        let location = StoreLocation::embedded(dir.path());
        let artifacts = ArtifactStore::from_location(&location, catalog.clone()).unwrap();
        let root = dir.path().join("artifacts").canonicalize().unwrap();
        Self {
            artifacts,
            catalog,
            root,
            _dir: dir,
            _pg: pg,
        }
    }

    /// Every file under the store's root, relative, sorted.
    fn files(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(base, &path, out);
                } else {
                    out.push(path.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(sha256)
    }

    async fn read_all(&self, name: &str, version: &str) -> (ArtifactRecord, Vec<u8>, usize) {
        let (record, mut stream) = self.artifacts.open(name, version).await.unwrap();
        let mut out = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
            chunks += 1;
        }
        (record, out, chunks)
    }

    async fn pushed_events(&self) -> usize {
        self.catalog
            .outbox_pending(1000)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.event.subject == "artifact.pushed")
            .count()
    }
}

/// Deterministic pseudo-random bytes (xorshift), distinct per `seed`.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// A body of `len` bytes in chunks of `chunk` bytes.
fn chunked(data: Vec<u8>, chunk: usize) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    let data = Bytes::from(data);
    let chunks: Vec<std::io::Result<Bytes>> = (0..data.len())
        .step_by(chunk)
        .map(|i| Ok(data.slice(i..(i + chunk).min(data.len()))))
        .collect();
    futures::stream::iter(chunks)
}

#[tokio::test]
async fn push_and_open_round_trip_a_multi_mib_file() {
    let f = Fixture::sqlite().await;
    let scratch = tempfile::tempdir().unwrap();
    // Bigger than the 8 MiB upload buffer: exercises the multipart path.
    let data = content(12 * MIB + 123, 1);
    let file = write_file(scratch.path(), "anvil", &data);
    let expected = sha256(&data);

    let outcome = f
        .artifacts
        .push_file("anvil-linux-amd64", "1.5.1", &file, Some(&expected))
        .await
        .unwrap();
    assert!(outcome.created());
    let record = outcome.into_record();
    assert_eq!(record.name, "anvil-linux-amd64");
    assert_eq!(record.version, "1.5.1");
    assert_eq!(record.sha256, expected);
    assert_eq!(record.size, data.len() as u64);
    assert_eq!(record.object_key, format!("blobs/sha256/{expected}"));
    assert_eq!(record.content_type, "application/octet-stream");
    assert_eq!(record.created_by, None);

    // Only the content-addressed object remains; no temporary object.
    assert_eq!(f.files(), vec![format!("blobs/sha256/{expected}")]);
    assert_eq!(std::fs::read(f.blob_path(&expected)).unwrap(), data);

    let (opened, bytes, chunks) = f.read_all("anvil-linux-amd64", "1.5.1").await;
    assert_eq!(opened, record);
    assert_eq!(bytes.len(), data.len());
    assert!(bytes == data, "same bytes back");
    assert!(chunks > 1, "streamed in chunks, not one buffer");

    assert_eq!(
        f.artifacts.get("anvil-linux-amd64", "1.5.1").await.unwrap(),
        record
    );
    assert_eq!(f.artifacts.list().await.unwrap(), vec![record.clone()]);
    assert_eq!(
        f.artifacts
            .list_versions("anvil-linux-amd64")
            .await
            .unwrap(),
        vec![record.clone()]
    );
    let (sha, size, _) = f
        .artifacts
        .open_parts("anvil-linux-amd64", "1.5.1")
        .await
        .unwrap();
    assert_eq!((sha, size), (expected.clone(), data.len() as u64));
    assert_eq!(f.pushed_events().await, 1);

    // The client-side helper agrees with the store.
    assert_eq!(
        hood_artifacts::sha256_file(&file).await.unwrap(),
        (expected, data.len() as u64)
    );
}

#[tokio::test]
async fn push_from_a_reader_and_from_a_stream_with_options() {
    let f = Fixture::sqlite().await;
    let data = content(3 * MIB, 2);
    let rec = f
        .artifacts
        .push("reader", "1.0.0", std::io::Cursor::new(data.clone()), None)
        .await
        .unwrap()
        .into_record();
    assert_eq!(rec.sha256, sha256(&data));

    let user = UserId::from_uuid(uuid::Uuid::now_v7());
    let data2 = content(100_000, 3);
    let req = PushRequest::new("streamed", "2.0.0+build.7")
        // Upper case is accepted and normalised.
        .expect_sha256(Some(&sha256(&data2).to_uppercase()))
        .content_type(Some("application/gzip"))
        .created_by(Some(user));
    let rec2 = f
        .artifacts
        .push_stream(req, chunked(data2.clone(), 4096))
        .await
        .unwrap()
        .into_record();
    assert_eq!(rec2.sha256, sha256(&data2));
    assert_eq!(rec2.content_type, "application/gzip");
    assert_eq!(rec2.created_by, Some(user));
    let (_, back, _) = f.read_all("streamed", "2.0.0+build.7").await;
    assert!(back == data2);
}

#[tokio::test]
async fn checksum_mismatch_is_refused_and_leaves_no_object_and_no_row() {
    let f = Fixture::sqlite().await;
    for (len, seed) in [(1000, 4), (10 * MIB, 5)] {
        let data = content(len, seed);
        let wrong = sha256(b"something else");
        let err = f
            .artifacts
            .push(
                "anvil",
                "1.5.1",
                std::io::Cursor::new(data.clone()),
                Some(&wrong),
            )
            .await
            .unwrap_err();
        match &err {
            ArtifactError::ChecksumMismatch { expected, actual } => {
                assert_eq!(expected, &wrong);
                assert_eq!(actual, &sha256(&data));
            }
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
        assert!(err.to_string().contains(&wrong), "{err}");
        assert!(f.files().is_empty(), "left behind: {:?}", f.files());
        assert!(matches!(
            f.artifacts.get("anvil", "1.5.1").await,
            Err(ArtifactError::NotFound { .. })
        ));
    }
    assert!(f.artifacts.list().await.unwrap().is_empty());
    assert_eq!(f.pushed_events().await, 0);

    // A malformed expected checksum is a validation error naming it.
    let err = f
        .artifacts
        .push(
            "anvil",
            "1.5.1",
            std::io::Cursor::new(vec![1u8]),
            Some("abc"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ArtifactError::Invalid(e) if e.field == "sha256"),
        "{err:?}"
    );
}

#[tokio::test]
async fn re_pushing_the_same_content_is_idempotent() {
    let f = Fixture::sqlite().await;
    let data = content(2 * MIB, 6);
    let first = f
        .artifacts
        .push("anvil", "1.5.1", std::io::Cursor::new(data.clone()), None)
        .await
        .unwrap();
    assert!(first.created());
    let again = f
        .artifacts
        .push(
            "anvil",
            "1.5.1",
            std::io::Cursor::new(data.clone()),
            Some(&sha256(&data)),
        )
        .await
        .unwrap();
    assert_eq!(again, PushOutcome::Existing(first.record().clone()));
    assert_eq!(f.files(), vec![format!("blobs/sha256/{}", sha256(&data))]);
    assert_eq!(f.pushed_events().await, 1);

    // The same content under another name shares the object.
    let other = f
        .artifacts
        .push(
            "anvil-copy",
            "1.5.1",
            std::io::Cursor::new(data.clone()),
            None,
        )
        .await
        .unwrap();
    assert!(other.created());
    assert_eq!(other.record().object_key, first.record().object_key);
    assert_eq!(f.files().len(), 1);
}

#[tokio::test]
async fn re_pushing_restores_a_missing_or_wrong_sized_object() {
    let f = Fixture::sqlite().await;
    let data = content(MIB + 17, 14);
    let first = f
        .artifacts
        .push("anvil", "1.5.1", std::io::Cursor::new(data.clone()), None)
        .await
        .unwrap()
        .into_record();
    let blob = f.blob_path(&first.sha256);

    // The object vanished (a wiped store, or a replica that wrote elsewhere).
    std::fs::remove_file(&blob).unwrap();
    assert!(matches!(
        f.artifacts.open("anvil", "1.5.1").await,
        Err(ArtifactError::ObjectMissing { .. })
    ));
    let again = f
        .artifacts
        .push(
            "anvil",
            "1.5.1",
            std::io::Cursor::new(data.clone()),
            Some(&first.sha256),
        )
        .await
        .unwrap();
    assert_eq!(again, PushOutcome::Restored(first.clone()));
    assert_eq!(again.as_str(), "restored");
    assert_eq!(std::fs::read(&blob).unwrap(), data, "the object is back");
    let (record, served, _) = f.read_all("anvil", "1.5.1").await;
    assert_eq!(record, first, "the catalog row did not change");
    assert_eq!(served, data);
    assert_eq!(f.files(), vec![format!("blobs/sha256/{}", first.sha256)]);
    assert_eq!(f.pushed_events().await, 1, "no second artifact.pushed");

    // A truncated object is replaced as well.
    std::fs::write(&blob, b"short").unwrap();
    let repaired = f
        .artifacts
        .push("anvil", "1.5.1", std::io::Cursor::new(data.clone()), None)
        .await
        .unwrap();
    assert!(repaired.restored(), "{repaired:?}");
    assert_eq!(std::fs::read(&blob).unwrap(), data);

    // With the object in place, a push changes nothing.
    let idle = f
        .artifacts
        .push("anvil", "1.5.1", std::io::Cursor::new(data.clone()), None)
        .await
        .unwrap();
    assert_eq!(idle, PushOutcome::Existing(first));
    assert_eq!(f.files().len(), 1, "no temporary object left behind");
}

#[tokio::test]
async fn conflicting_re_push_is_refused_and_the_original_stays() {
    let f = Fixture::sqlite().await;
    let original = content(MIB, 7);
    f.artifacts
        .push(
            "anvil",
            "1.5.1",
            std::io::Cursor::new(original.clone()),
            None,
        )
        .await
        .unwrap();
    let other = content(MIB, 8);
    let err = f
        .artifacts
        .push("anvil", "1.5.1", std::io::Cursor::new(other.clone()), None)
        .await
        .unwrap_err();
    let ArtifactError::Conflict(msg) = &err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert!(msg.contains("anvil/1.5.1"), "{msg}");
    assert!(msg.contains(&sha256(&original)), "{msg}");
    assert!(err.to_string().contains("immutable"), "{err}");

    assert_eq!(
        f.files(),
        vec![format!("blobs/sha256/{}", sha256(&original))],
        "the refused content left nothing"
    );
    let (record, bytes, _) = f.read_all("anvil", "1.5.1").await;
    assert_eq!(record.sha256, sha256(&original));
    assert!(bytes == original);
    assert_eq!(f.pushed_events().await, 1);
}

#[tokio::test]
async fn path_traversal_and_bad_names_are_refused_before_any_byte_is_written() {
    let f = Fixture::sqlite().await;
    let cases = [
        ("../../etc/passwd", "1", "name"),
        ("..", "1", "name"),
        ("a/b", "1", "name"),
        ("/abs", "1", "name"),
        ("a\\b", "1", "name"),
        (".hidden", "1", "name"),
        ("", "1", "name"),
        ("ok", "../1", "version"),
        ("ok", "..", "version"),
        ("ok", "1/2", "version"),
        ("ok", "", "version"),
        ("ok", "1 2", "version"),
    ];
    for (name, version, field) in cases {
        let err = f
            .artifacts
            .push(name, version, std::io::Cursor::new(vec![1u8; 10]), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ArtifactError::Invalid(e) if e.field == field),
            "{name:?} {version:?}: {err:?}"
        );
        assert!(matches!(
            f.artifacts.get(name, version).await,
            Err(ArtifactError::Invalid(_))
        ));
        assert!(matches!(
            f.artifacts.open(name, version).await,
            Err(ArtifactError::Invalid(_))
        ));
    }
    assert!(f.files().is_empty());
    assert!(f.artifacts.list().await.unwrap().is_empty());

    let err = f
        .artifacts
        .push_stream(
            PushRequest::new("ok", "1").content_type(Some("text/plain\r\nX: y")),
            chunked(vec![1], 1),
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, ArtifactError::Invalid(e) if e.field == "content_type"));
}

#[tokio::test]
async fn empty_oversized_and_failing_bodies_leave_nothing() {
    let f = Fixture::sqlite().await;
    // Empty: its SHA-256 is the catalog's placeholder; never a binary.
    let err = f
        .artifacts
        .push("empty", "1", std::io::Cursor::new(Vec::new()), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ArtifactError::Invalid(e) if e.field == "body"),
        "{err:?}"
    );

    // Over the size limit (after part of it was written).
    let small = f.artifacts.clone().with_max_size(MIB as u64);
    let err = small
        .push_stream(
            PushRequest::new("big", "1"),
            chunked(content(3 * MIB, 9), 64 * 1024),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::TooLarge { limit } if limit == MIB as u64));

    // The source fails half way (an HTTP client that went away).
    let body = futures::stream::iter(vec![
        Ok(Bytes::from(content(9 * MIB, 10))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]);
    let err = f
        .artifacts
        .push_stream(PushRequest::new("broken", "1"), body)
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::Source(_)), "{err:?}");

    assert!(f.files().is_empty(), "left behind: {:?}", f.files());
    assert!(f.artifacts.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_cancelled_push_cleans_up_after_itself() {
    let f = Fixture::sqlite().await;
    // 9 MiB arrive (past the buffer, so a multipart upload is under way),
    // then the body stalls and the push is dropped, as when the HTTP
    // request is cancelled.
    let first = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(content(
        9 * MIB,
        11,
    )))]);
    let body = first.chain(futures::stream::pending());
    let push = f
        .artifacts
        .push_stream(PushRequest::new("cancelled", "1"), body);
    assert!(tokio::time::timeout(Duration::from_millis(500), push)
        .await
        .is_err());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f.files().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "left behind: {:?}",
            f.files()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(f.artifacts.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn damaged_objects_are_reported_when_opened() {
    let f = Fixture::sqlite().await;
    let data = content(300_000, 12);
    let rec = f
        .artifacts
        .push("anvil", "1", std::io::Cursor::new(data.clone()), None)
        .await
        .unwrap()
        .into_record();

    // Same size, other bytes: the stream ends in an error, not in bad data.
    let mut damaged = data.clone();
    damaged[1000] ^= 0xff;
    std::fs::write(f.blob_path(&rec.sha256), &damaged).unwrap();
    let (_, mut stream) = f.artifacts.open("anvil", "1").await.unwrap();
    let mut served = 0;
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => served += c.len(),
            Err(ArtifactError::Corrupt(_)) => failed = true,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(failed, "corruption reported");
    assert!(served < data.len(), "the last chunk was withheld");

    // Other size: refused up front.
    std::fs::write(f.blob_path(&rec.sha256), b"short").unwrap();
    assert!(matches!(
        f.artifacts.open("anvil", "1").await,
        Err(ArtifactError::Corrupt(_))
    ));
    // Gone: refused up front, naming what is missing.
    std::fs::remove_file(f.blob_path(&rec.sha256)).unwrap();
    let missing = f.artifacts.open("anvil", "1").await.err().unwrap();
    assert!(
        matches!(&missing, ArtifactError::ObjectMissing { sha256, .. } if *sha256 == rec.sha256),
        "{missing:?}"
    );
    assert_eq!(
        missing.to_string(),
        format!(
            "artifact object anvil 1 (sha256 {}) missing in the artifact store",
            rec.sha256
        )
    );
    assert!(matches!(
        f.artifacts.open("anvil", "2").await,
        Err(ArtifactError::NotFound { .. })
    ));
}

#[tokio::test]
async fn sweeping_removes_only_abandoned_uploads() {
    let f = Fixture::sqlite().await;
    let data = content(1000, 13);
    f.artifacts
        .push("keep", "1", std::io::Cursor::new(data.clone()), None)
        .await
        .unwrap();
    // What a crash mid-push leaves.
    std::fs::create_dir_all(f.root.join("tmp")).unwrap();
    std::fs::write(f.root.join("tmp/0190-crashed"), b"partial").unwrap();
    assert_eq!(
        f.artifacts
            .sweep_uploads(Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "too young"
    );
    assert_eq!(f.artifacts.sweep_uploads(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(f.files(), vec![format!("blobs/sha256/{}", sha256(&data))]);
}

#[tokio::test]
async fn connect_by_file_url() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = hood_store::connect(&hood_testkit::sqlite_url(&dir))
        .await
        .unwrap();
    catalog.migrate().await.unwrap();
    let root = dir.path().join("store");
    let url = format!("file://{}", root.display());
    let artifacts = ArtifactStore::connect(&url, catalog).unwrap();
    assert!(artifacts.location().contains("store"));
    artifacts
        .push("x", "1", std::io::Cursor::new(vec![7u8; 10]), None)
        .await
        .unwrap();
    assert!(root.join("blobs/sha256").is_dir());
    assert!(matches!(
        ArtifactStore::connect(
            "ftp://x",
            hood_store::connect("sqlite::memory:").await.unwrap()
        ),
        Err(ArtifactError::Config(_))
    ));
}

// -- concurrency, against both catalog backends --

async fn concurrent_pushes_end_consistent(f: Fixture) {
    let data = content(3 * MIB, 14);
    let sha = sha256(&data);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let artifacts = f.artifacts.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            artifacts
                .push_stream(
                    PushRequest::new("anvil", "1.5.1"),
                    chunked(data, 256 * 1024),
                )
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let outcome = t.await.unwrap().unwrap();
        assert_eq!(outcome.record().sha256, sha);
        created += usize::from(outcome.created());
    }
    assert_eq!(created, 1, "exactly one push created the artifact");
    assert_eq!(f.files(), vec![format!("blobs/sha256/{sha}")]);
    let (_, bytes, _) = f.read_all("anvil", "1.5.1").await;
    assert!(bytes == data);
    assert_eq!(f.pushed_events().await, 1);

    // Racing pushes of different content under one version: one content
    // wins, every push of other content is refused, the bytes served are
    // the winner's, and no upload is left over.
    let contents: Vec<Vec<u8>> = (0..3).map(|i| content(MIB + i, 20 + i as u64)).collect();
    let mut tasks = Vec::new();
    for i in 0..9 {
        let artifacts = f.artifacts.clone();
        let data = contents[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            let sha = sha256(&data);
            let r = artifacts
                .push_stream(
                    PushRequest::new("anvil", "1.7.1"),
                    chunked(data, 128 * 1024),
                )
                .await;
            (sha, r)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let winner = f.artifacts.get("anvil", "1.7.1").await.unwrap();
    let mut created = 0;
    for (sha, r) in &results {
        match r {
            Ok(o) => {
                assert_eq!(sha, &winner.sha256);
                assert_eq!(o.record(), &winner);
                created += usize::from(o.created());
            }
            Err(ArtifactError::Conflict(_)) => assert_ne!(sha, &winner.sha256),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(created, 1);
    let (_, bytes, _) = f.read_all("anvil", "1.7.1").await;
    assert_eq!(sha256(&bytes), winner.sha256);
    assert!(
        !f.files().iter().any(|p| p.starts_with("tmp")),
        "no upload left over: {:?}",
        f.files()
    );
    assert!(f
        .files()
        .contains(&format!("blobs/sha256/{}", winner.sha256)));
    assert_eq!(f.pushed_events().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_end_consistent_sqlite() {
    concurrent_pushes_end_consistent(Fixture::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_end_consistent_postgres() {
    let Some(f) =
        Fixture::postgres("hood-artifacts::concurrent_pushes_end_consistent_postgres").await
    else {
        return;
    };
    concurrent_pushes_end_consistent(f).await;
}
