//! A session's output, numbered from 0: the newest bytes in a ring for
//! replay, and the screen they drew for when the ring no longer reaches
//! back far enough.

use std::collections::VecDeque;
use std::num::NonZeroU16;

/// A window side the screen can take (the frame codec refuses 0 already).
fn side(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

/// What a client that has everything before `offset` gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Exactly the bytes from `offset` on (empty when it is up to date).
    Bytes { offset: u64, data: Vec<u8> },
    /// The bytes it missed left the ring: the screen as it is now, drawn
    /// from scratch, and the offset where output continues after it.
    Screen { offset: u64, screen: Vec<u8> },
}

/// The ring and the screen of one session.
pub struct OutputRing {
    /// The offset of `bytes[0]`.
    start: u64,
    bytes: VecDeque<u8>,
    capacity: usize,
    screen: vt100::Parser,
}

impl OutputRing {
    /// A ring holding the newest `capacity` bytes, for a window of
    /// `cols`×`rows`.
    pub fn new(capacity: usize, cols: u16, rows: u16) -> Self {
        Self {
            start: 0,
            bytes: VecDeque::with_capacity(capacity.min(64 * 1024)),
            capacity: capacity.max(1),
            screen: vt100::Parser::new(side(rows), side(cols), 0),
        }
    }

    /// The offset the next byte will have.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// The oldest offset still in the ring.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Appends output; returns the offset of its first byte.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        let offset = self.end();
        self.screen.process(data);
        // Only the newest `capacity` bytes of a huge write can stay.
        let kept = &data[data.len().saturating_sub(self.capacity)..];
        let overflow = (self.bytes.len() + kept.len()).saturating_sub(self.capacity);
        self.bytes.drain(..overflow.min(self.bytes.len()));
        self.bytes.extend(kept);
        self.start = offset + data.len() as u64 - self.bytes.len() as u64;
        offset
    }

    /// The screen follows the window's size.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.screen.screen_mut().set_size(side(rows), side(cols));
    }

    /// What a client that has everything before `offset` needs. An offset
    /// past the end (a client of an earlier session, or confused) is
    /// treated as a gap: it gets the screen.
    pub fn since(&self, offset: u64) -> Replay {
        if offset < self.start || offset > self.end() {
            return Replay::Screen {
                offset: self.end(),
                screen: self.screen.screen().contents_formatted().into_bytes(),
            };
        }
        let skip = usize::try_from(offset - self.start).unwrap_or(usize::MAX);
        Replay::Bytes {
            offset,
            data: self.bytes.iter().skip(skip).copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(r: Replay) -> (u64, Vec<u8>) {
        match r {
            Replay::Bytes { offset, data } => (offset, data),
            Replay::Screen { .. } => panic!("expected bytes, got a screen"),
        }
    }

    #[test]
    fn replays_exactly_what_was_missed_while_it_is_in_the_ring() {
        let mut ring = OutputRing::new(10, 80, 24);
        assert_eq!(ring.push(b"hello "), 0);
        assert_eq!(ring.push(b"world"), 6);
        // 11 bytes in a ring of 10: offset 0 is gone.
        assert_eq!(ring.start(), 1);
        assert_eq!(ring.end(), 11);
        assert_eq!(bytes(ring.since(6)), (6, b"world".to_vec()));
        assert_eq!(bytes(ring.since(1)), (1, b"ello world".to_vec()));
        assert_eq!(bytes(ring.since(11)), (11, vec![]));
    }

    #[test]
    fn a_gap_gets_the_screen_drawn_from_scratch() {
        let mut ring = OutputRing::new(4, 20, 3);
        ring.push(b"first line\r\nsecond");
        match ring.since(0) {
            Replay::Screen { offset, screen } => {
                assert_eq!(offset, 18);
                // Replayed into a fresh terminal, the snapshot draws the
                // same text.
                let mut fresh = vt100::Parser::new(side(3), side(20), 0);
                fresh.process(&screen);
                assert_eq!(fresh.screen().contents(), "first line\nsecond");
            }
            other => panic!("expected a screen, got {other:?}"),
        }
        assert!(matches!(ring.since(99), Replay::Screen { offset: 18, .. }));
    }

    #[test]
    fn a_write_larger_than_the_ring_keeps_its_tail_and_numbering() {
        let mut ring = OutputRing::new(3, 80, 24);
        ring.push(b"ab");
        assert_eq!(ring.push(b"cdefg"), 2);
        assert_eq!((ring.start(), ring.end()), (4, 7));
        assert_eq!(bytes(ring.since(4)), (4, b"efg".to_vec()));
    }
}
