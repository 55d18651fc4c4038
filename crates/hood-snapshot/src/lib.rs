//! A node's data directory as a snapshot (design §5; issue "Upgrades and
//! node data", item 5).
//!
//! The directory is written as one tar stream, compressed with zstd and cut
//! into fixed-size chunks, each with its SHA-256 ([`pack`]); the chunks go
//! to a [`ChunkStore`] (the object store, [`ObjectChunks`]) one by one
//! ([`upload`]): an upload interrupted halfway is resumed by sending only
//! the chunks the store does not hold yet. A restore ([`restore`]) fetches
//! the chunks in order, checks each against the manifest and unpacks them
//! as they arrive into a fresh directory that replaces the old one only
//! when everything was read and verified: a bad chunk never leaves half a
//! data directory behind.
//!
//! The archive is packed to a local file first and uploaded from there:
//! the data directory may change again as soon as the node restarts, and
//! a resumed upload must send the very bytes the first attempt cut.

mod chunks;
mod object;

pub use chunks::ChunkStore;
pub use object::ObjectChunks;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The archive layout this crate writes and reads.
pub const FORMAT: u32 = 1;

/// Chunk size unless the caller says otherwise: large enough that a
/// request per chunk costs little, small enough that a resumed upload
/// re-sends little and that a chunk travels in one gRPC message (4 MiB).
pub const DEFAULT_CHUNK_SIZE: u64 = 2 * 1024 * 1024;

/// zstd's default level, as `zstd` on the command line uses.
const ZSTD_LEVEL: i32 = 3;

/// What a snapshot holds and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub chunk_size: u64,
    /// Regular files in the directory.
    pub files: u64,
    /// Their bytes before compression.
    pub raw_bytes: u64,
    /// Bytes of the compressed archive (the chunks' sizes add up to it).
    pub compressed_bytes: u64,
    pub chunks: Vec<Chunk>,
}

/// One piece of the compressed archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub index: u32,
    pub size: u64,
    /// Lower-case hex SHA-256 of the chunk's bytes.
    pub sha256: String,
}

/// How far an upload or a restore got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Progress {
    pub chunks_done: u32,
    pub chunks_total: u32,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// What [`upload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UploadReport {
    /// Chunks sent now.
    pub sent: u32,
    /// Chunks the store already held (a resumed upload).
    pub skipped: u32,
    pub bytes_sent: u64,
}

/// Why a snapshot could not be taken, stored or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A chunk's bytes are not what the manifest says.
    #[error("chunk {index} is corrupt: SHA-256 {actual}, the manifest says {expected}")]
    Corrupt {
        index: u32,
        expected: String,
        actual: String,
    },
    #[error("the manifest does not describe a snapshot this version reads: {0}")]
    Manifest(String),
    /// A chunk or manifest the store does not hold.
    #[error("missing in the chunk store: {0}")]
    Missing(String),
    /// The chunk store failed (transport, permissions).
    #[error("chunk store: {0}")]
    Store(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let context = context.into();
    move |source| SnapshotError::Io { context, source }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes the compressed stream to the archive file and records each
/// chunk's checksum as its boundary passes.
struct ChunkingWriter<W: Write> {
    inner: W,
    chunk_size: u64,
    in_chunk: u64,
    hasher: Sha256,
    chunks: Vec<Chunk>,
}

impl<W: Write> ChunkingWriter<W> {
    fn close_chunk(&mut self) {
        let hasher = std::mem::take(&mut self.hasher);
        let index = u32::try_from(self.chunks.len()).unwrap_or(u32::MAX);
        self.chunks.push(Chunk {
            index,
            size: self.in_chunk,
            sha256: hex::encode(hasher.finalize()),
        });
        self.in_chunk = 0;
    }

    fn finish(mut self) -> io::Result<(W, Vec<Chunk>)> {
        if self.in_chunk > 0 {
            self.close_chunk();
        }
        self.inner.flush()?;
        Ok((self.inner, self.chunks))
    }
}

impl<W: Write> Write for ChunkingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Never past the current chunk's end, so each chunk is hashed alone.
        let room = usize::try_from(self.chunk_size - self.in_chunk).unwrap_or(usize::MAX);
        let n = self.inner.write(&buf[..buf.len().min(room)])?;
        self.hasher.update(&buf[..n]);
        self.in_chunk += n as u64;
        if self.in_chunk == self.chunk_size {
            self.close_chunk();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Regular files and their bytes under `dir` (symlinks not followed).
fn tree_size(dir: &Path) -> io::Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let (f, b) = tree_size(&entry.path())?;
            files += f;
            bytes += b;
        } else if kind.is_file() {
            files += 1;
            bytes += entry.metadata()?.len();
        }
    }
    Ok((files, bytes))
}

