//! Per-workload output log with size-based rotation, and an efficient tail.
//!
//! The supervisor owns the pipe ends of the child's stdout and stderr and
//! writes whole lines here, so the two streams interleave by line and
//! rotation never happens in the middle of one. Rotation renames
//! `output.log` → `output.log.1` → … → `output.log.{keep}` and drops the
//! oldest, bounding a workload's logs at roughly `(keep + 1) × max_bytes`.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the live log file inside a workload's `logs/` directory.
pub const LOG_FILE: &str = "output.log";

/// Lines longer than this are split, so one runaway line cannot hold the
/// whole log in memory.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Rotation limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Rotate when the live file would grow beyond this.
    pub max_bytes: u64,
    /// Rotated files kept (`output.log.1` … `output.log.{keep}`).
    pub keep: u32,
}

impl Default for LogLimits {
    /// 10 MiB, three rotated files.
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            keep: 3,
        }
    }
}

pub(crate) struct LogWriter {
    dir: PathBuf,
    limits: LogLimits,
    file: Option<File>,
    size: u64,
}

impl LogWriter {
    pub(crate) fn new(dir: PathBuf, limits: LogLimits) -> Self {
        Self {
            dir,
            limits,
            file: None,
            size: 0,
        }
    }

    fn path(&self, n: u32) -> PathBuf {
        rotated_path(&self.dir, n)
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            fs::create_dir_all(&self.dir)?;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(0))?;
            self.size = f.metadata()?.len();
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.limits.keep == 0 {
            return remove_if_exists(&self.path(0));
        }
        remove_if_exists(&self.path(self.limits.keep))?;
        for n in (0..self.limits.keep).rev() {
            let from = self.path(n);
            if from.exists() {
                fs::rename(&from, self.path(n + 1))?;
            }
        }
        Ok(())
    }

    /// Appends one line (a newline is added if missing).
    pub(crate) fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let needs_nl = !line.ends_with(b"\n");
        let len = line.len() as u64 + u64::from(needs_nl);
        self.open()?;
        if self.size > 0 && self.size + len > self.limits.max_bytes {
            self.rotate()?;
        }
        let f = self.open()?;
        f.write_all(line)?;
        if needs_nl {
            f.write_all(b"\n")?;
        }
        self.size += len;
        Ok(())
    }

    /// Closes the file so a removed directory does not keep it alive.
    pub(crate) fn close(&mut self) {
        self.file = None;
    }
}

fn remove_if_exists(p: &Path) -> io::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rotated_path(dir: &Path, n: u32) -> PathBuf {
    if n == 0 {
        dir.join(LOG_FILE)
    } else {
        dir.join(format!("{LOG_FILE}.{n}"))
    }
}

/// The last `n` lines across the live file and its rotations, oldest
/// first. Reads backwards from the end in blocks, so the cost is
/// proportional to the lines returned, not the log size.
pub(crate) fn tail(dir: &Path, keep: u32, n: usize) -> io::Result<Vec<String>> {
    let mut out: VecDeque<String> = VecDeque::new();
    for i in 0..=keep {
        if out.len() >= n {
            break;
        }
        let path = rotated_path(dir, i);
        let lines = match tail_file(&path, n - out.len()) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for l in lines.into_iter().rev() {
            out.push_front(l);
        }
    }
    Ok(out.into())
}

fn tail_file(path: &Path, n: usize) -> io::Result<Vec<String>> {
    const BLOCK: u64 = 64 * 1024;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut f = File::open(path)?;
    let len = f.seek(SeekFrom::End(0))?;
    let mut pos = len;
    // Blocks read so far, newest first.
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut newlines = 0usize;
    // A trailing newline ends the last line rather than starting an empty one.
    let mut skip_trailing = true;
    while pos > 0 && newlines < n {
        let start = pos.saturating_sub(BLOCK);
        let mut buf = vec![0u8; usize::try_from(pos - start).unwrap_or(0)];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf)?;
        let mut count = buf.iter().filter(|b| **b == b'\n').count();
        if skip_trailing && buf.last() == Some(&b'\n') {
            count -= 1;
        }
        skip_trailing = false;
        newlines += count;
        blocks.push(buf);
        pos = start;
    }
    let mut all = Vec::with_capacity(blocks.iter().map(Vec::len).sum());
    for b in blocks.iter().rev() {
        all.extend_from_slice(b);
    }
    if all.last() == Some(&b'\n') {
        all.pop();
    }
    if all.is_empty() {
        return Ok(Vec::new());
    }
    let lines: Vec<&[u8]> = all.split(|b| *b == b'\n').collect();
    // If we stopped before the start of the file, the first piece is a
    // partial line; there are then at least n complete ones after it.
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..]
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn tail_of_small_file_and_partial_last_line() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(LOG_FILE), "a\nb\nc").unwrap();
        assert_eq!(tail(d.path(), 3, 2).unwrap(), vec!["b", "c"]);
        assert_eq!(tail(d.path(), 3, 10).unwrap(), vec!["a", "b", "c"]);
        assert!(tail(d.path(), 3, 0).unwrap().is_empty());
    }

    #[test]
    fn tail_spans_blocks_and_rotations() {
        let d = tempfile::tempdir().unwrap();
        let mut w = LogWriter::new(
            d.path().to_path_buf(),
            LogLimits {
                max_bytes: 100_000,
                keep: 2,
            },
        );
        for i in 0..30_000 {
            w.write_line(format!("line {i:06}").as_bytes()).unwrap();
        }
        w.close();
        // 12 bytes per line, 100 kB per file: 3 files hold at most ~25k lines.
        assert!(d.path().join("output.log.2").exists());
        assert!(!d.path().join("output.log.3").exists());
        for i in 0..=2 {
            let size = fs::metadata(rotated_path(d.path(), i)).unwrap().len();
            assert!(size <= 100_000, "file {i} is {size} bytes");
        }
        let got = tail(d.path(), 2, 20_000).unwrap();
        assert_eq!(got.len(), 20_000);
        assert_eq!(got.first().unwrap(), "line 010000");
        assert_eq!(got.last().unwrap(), "line 029999");
        let got = tail(d.path(), 2, 3).unwrap();
        assert_eq!(got, vec!["line 029997", "line 029998", "line 029999"]);
    }
}
