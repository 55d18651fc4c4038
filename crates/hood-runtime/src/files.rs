//! Writing a workload's files and wiping its secrets; atomic JSON state files.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::spec::WorkloadFile;

/// Writes `file` under `data_dir` atomically (temp file + rename), so a
/// workload never reads a half-written config. Secret files are `0600` in
/// parents created `0700`.
pub fn write_file(data_dir: &Path, file: &WorkloadFile) -> io::Result<()> {
    let target = data_dir.join(&file.path);
    let parent = target.parent().unwrap_or(data_dir);
    DirBuilder::new()
        .recursive(true)
        .mode(if file.secret { 0o700 } else { 0o755 })
        .create(parent)?;
    let mode = if file.secret { 0o600 } else { file.mode };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.hood-tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&file.contents)?;
    f.sync_all()?;
    drop(f);
    // Set the final mode explicitly: the umask applied to `open`.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, &target)
}

/// Overwrites a file with zeros, syncs and removes it. A missing file is
/// fine. Best effort against recovery from the file system: copy-on-write
/// and journaling file systems or SSD remapping may keep old blocks, which
/// is why secrets should also live on tmpfs where it matters.
pub fn wipe_file(path: &Path) -> io::Result<()> {
    let len = match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    {
        let mut f = OpenOptions::new().write(true).open(path)?;
        let zeros = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
    }
    fs::remove_file(path)
}

/// SHA-256 of a file's contents, hex; `None` if it cannot be read.
pub fn sha256_file(path: &Path) -> Option<String> {
    fs::read(path).ok().map(|b| hex::encode(Sha256::digest(b)))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes JSON atomically so that a crash never leaves a torn state file.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Reads JSON; `Ok(None)` when the file does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn secret_files_are_private_and_wiped() {
        let d = tempfile::tempdir().unwrap();
        let f = WorkloadFile {
            mode: 0o644, // ignored for secrets
            ..WorkloadFile::secret("keys/validator.key", "k3y")
        };
        write_file(d.path(), &f).unwrap();
        let p = d.path().join("keys/validator.key");
        assert_eq!(fs::read(&p).unwrap(), b"k3y");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(d.path().join("keys"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        wipe_file(&p).unwrap();
        assert!(!p.exists());
        wipe_file(&p).unwrap();
    }

    #[test]
    fn plain_files_get_their_mode() {
        let d = tempfile::tempdir().unwrap();
        write_file(d.path(), &WorkloadFile::new("run.sh", "#!/bin/sh\n", 0o755)).unwrap();
        let m = fs::metadata(d.path().join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o755);
    }
}
