//! Writing a workload's files and wiping its secrets; atomic JSON state files.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::spec::WorkloadFile;

/// Writes `file` under `data_dir` atomically, so a workload never reads a
/// half-written config. Secret files are `0600` in parents created `0700`
/// (through the one private writer, `hood-files`).
pub fn write_file(data_dir: &Path, file: &WorkloadFile) -> io::Result<()> {
    let target = data_dir.join(&file.path);
    if file.secret {
        return hood_files::write_private(&target, &file.contents);
    }
    let parent = target.parent().unwrap_or(data_dir);
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)?;
    hood_files::write_atomic(&target, &file.contents, file.mode)
}

/// Overwrites a file with zeros, syncs and removes it (see
/// `hood_files::wipe`). A missing file is fine.
pub fn wipe_file(path: &Path) -> io::Result<()> {
    hood_files::wipe(path)
}

/// SHA-256 of a file's contents, hex; `None` if it cannot be read.
pub fn sha256_file(path: &Path) -> Option<String> {
    fs::read(path).ok().map(|b| hex::encode(Sha256::digest(b)))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes JSON atomically (private: state files name secrets' paths) so
/// that a crash never leaves a torn state file.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    hood_files::write_json_private(path, value)
}

pub use hood_files::read_json;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
