//! Snapshots through a real object store (`object_store`'s local file
//! system): a directory packed, uploaded, restored and compared byte for
//! byte; an upload interrupted halfway resumed without re-sending finished
//! chunks; a corrupt chunk refused with the old directory left whole.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

use async_trait::async_trait;
use hood_snapshot::{
    pack, restore, upload, Chunk, ChunkStore, Manifest, ObjectChunks, SnapshotError,
};
use object_store::local::LocalFileSystem;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Bytes that compress somewhat, like chain data: a repeating pattern
/// disturbed by a cheap generator.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 3 == 0 {
                (x & 0xff) as u8
            } else {
                (i % 251) as u8
            }
        })
        .collect()
}

fn node_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("data");
    std::fs::create_dir_all(dir.join("chaindata/ancient")).unwrap();
    std::fs::write(dir.join("state.json"), data(3 << 20, 7)).unwrap();
    std::fs::write(dir.join("chaindata/000001.log"), data(700_000, 11)).unwrap();
    std::fs::write(dir.join("chaindata/ancient/empty"), b"").unwrap();
    std::fs::write(dir.join("jwt.hex"), b"secret").unwrap();
    std::fs::set_permissions(dir.join("jwt.hex"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("state.json", dir.join("latest")).unwrap();
    dir
}

/// Every entry under `dir`: relative path → (mode, contents or link target).
fn tree(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(base).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                out.insert(rel, (0, target.display().to_string().into_bytes()));
            } else if meta.is_dir() {
                out.insert(rel.clone(), (mode, b"<dir>".to_vec()));
                walk(base, &e.path(), out);
            } else {
                out.insert(rel, (mode, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

fn objects(root: &Path) -> Arc<LocalFileSystem> {
    std::fs::create_dir_all(root).unwrap();
    Arc::new(LocalFileSystem::new_with_prefix(root).unwrap())
}

#[tokio::test]
async fn a_directory_survives_the_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = node_dir(tmp.path());
    let before = tree(&dir);
    let archive = tmp.path().join("snap.tar.zst");
    let manifest = pack(&dir, &archive, 256 * 1024).unwrap();
    assert_eq!(manifest.files, 4, "four regular files");
    assert_eq!(manifest.raw_bytes, (3 << 20) + 700_000 + 6);
    assert!(
        manifest.compressed_bytes < manifest.raw_bytes,
        "compressed: {} of {}",
        manifest.compressed_bytes,
        manifest.raw_bytes
    );
    assert!(
        manifest.chunks.len() > 2,
        "{} chunks",
        manifest.chunks.len()
    );
    assert_eq!(
        manifest.chunks.iter().map(|c| c.size).sum::<u64>(),
        std::fs::metadata(&archive).unwrap().len()
    );

    let store = ObjectChunks::new(objects(&tmp.path().join("objects")), "snapshots/n1/s1");
    assert_eq!(store.manifest().await.unwrap(), None, "not complete yet");
    let mut seen = Vec::new();
    let report = upload(&archive, &manifest, &store, |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!(report.sent as usize, manifest.chunks.len());
    assert_eq!(report.skipped, 0);
    assert_eq!(seen.last().unwrap().bytes_done, manifest.compressed_bytes);
    assert_eq!(store.manifest().await.unwrap().as_ref(), Some(&manifest));

    // Restored over a directory that has moved on since.
    std::fs::write(dir.join("state.json"), b"newer").unwrap();
    std::fs::write(dir.join("stray"), b"x").unwrap();
    let done = restore(&store, &manifest, &dir, |_| {}).await.unwrap();
    assert_eq!(done.chunks_done as usize, manifest.chunks.len());
    assert_eq!(tree(&dir), before, "same paths, modes, bytes and links");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A copy under another prefix restores the same, and outlives the
    // original.
    let copy = ObjectChunks::new(objects(&tmp.path().join("objects")), "snapshots/n2/s1");
    store.copy_to(&copy).await.unwrap();
    assert_eq!(copy.manifest().await.unwrap().as_ref(), Some(&manifest));
    store.delete().await.unwrap();
    assert!(store.present().await.unwrap().is_empty());
    let elsewhere = tmp.path().join("from-copy");
    restore(&copy, &manifest, &elsewhere, |_| {}).await.unwrap();
    assert_eq!(tree(&elsewhere), before);
    assert_eq!(store.manifest().await.unwrap(), None);
}

/// Fails every put after the first `allow`: a connection lost halfway.
struct Interrupted<'a> {
    inner: &'a ObjectChunks,
    allow: u32,
    puts: AtomicU32,
}

#[async_trait]
impl ChunkStore for Interrupted<'_> {
    async fn present(&self) -> Result<BTreeMap<u32, String>, SnapshotError> {
        self.inner.present().await
    }
    async fn put(&self, chunk: &Chunk, bytes: Vec<u8>) -> Result<(), SnapshotError> {
        if self.puts.fetch_add(1, Ordering::SeqCst) >= self.allow {
            return Err(SnapshotError::Store("connection reset".into()));
        }
        self.inner.put(chunk, bytes).await
    }
    async fn get(&self, chunk: &Chunk) -> Result<Vec<u8>, SnapshotError> {
        self.inner.get(chunk).await
    }
    async fn put_manifest(&self, manifest: &Manifest) -> Result<(), SnapshotError> {
        self.inner.put_manifest(manifest).await
    }
    async fn manifest(&self) -> Result<Option<Manifest>, SnapshotError> {
        self.inner.manifest().await
    }
    async fn delete(&self) -> Result<(), SnapshotError> {
        self.inner.delete().await
    }
}

#[tokio::test]
async fn an_interrupted_upload_resumes_without_resending_finished_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = node_dir(tmp.path());
    let archive = tmp.path().join("snap.tar.zst");
    let manifest = pack(&dir, &archive, 128 * 1024).unwrap();
    let total = u32::try_from(manifest.chunks.len()).unwrap();
    assert!(total >= 6, "{total} chunks");
    let store = ObjectChunks::new(objects(&tmp.path().join("objects")), "snapshots/n1/s2");

    let half = total / 2;
    let cut = Interrupted {
        inner: &store,
        allow: half,
        puts: AtomicU32::new(0),
    };
    let err = upload(&archive, &manifest, &cut, |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("connection reset"), "{err}");
    assert_eq!(store.present().await.unwrap().len() as u32, half);
    assert_eq!(store.manifest().await.unwrap(), None, "incomplete");

    let counting = Interrupted {
        inner: &store,
        allow: u32::MAX,
        puts: AtomicU32::new(0),
    };
    let report = upload(&archive, &manifest, &counting, |_| {})
        .await
        .unwrap();
    assert_eq!(report.skipped, half, "finished chunks are not sent again");
    assert_eq!(report.sent, total - half);
    assert_eq!(counting.puts.load(Ordering::SeqCst), total - half);
    assert_eq!(store.manifest().await.unwrap().as_ref(), Some(&manifest));

    let other = tmp.path().join("restored");
    restore(&store, &manifest, &other, |_| {}).await.unwrap();
    assert_eq!(tree(&other), tree(&dir));
}

#[tokio::test]
async fn a_corrupt_chunk_is_refused_and_the_directory_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = node_dir(tmp.path());
    let archive = tmp.path().join("snap.tar.zst");
    let manifest = pack(&dir, &archive, 128 * 1024).unwrap();
    let root = tmp.path().join("objects");
    let store = ObjectChunks::new(objects(&root), "snapshots/n1/s3");
    upload(&archive, &manifest, &store, |_| {}).await.unwrap();

    // One byte of the third chunk flipped on the store's disk.
    let c = &manifest.chunks[2];
    let path = root.join(format!(
        "snapshots/n1/s3/chunks/{:08}-{}",
        c.index, c.sha256
    ));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    std::fs::write(dir.join("state.json"), b"what the node has now").unwrap();
    let before = tree(&dir);
    let err = restore(&store, &manifest, &dir, |_| {}).await.unwrap_err();
    assert!(
        matches!(err, SnapshotError::Corrupt { index: 2, .. }),
        "{err}"
    );
    assert_eq!(tree(&dir), before, "left as it was");
    assert!(!tmp.path().join(".data.restoring").exists());

    // A missing chunk: the store's error, the directory kept.
    std::fs::remove_file(&path).unwrap();
    let err = restore(&store, &manifest, &dir, |_| {}).await.unwrap_err();
    assert!(matches!(err, SnapshotError::Missing(_)), "{err}");
    assert_eq!(tree(&dir), before);
}