/// Packs `dir` (its contents, relative paths, modes, symlinks as links)
/// into `archive`: tar, zstd, chunks of `chunk_size` bytes. The directory
/// must not change meanwhile (the node is stopped, or it is a copy).
pub fn pack(dir: &Path, archive: &Path, chunk_size: u64) -> Result<Manifest, SnapshotError> {
    if chunk_size == 0 {
        return Err(SnapshotError::Manifest("chunk size 0".into()));
    }
    let (files, raw_bytes) =
        tree_size(dir).map_err(io_err(format!("reading {}", dir.display())))?;
    let out = File::create(archive).map_err(io_err(format!("creating {}", archive.display())))?;
    let chunking = ChunkingWriter {
        inner: BufWriter::with_capacity(1 << 20, out),
        chunk_size,
        in_chunk: 0,
        hasher: Sha256::new(),
        chunks: Vec::new(),
    };
    let packing = io_err(format!("packing {}", dir.display()));
    let run = || -> io::Result<(BufWriter<File>, Vec<Chunk>)> {
        let mut encoder = zstd::stream::Encoder::new(chunking, ZSTD_LEVEL)?;
        // Compression on worker threads while this one reads and tars: the
        // directory is read once, and no core waits for the other.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        encoder.multithread(u32::try_from(workers).unwrap_or(1))?;
        let mut tar = tar::Builder::new(encoder);
        tar.follow_symlinks(false);
        tar.append_dir_all(".", dir)?;
        let encoder = tar.into_inner()?;
        encoder.finish()?.finish()
    };
    let (out, chunks) = run().map_err(packing)?;
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(io_err("flushing the archive"))?;
    file.sync_all().map_err(io_err("syncing the archive"))?;
    let compressed_bytes = chunks.iter().map(|c| c.size).sum();
    Ok(Manifest {
        format: FORMAT,
        chunk_size,
        files,
        raw_bytes,
        compressed_bytes,
        chunks,
    })
}

fn check_manifest(manifest: &Manifest) -> Result<(), SnapshotError> {
    if manifest.format != FORMAT {
        return Err(SnapshotError::Manifest(format!(
            "format {} (this version reads {FORMAT})",
            manifest.format
        )));
    }
    for (i, c) in manifest.chunks.iter().enumerate() {
        if c.index as usize != i || c.size > manifest.chunk_size || c.size == 0 {
            return Err(SnapshotError::Manifest(format!(
                "chunk {i} is out of order or of size {}",
                c.size
            )));
        }
    }
    Ok(())
}

