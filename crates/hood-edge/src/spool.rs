//! A crash-safe spool: records appended to numbered segment files in one
//! directory, each record framed as `len: u32 LE | crc32: u32 LE | bytes`.
//!
//! Why a file and not a queue in memory: an append is one `write(2)` into
//! the kernel's page cache before the caller goes on, so a SIGKILL of the
//! process loses nothing appended; [`Spool::seal`] closes the active segment
//! and `fsync`s it, so a power loss loses at most what was appended since
//! the last seal. Sealed segments are read back ([`Segment`]), shipped and
//! removed; a segment shipped but not yet removed when the process died is
//! shipped again at the next open, so whatever consumes it must be
//! idempotent.
//!
//! One process owns a directory at a time (an advisory lock on `LOCK`,
//! released by the kernel when the process dies).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const SEGMENT_SUFFIX: &str = ".seg";
const LOCK_FILE: &str = "LOCK";
/// The largest record: far above any usage event (a few hundred bytes),
/// small enough that a damaged length cannot ask for gigabytes.
pub const MAX_RECORD: usize = 1 << 20;

thread_local! {
    /// Each serving thread's framing buffer.
    static FRAME: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}
/// What a framing buffer keeps after an oversized record.
const FRAME_KEEP: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "spool {0} is in use by another process (each edge needs a spool directory of its own)"
    )]
    Busy(PathBuf),
    #[error("record of {0} bytes is larger than the spool's limit")]
    TooLarge(usize),
    #[error("record not encoded: {0}")]
    Encode(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A segment no one appends to any more: shipped, then removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub seq: u64,
    pub path: PathBuf,
}

struct Active {
    seq: u64,
    file: File,
    records: u64,
}

pub struct Spool {
    dir: PathBuf,
    active: Mutex<Active>,
    // Held for the spool's life: the advisory lock lives with the handle.
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).finish()
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
}

fn create_segment(dir: &Path, seq: u64) -> Result<File, SpoolError> {
    let path = segment_path(dir, seq);
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))
}

/// Makes the directory's entries (a segment just created) survive a power
/// loss.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl Spool {
    /// Opens (creating) the spool in `dir` and returns it with the segments
    /// an earlier process left, oldest first: ship those before any new one.
    pub fn open(dir: &Path) -> Result<(Spool, Vec<Sealed>), SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(SpoolError::Busy(dir.to_owned())),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let mut left = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            left.push(Sealed {
                seq,
                path: entry.path(),
            });
        }
        left.sort_by_key(|s| s.seq);
        let seq = left.last().map_or(0, |s| s.seq + 1);
        let file = create_segment(dir, seq)?;
        sync_dir(dir)?;
        Ok((
            Spool {
                dir: dir.to_owned(),
                active: Mutex::new(Active {
                    seq,
                    file,
                    records: 0,
                }),
                _lock: lock,
            },
            left,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record with a single write into the active segment and
    /// returns how many records that segment holds now. Once this returns,
    /// the record survives the death of the process.
    pub fn append(&self, record: &[u8]) -> Result<u64, SpoolError> {
        self.append_with(|buf| {
            buf.extend_from_slice(record);
            Ok(())
        })
    }

    /// [`Spool::append`] of the record `encode` writes into a buffer this
    /// thread reuses: no allocation per record on the serving path.
    pub fn append_with(
        &self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
    ) -> Result<u64, SpoolError> {
        FRAME.with_borrow_mut(|framed| {
            framed.clear();
            framed.extend_from_slice(&[0u8; 8]);
            encode(framed).map_err(SpoolError::Encode)?;
            let len = framed.len() - 8;
            if len > MAX_RECORD {
                framed.clear();
                framed.shrink_to(FRAME_KEEP);
                return Err(SpoolError::TooLarge(len));
            }
            let crc = crc32fast::hash(&framed[8..]);
            // Fits: MAX_RECORD is far below u32::MAX.
            framed[..4].copy_from_slice(&(len as u32).to_le_bytes());
            framed[4..8].copy_from_slice(&crc.to_le_bytes());
            // A poisoned lock only means another appender panicked between
            // whole writes; the file itself is still consistent.
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            let Active { seq, file, records } = &mut *active;
            file.write_all(framed)
                .map_err(|e| io(&segment_path(&self.dir, *seq))(e))?;
            *records += 1;
            Ok(*records)
        })
    }

    /// Closes the active segment (a new one takes the appends), syncs it to
    /// disk and returns it; `None` when nothing was appended since the last
    /// seal.
    pub fn seal(&self) -> Result<Option<Sealed>, SpoolError> {
        let (old, seq) = {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            if active.records == 0 {
                return Ok(None);
            }
            let next = active.seq + 1;
            let file = create_segment(&self.dir, next)?;
            let old = std::mem::replace(
                &mut *active,
                Active {
                    seq: next,
                    file,
                    records: 0,
                },
            );
            (old.file, old.seq)
        };
        let path = segment_path(&self.dir, seq);
        old.sync_data().map_err(io(&path))?;
        // The new segment's entry: without it a power loss could lose the
        // file that appends go to now.
        sync_dir(&self.dir)?;
        Ok(Some(Sealed { seq, path }))
    }

    /// Removes a shipped segment.
    pub fn remove(&self, sealed: &Sealed) -> Result<(), SpoolError> {
        match std::fs::remove_file(&sealed.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&sealed.path)(e)),
        }
    }

    /// Sets a segment that failed its checksums aside (`*.damaged`), for an
    /// operator to look at, instead of removing it.
    pub fn set_aside(&self, sealed: &Sealed) -> Result<PathBuf, SpoolError> {
        let to = sealed.path.with_extension("damaged");
        std::fs::rename(&sealed.path, &to).map_err(io(&sealed.path))?;
        Ok(to)
    }
}

