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

pub use hood_domain::workload::LogCursor;

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
    tail_until(dir, keep, n, None)
}

/// [`tail`] of the log as it was when the live file ended at `live_end`.
fn tail_until(dir: &Path, keep: u32, n: usize, live_end: Option<u64>) -> io::Result<Vec<String>> {
    let mut out: VecDeque<String> = VecDeque::new();
    for i in 0..=keep {
        if out.len() >= n {
            break;
        }
        let path = rotated_path(dir, i);
        let end = if i == 0 { live_end } else { None };
        let lines = match tail_file(&path, n - out.len(), end) {
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

fn tail_file(path: &Path, n: usize, end: Option<u64>) -> io::Result<Vec<String>> {
    const BLOCK: u64 = 64 * 1024;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut f = File::open(path)?;
    let len = f.seek(SeekFrom::End(0))?;
    let len = end.map_or(len, |e| e.min(len));
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

/// Most bytes one follow step reads: a follower catches up in steps.
const FOLLOW_STEP: u64 = 1024 * 1024;

/// The file's identity (inode) and length; `None` when it does not exist.
fn identity(path: &Path) -> io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt as _;
    match fs::metadata(path) {
        Ok(m) => Ok(Some((m.ino(), m.len()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Just after the last newline at or before `len` (0 when none in the
/// last [`MAX_LINE`] bytes: lines are never longer).
fn last_line_end(path: &Path, len: u64) -> io::Result<u64> {
    let start = len.saturating_sub(MAX_LINE as u64 + 1);
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(len - start).read_to_end(&mut buf)?;
    Ok(buf
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(start, |i| start + i as u64 + 1))
}

/// Whole lines of `path` from `offset` (at most [`FOLLOW_STEP`] bytes) and
/// the offset after the last of them.
fn lines_from(path: &Path, offset: u64, out: &mut Vec<String>) -> io::Result<u64> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(FOLLOW_STEP).read_to_end(&mut buf)?;
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return Ok(offset);
    };
    out.extend(
        buf[..end]
            .split(|b| *b == b'\n')
            .map(|l| String::from_utf8_lossy(l).into_owned()),
    );
    Ok(offset + end as u64 + 1)
}

/// Follows the log: without `after`, the last `tail_lines` lines and a
/// cursor at the end of the live file; with it, the whole lines written
/// since, across one rotation (a follower asks often; should the file it
/// read have been rotated away entirely, it goes on at the new file's
/// start, saying so).
pub(crate) fn follow(
    dir: &Path,
    keep: u32,
    after: Option<LogCursor>,
    tail_lines: usize,
) -> io::Result<(Vec<String>, LogCursor)> {
    let live = rotated_path(dir, 0);
    let Some((file, len)) = identity(&live)? else {
        return Ok((vec![], after.unwrap_or(LogCursor { file: 0, offset: 0 })));
    };
    let Some(cursor) = after else {
        // The tail and the cursor from the same instant, at a line's end:
        // what is written meanwhile comes with the next read, once.
        let offset = last_line_end(&live, len)?;
        let lines = tail_until(dir, keep, tail_lines, Some(offset))?;
        return Ok((lines, LogCursor { file, offset }));
    };
    let mut lines = vec![];
    if cursor.file == file {
        // Truncated under us (never by Hood's writer): from the start.
        let from = if cursor.offset > len {
            0
        } else {
            cursor.offset
        };
        let offset = lines_from(&live, from, &mut lines)?;
        return Ok((lines, LogCursor { file, offset }));
    }
    // Rotated since: finish the file the cursor was in, then the new one.
    let rotated = (1..=keep).map(|n| rotated_path(dir, n)).find(|p| {
        identity(p)
            .ok()
            .flatten()
            .is_some_and(|(ino, _)| ino == cursor.file)
    });
    match rotated {
        Some(old) => {
            let end = lines_from(&old, cursor.offset, &mut lines)?;
            let (_, old_len) = identity(&old)?.unwrap_or((0, 0));
            if end < old_len {
                // Still catching up in the old file.
                return Ok((
                    lines,
                    LogCursor {
                        file: cursor.file,
                        offset: end,
                    },
                ));
            }
        }
        None if cursor.file != 0 => lines.push("[… earlier lines rotated away …]".into()),
        None => {}
    }
    let offset = lines_from(&live, 0, &mut lines)?;
    Ok((lines, LogCursor { file, offset }))
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

    #[test]
    fn a_follow_starts_at_a_line_end() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(LOG_FILE), "a\nb\nhal").unwrap();
        let (lines, cursor) = follow(d.path(), 1, None, 10).unwrap();
        assert_eq!(lines, vec!["a", "b"], "the partial line comes later");
        assert_eq!(cursor.offset, 4);
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join(LOG_FILE))
            .unwrap();
        f.write_all(b"f\n").unwrap();
        assert_eq!(
            follow(d.path(), 1, Some(cursor), 0).unwrap().0,
            vec!["half"]
        );
        // Nothing yet: an empty log and a cursor at its start.
        let e = tempfile::tempdir().unwrap();
        let (lines, cursor) = follow(e.path(), 1, None, 10).unwrap();
        assert!(lines.is_empty());
        fs::write(e.path().join(LOG_FILE), "first\n").unwrap();
        assert_eq!(
            follow(e.path(), 1, Some(cursor), 0).unwrap().0,
            vec!["first"]
        );
    }

    #[test]
    fn a_follower_gets_every_line_once_across_rotations() {
        let d = tempfile::tempdir().unwrap();
        let mut w = LogWriter::new(
            d.path().to_path_buf(),
            LogLimits {
                max_bytes: 1_000,
                keep: 2,
            },
        );
        for i in 0..5 {
            w.write_line(format!("line {i:04}").as_bytes()).unwrap();
        }
        let (tail, mut cursor) = follow(d.path(), 2, None, 3).unwrap();
        assert_eq!(tail, vec!["line 0002", "line 0003", "line 0004"]);
        let mut seen: Vec<String> = vec![];
        // Written in bursts that rotate the 1 kB file between reads.
        for burst in 0..20 {
            for i in 0..30 {
                w.write_line(format!("line {:04}", 5 + burst * 30 + i).as_bytes())
                    .unwrap();
            }
            loop {
                let (lines, next) = follow(d.path(), 2, Some(cursor), 0).unwrap();
                let done = lines.is_empty() && next == cursor;
                seen.extend(lines);
                cursor = next;
                if done {
                    break;
                }
            }
        }
        let expected: Vec<String> = (5..605).map(|i| format!("line {i:04}")).collect();
        assert_eq!(seen, expected);
        // A partial line waits for its newline.
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join(LOG_FILE))
            .unwrap();
        f.write_all(b"half").unwrap();
        let (lines, same) = follow(d.path(), 2, Some(cursor), 0).unwrap();
        assert!(lines.is_empty());
        assert_eq!(same, cursor);
        f.write_all(b" done\n").unwrap();
        assert_eq!(
            follow(d.path(), 2, Some(cursor), 0).unwrap().0,
            vec!["half done"]
        );
    }
}
