//! Hood's one way to write files that hold secrets or state.
//!
//! Every secret Hood puts on disk (the master key, the admin API key, the
//! CLI's session, an agent's private key, a node's key files) and every
//! state file that must not be torn goes through [`write_atomic`] or one of
//! its wrappers, and every secret leaves through [`wipe`]. The guarantees:
//!
//! * **Whole or not at all.** Bytes go to a fresh temporary file in the same
//!   directory, which is synced, renamed over the target and the directory
//!   synced: after a crash the path holds the old content or the new one.
//! * **Private from the first byte.** The temporary file is created `0600`
//!   (never readable by others, whatever the umask), and gets its final
//!   mode before it becomes visible.
//! * **Wiped, not just unlinked.** [`wipe`] overwrites the content with
//!   zeros and syncs before removing it (best effort on copy-on-write file
//!   systems and SSDs, which may keep old blocks: keep secrets on tmpfs
//!   where that matters).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of a private file.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of a directory created to hold private files.
pub const PRIVATE_DIR: u32 = 0o700;

/// Writes `bytes` to `path` atomically with the given `mode` (see the crate
/// docs). The parent directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = TempFile::create(path)?;
    tmp.fill(bytes, mode)?;
    tmp.persist(path, Replace::Yes)
}

/// Writes a secret: `0600`, atomically, creating missing parents `0700`.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_private_dirs(path)?;
    write_atomic(path, bytes, PRIVATE_FILE)
}

/// Writes a secret only if `path` does not exist yet: of several processes
/// racing to create it, exactly one succeeds and the others get
/// [`io::ErrorKind::AlreadyExists`] (and then read the winner's file, which
/// is complete by the time it is visible).
pub fn create_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_private_dirs(path)?;
    let tmp = TempFile::create(path)?;
    tmp.fill(bytes, PRIVATE_FILE)?;
    tmp.persist(path, Replace::No)
}

/// Serializes `value` as pretty JSON and writes it privately and atomically.
pub fn write_json_private<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_private(path, &bytes)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates the parent directories of `path` with mode `0700` (existing ones
/// keep their mode).
pub fn create_private_dirs(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR)
            .create(parent),
        _ => Ok(()),
    }
}

/// Moves a file written by this crate into place (same file system),
/// replacing `to`, and makes the move durable.
pub fn move_into_place(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_parent(to)
}

/// Copies the directory tree `from` to `to` (which must not exist):
/// regular files with their modes, directories and symlinks as links.
/// Returns the number of files and bytes copied. Not atomic: copy to a
/// temporary name and [`move_into_place`] it.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    fs::create_dir(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            let (f, b) = copy_tree(&entry.path(), &target)?;
            files += f;
            bytes += b;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &target)?;
        } else if kind.is_file() {
            bytes += fs::copy(entry.path(), &target)?;
            fs::File::open(&target)?.sync_all()?;
            files += 1;
        }
    }
    Ok((files, bytes))
}

/// Overwrites a file with zeros, syncs, removes it and syncs its directory.
/// A missing file is fine; a symlink or other non-file is only unlinked
/// (never followed).
pub fn wipe(path: &Path) -> io::Result<()> {
    let len = match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    {
        let mut f = OpenOptions::new().write(true).open(path)?;
        let zeros = [0u8; 8192];
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
    }
    fs::remove_file(path)?;
    sync_parent(path)
}

/// Wipes every regular file below `dir` (recursively), then removes the
/// directory. A missing directory is fine.
pub fn wipe_dir(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            wipe_dir(&path)?;
        } else {
            wipe(&path)?;
        }
    }
    fs::remove_dir(dir)
}

enum Replace {
    Yes,
    No,
}