/// How reading a segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Every record was whole.
    Clean,
    /// The last record was cut short: the writer died inside its write
    /// (its caller never went on, so nothing acknowledged is missing).
    TornTail,
    /// A whole record failed its checksum, or a length is impossible: the
    /// file was damaged after it was written. Records after it are unread.
    Damaged { offset: u64 },
}

/// Reads a sealed segment record by record.
pub struct Segment {
    reader: BufReader<File>,
    path: PathBuf,
    offset: u64,
    end: Option<SegmentEnd>,
}

impl Segment {
    pub fn open(sealed: &Sealed) -> Result<Segment, SpoolError> {
        let file = File::open(&sealed.path).map_err(io(&sealed.path))?;
        Ok(Segment {
            reader: BufReader::with_capacity(256 * 1024, file),
            path: sealed.path.clone(),
            offset: 0,
            end: None,
        })
    }

    /// How reading ended; `None` until [`Segment::next_record`] returned `None`.
    pub fn end(&self) -> Option<SegmentEnd> {
        self.end
    }

    /// The next whole record, or `None` at the end (see [`Segment::end`]).
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>, SpoolError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let mut header = [0u8; 8];
        match read_full(&mut self.reader, &mut header).map_err(io(&self.path))? {
            0 => return Ok(self.finish(SegmentEnd::Clean)),
            8 => {}
            _ => return Ok(self.finish(SegmentEnd::TornTail)),
        }
        let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        if len > MAX_RECORD {
            let offset = self.offset;
            return Ok(self.finish(SegmentEnd::Damaged { offset }));
        }
        let mut record = vec![0u8; len];
        if read_full(&mut self.reader, &mut record).map_err(io(&self.path))? < len {
            return Ok(self.finish(SegmentEnd::TornTail));
        }
        if crc32fast::hash(&record) != crc {
            let offset = self.offset;
            return Ok(self.finish(SegmentEnd::Damaged { offset }));
        }
        self.offset += 8 + len as u64;
        Ok(Some(record))
    }

    fn finish(&mut self, end: SegmentEnd) -> Option<Vec<u8>> {
        self.end = Some(end);
        None
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read_all(sealed: &Sealed) -> (Vec<Vec<u8>>, SegmentEnd) {
        let mut segment = Segment::open(sealed).unwrap();
        let mut records = vec![];
        while let Some(r) = segment.next_record().unwrap() {
            records.push(r);
        }
        (records, segment.end().unwrap())
    }

    #[test]
    fn records_come_back_in_order_from_sealed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, left) = Spool::open(dir.path()).unwrap();
        assert!(left.is_empty());
        assert_eq!(
            spool.seal().unwrap(),
            None,
            "nothing appended, nothing sealed"
        );
        assert_eq!(spool.append(b"one").unwrap(), 1);
        assert_eq!(spool.append(b"").unwrap(), 2);
        let first = spool.seal().unwrap().unwrap();
        spool.append(b"three").unwrap();
        let second = spool.seal().unwrap().unwrap();
        assert!(first.seq < second.seq);
        assert_eq!(
            read_all(&first),
            (vec![b"one".to_vec(), vec![]], SegmentEnd::Clean)
        );
        assert_eq!(
            read_all(&second),
            (vec![b"three".to_vec()], SegmentEnd::Clean)
        );
        spool.remove(&first).unwrap();
        assert!(!first.path.exists());
        spool.remove(&first).unwrap();
    }

    #[test]
    fn a_reopened_spool_hands_back_what_the_last_process_left() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, _) = Spool::open(dir.path()).unwrap();
            spool.append(b"sealed").unwrap();
            spool.seal().unwrap().unwrap();
            // Appended, never sealed: the process "dies" here.
            spool.append(b"active").unwrap();
        }
        let (spool, left) = Spool::open(dir.path()).unwrap();
        let records: Vec<Vec<u8>> = left.iter().flat_map(|s| read_all(s).0).collect();
        assert_eq!(records, vec![b"sealed".to_vec(), b"active".to_vec()]);
        // New appends go after every old segment.
        spool.append(b"new").unwrap();
        let new = spool.seal().unwrap().unwrap();
        assert!(left.iter().all(|s| s.seq < new.seq));
    }

    #[test]
    fn a_second_owner_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_spool, _) = Spool::open(dir.path()).unwrap();
        assert!(matches!(Spool::open(dir.path()), Err(SpoolError::Busy(_))));
    }

    #[test]
    fn a_torn_tail_is_told_apart_from_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path()).unwrap();
        spool.append(b"whole").unwrap();
        spool.append(b"cut short").unwrap();
        let sealed = spool.seal().unwrap().unwrap();
        let bytes = std::fs::read(&sealed.path).unwrap();

        // The writer died inside its last write.
        for cut in [bytes.len() - 1, 13 + 3, 13 + 8] {
            std::fs::write(&sealed.path, &bytes[..cut]).unwrap();
            assert_eq!(
                read_all(&sealed),
                (vec![b"whole".to_vec()], SegmentEnd::TornTail),
                "cut at {cut}"
            );
        }

        // A flipped bit in a whole record.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&sealed.path, &flipped).unwrap();
        assert_eq!(
            read_all(&sealed),
            (vec![b"whole".to_vec()], SegmentEnd::Damaged { offset: 13 })
        );
        // An impossible length.
        let mut huge = bytes;
        huge[13..17].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&sealed.path, &huge).unwrap();
        assert_eq!(read_all(&sealed).1, SegmentEnd::Damaged { offset: 13 });
        let aside = spool.set_aside(&sealed).unwrap();
        assert!(aside.exists() && !sealed.path.exists());
        // A set-aside segment is not handed back at the next open.
        drop(spool);
        let (_, left) = Spool::open(dir.path()).unwrap();
        assert!(left.iter().all(|s| s.seq != sealed.seq), "{left:?}");
    }

    #[test]
    fn oversized_records_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path()).unwrap();
        assert!(matches!(
            spool.append(&vec![0u8; MAX_RECORD + 1]),
            Err(SpoolError::TooLarge(_))
        ));
        assert_eq!(spool.seal().unwrap(), None);
    }
}