fn verify(chunk: &Chunk, bytes: &[u8]) -> Result<(), SnapshotError> {
    let actual = sha256_hex(bytes);
    if bytes.len() as u64 != chunk.size || actual != chunk.sha256 {
        return Err(SnapshotError::Corrupt {
            index: chunk.index,
            expected: chunk.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

/// Sends the chunks of `archive` that `store` does not hold yet, in
/// order, then the manifest (which marks the snapshot complete). Each
/// chunk is read back from the archive and checked before it is sent.
pub async fn upload(
    archive: &Path,
    manifest: &Manifest,
    store: &dyn ChunkStore,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<UploadReport, SnapshotError> {
    check_manifest(manifest)?;
    let present = store.present().await?;
    let mut file = File::open(archive).map_err(io_err(format!("opening {}", archive.display())))?;
    let mut report = UploadReport::default();
    let mut p = Progress {
        chunks_total: u32::try_from(manifest.chunks.len()).unwrap_or(u32::MAX),
        bytes_total: manifest.compressed_bytes,
        ..Progress::default()
    };
    for chunk in &manifest.chunks {
        if present.get(&chunk.index) == Some(&chunk.sha256) {
            report.skipped += 1;
        } else {
            let mut bytes = vec![0; usize::try_from(chunk.size).unwrap_or(usize::MAX)];
            file.seek(SeekFrom::Start(
                u64::from(chunk.index) * manifest.chunk_size,
            ))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(io_err(format!(
                "reading chunk {} of the archive",
                chunk.index
            )))?;
            verify(chunk, &bytes)?;
            store.put(chunk, bytes).await?;
            report.sent += 1;
            report.bytes_sent += chunk.size;
        }
        p.chunks_done += 1;
        p.bytes_done += chunk.size;
        progress(p);
    }
    store.put_manifest(manifest).await?;
    Ok(report)
}

/// A reader over chunks handed over a channel (the restore's fetching side
/// is async, tar and zstd read synchronously).
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    current: io::Cursor<Vec<u8>>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.rx.recv() {
                Ok(next) => self.current = io::Cursor::new(next),
                // The sender is gone: the end of the archive (or a failed
                // fetch, which the caller reports instead).
                Err(_) => return Ok(0),
            }
        }
    }
}

/// Where a restore unpacks before it replaces `dir`.
fn staging(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    dir.with_file_name(format!(".{name}.{suffix}"))
}

/// Replaces `dir` with the snapshot `manifest` describes, fetched from
/// `store` chunk by chunk and unpacked as it arrives. `dir` is replaced
/// only once every chunk was verified and unpacked; on any error it is
/// left as it was.
pub async fn restore(
    store: &dyn ChunkStore,
    manifest: &Manifest,
    dir: &Path,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<Progress, SnapshotError> {
    check_manifest(manifest)?;
    let fresh = staging(dir, "restoring");
    match fs::remove_dir_all(&fresh) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("clearing {}", fresh.display()))(e)),
    }
    fs::create_dir_all(&fresh).map_err(io_err(format!("creating {}", fresh.display())))?;
    // Two chunks in flight: fetching overlaps unpacking, memory stays bounded.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let target = fresh.clone();
    let unpacker = tokio::task::spawn_blocking(move || -> io::Result<()> {
        let reader = ChannelReader {
            rx,
            current: io::Cursor::new(Vec::new()),
        };
        let decoder = zstd::stream::Decoder::new(reader)?;
        let mut archive = tar::Archive::new(decoder);
        archive.set_preserve_permissions(true);
        archive.set_overwrite(true);
        archive.unpack(&target)
    });
    let mut p = Progress {
        chunks_total: u32::try_from(manifest.chunks.len()).unwrap_or(u32::MAX),
        bytes_total: manifest.compressed_bytes,
        ..Progress::default()
    };
    let fetched: Result<(), SnapshotError> = async {
        for chunk in &manifest.chunks {
            let bytes = store.get(chunk).await?;
            verify(chunk, &bytes)?;
            let tx = tx.clone();
            // A full channel blocks: hand the send to the blocking pool.
            let sent = tokio::task::spawn_blocking(move || tx.send(bytes).is_ok())
                .await
                .unwrap_or(false);
            if !sent {
                // The unpacker stopped early; its error says why.
                break;
            }
            p.chunks_done += 1;
            p.bytes_done += chunk.size;
            progress(p);
        }
        Ok(())
    }
    .await;
    drop(tx);
    let unpacked = unpacker
        .await
        .map_err(|e| SnapshotError::Store(format!("the unpacker stopped: {e}")));
    let outcome = fetched.and_then(|()| {
        unpacked?.map_err(io_err(format!("unpacking into {}", fresh.display())))?;
        if p.chunks_done != p.chunks_total {
            return Err(SnapshotError::Manifest(
                "the archive ended before its last chunk".into(),
            ));
        }
        Ok(())
    });
    if let Err(e) = outcome {
        let _ = fs::remove_dir_all(&fresh);
        return Err(e);
    }
    // Swap: the old directory aside, the new one in, the old one gone.
    let old = staging(dir, "replaced");
    let _ = fs::remove_dir_all(&old);
    if dir.exists() {
        fs::rename(dir, &old).map_err(io_err(format!("moving {} aside", dir.display())))?;
    }
    fs::rename(&fresh, dir)
        .map_err(io_err(format!("moving the restore into {}", dir.display())))?;
    let _ = fs::remove_dir_all(&old);
    Ok(p)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chunks_are_cut_at_their_size_and_hashed_alone() {
        let mut w = ChunkingWriter {
            inner: Vec::new(),
            chunk_size: 4,
            in_chunk: 0,
            hasher: Sha256::new(),
            chunks: Vec::new(),
        };
        w.write_all(b"abcdefghij").unwrap();
        let (bytes, chunks) = w.finish().unwrap();
        assert_eq!(bytes, b"abcdefghij");
        let sizes: Vec<u64> = chunks.iter().map(|c| c.size).collect();
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(chunks[1].sha256, sha256_hex(b"efgh"));
        assert_eq!(chunks[2].index, 2);
    }

    #[test]
    fn a_manifest_out_of_order_is_refused() {
        let m = Manifest {
            format: FORMAT,
            chunk_size: 4,
            files: 0,
            raw_bytes: 0,
            compressed_bytes: 4,
            chunks: vec![Chunk {
                index: 1,
                size: 4,
                sha256: String::new(),
            }],
        };
        assert!(matches!(
            check_manifest(&m),
            Err(SnapshotError::Manifest(_))
        ));
        let m = Manifest { format: 2, ..m };
        assert!(check_manifest(&m).is_err());
    }
}