/// A temporary sibling of the target, removed unless persisted.
struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    fn create(target: &Path) -> io::Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
            .to_string_lossy();
        let unique = format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = target.with_file_name(unique);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE)
            .open(&path)?;
        Ok(Self {
            path,
            file: Some(file),
        })
    }

    fn fill(&self, bytes: &[u8], mode: u32) -> io::Result<()> {
        let Some(mut file) = self.file.as_ref() else {
            return Err(io::Error::other("temporary file already closed"));
        };
        file.write_all(bytes)?;
        // The umask applied at open; set the final mode explicitly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()
    }

    fn persist(mut self, target: &Path, replace: Replace) -> io::Result<()> {
        drop(self.file.take());
        match replace {
            Replace::Yes => fs::rename(&self.path, target)?,
            // A hard link fails if the target exists: an atomic create-once.
            Replace::No => {
                fs::hard_link(&self.path, target)?;
                fs::remove_file(&self.path)?;
            }
        }
        self.path = PathBuf::new();
        sync_parent(target)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Makes a rename or unlink in `path`'s directory durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn copy_tree_copies_files_modes_and_nesting() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("data");
        fs::create_dir_all(from.join("db/sub")).unwrap();
        write_atomic(&from.join("state.json"), b"{\"block\":42}", 0o640).unwrap();
        write_atomic(&from.join("db/sub/000001.log"), &[7u8; 5000], 0o600).unwrap();
        std::os::unix::fs::symlink("state.json", from.join("latest")).unwrap();
        let to = dir.path().join("copy");
        assert_eq!(copy_tree(&from, &to).unwrap(), (2, 5000 + 12));
        assert_eq!(fs::read(to.join("state.json")).unwrap(), b"{\"block\":42}");
        assert_eq!(fs::read(to.join("db/sub/000001.log")).unwrap(), [7u8; 5000]);
        assert_eq!(mode(&to.join("state.json")), 0o640);
        assert_eq!(
            fs::read_link(to.join("latest")).unwrap(),
            Path::new("state.json")
        );
        // The target must not exist: a half-finished copy is never merged.
        assert!(copy_tree(&from, &to).is_err());
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn private_write_creates_private_parents_and_replaces_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/secret.key");
        write_private(&p, b"first").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"first");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&d.path().join("a/b")), 0o700);
        write_private(&p, b"second, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second, longer");
        assert!(leftovers(&d.path().join("a/b")).is_empty());
    }

    #[test]
    fn atomic_write_sets_the_requested_mode_whatever_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.sh");
        write_atomic(&p, b"#!/bin/sh\n", 0o755).unwrap();
        assert_eq!(mode(&p), 0o755);
        write_atomic(&p, b"{}", 0o600).unwrap();
        assert_eq!(mode(&p), 0o600);
    }

    #[test]
    fn create_private_has_exactly_one_winner() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("master.key");
        let results: Vec<io::Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u8)
                .map(|i| {
                    let p = p.clone();
                    s.spawn(move || create_private(&p, &[i; 32]))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1);
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(r.kind(), io::ErrorKind::AlreadyExists);
        }
        let content = fs::read(&p).unwrap();
        assert_eq!(content.len(), 32);
        assert!(content.iter().all(|b| *b == content[0]));
        assert_eq!(mode(&p), 0o600);
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn wipe_zeroes_then_removes_and_tolerates_missing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        write_private(&p, &[7u8; 20_000]).unwrap();
        // Hold a second name on the same inode to see what wipe left in it.
        let witness = d.path().join("witness");
        fs::hard_link(&p, &witness).unwrap();
        wipe(&p).unwrap();
        assert!(!p.exists());
        let left = fs::read(&witness).unwrap();
        assert_eq!(left.len(), 20_000);
        assert!(left.iter().all(|b| *b == 0), "content was not overwritten");
        wipe(&p).unwrap();
    }

    #[test]
    fn wipe_unlinks_a_symlink_without_touching_its_target() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        fs::write(&target, b"keep me").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        wipe(&link).unwrap();
        assert!(!link.exists());
        assert_eq!(fs::read(&target).unwrap(), b"keep me");
    }

    #[test]
    fn a_pending_file_moves_into_place() {
        let d = tempfile::tempdir().unwrap();
        let (pending, target) = (d.path().join("k.pending"), d.path().join("k"));
        write_private(&target, b"old").unwrap();
        write_private(&pending, b"new").unwrap();
        move_into_place(&pending, &target).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert!(!pending.exists());
        assert_eq!(mode(&target), 0o600);
    }

    #[test]
    fn wipe_dir_removes_everything_below() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("secrets");
        write_private(&root.join("a/k1"), b"x").unwrap();
        write_private(&root.join("k2"), b"y").unwrap();
        wipe_dir(&root).unwrap();
        assert!(!root.exists());
        wipe_dir(&root).unwrap();
    }

    #[test]
    fn json_round_trips_and_missing_is_none() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), None);
        write_json_private(&p, &vec![1u32, 2, 3]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(mode(&p), 0o600);
        fs::write(&p, b"not json").unwrap();
        assert_eq!(
            read_json::<Vec<u32>>(&p).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
