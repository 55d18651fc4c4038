//! The terminal WebSocket's binary frames: one type byte, then the body.
//!
//! | type | direction | body |
//! |------|-----------|------|
//! | `0` input   | client → server | bytes for the PTY |
//! | `1` output  | server → client | offset (u64, big-endian) of the first byte, then the bytes |
//! | `2` resize  | client → server | columns, rows (u16 each, big-endian) |
//! | `3` pause   | client → server | none: stop sending output (flow control) |
//! | `4` resume  | client → server | none: send again, from where it stopped |
//! | `5` snapshot| server → client | offset (u64) where output continues, then the screen as escape sequences |
//! | `6` exit    | server → client | exit code (i32, big-endian; `i32::MIN` when none), then the reason (UTF-8) |
//!
//! Output is numbered from 0 for the whole session, so a client that
//! reconnects with the offset after the last byte it has gets exactly
//! what it missed.

/// Input bytes for the PTY.
pub const INPUT: u8 = 0;
/// Numbered output.
pub const OUTPUT: u8 = 1;
/// A new window size.
pub const RESIZE: u8 = 2;
/// Stop sending output.
pub const PAUSE: u8 = 3;
/// Send output again.
pub const RESUME: u8 = 4;
/// The whole screen, when the missed output is gone from the ring.
pub const SNAPSHOT: u8 = 5;
/// The session ended.
pub const EXIT: u8 = 6;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    Input(Vec<u8>),
    Resize { cols: u16, rows: u16 },
    Pause,
    Resume,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    Output { offset: u64, data: Vec<u8> },
    Snapshot { offset: u64, screen: Vec<u8> },
    Exit { code: Option<i32>, reason: String },
}

/// A frame that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("an empty frame (every frame starts with its type byte)")]
    Empty,
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("a {kind} frame needs {needed} bytes after its type, it has {got}")]
    Short {
        kind: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("a window of {cols}×{rows} (each side must be 1 to 1000)")]
    BadSize { cols: u16, rows: u16 },
}

/// The largest window side accepted (a PTY of 0 rows confuses programs).
pub const MAX_SIDE: u16 = 1000;

fn check_size(cols: u16, rows: u16) -> Result<(), FrameError> {
    if (1..=MAX_SIDE).contains(&cols) && (1..=MAX_SIDE).contains(&rows) {
        Ok(())
    } else {
        Err(FrameError::BadSize { cols, rows })
    }
}

/// Checks a window size from elsewhere (a query string) by the same rule.
pub fn valid_size(cols: u16, rows: u16) -> Result<(), FrameError> {
    check_size(cols, rows)
}

fn split<'a, const N: usize>(
    body: &'a [u8],
    kind: &'static str,
) -> Result<([u8; N], &'a [u8]), FrameError> {
    let short = FrameError::Short {
        kind,
        needed: N,
        got: body.len(),
    };
    let head: [u8; N] = body.get(..N).and_then(|h| h.try_into().ok()).ok_or(short)?;
    Ok((head, &body[N..]))
}

impl ClientFrame {
    pub fn decode(frame: &[u8]) -> Result<Self, FrameError> {
        let (&kind, body) = frame.split_first().ok_or(FrameError::Empty)?;
        match kind {
            INPUT => Ok(Self::Input(body.to_vec())),
            RESIZE => {
                let (head, _) = split::<4>(body, "resize")?;
                let cols = u16::from_be_bytes([head[0], head[1]]);
                let rows = u16::from_be_bytes([head[2], head[3]]);
                check_size(cols, rows)?;
                Ok(Self::Resize { cols, rows })
            }
            PAUSE => Ok(Self::Pause),
            RESUME => Ok(Self::Resume),
            other => Err(FrameError::UnknownType(other)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Input(data) => tagged(INPUT, &[], data),
            Self::Resize { cols, rows } => {
                let mut head = [0u8; 4];
                head[..2].copy_from_slice(&cols.to_be_bytes());
                head[2..].copy_from_slice(&rows.to_be_bytes());
                tagged(RESIZE, &head, &[])
            }
            Self::Pause => vec![PAUSE],
            Self::Resume => vec![RESUME],
        }
    }
}

impl ServerFrame {
    pub fn decode(frame: &[u8]) -> Result<Self, FrameError> {
        let (&kind, body) = frame.split_first().ok_or(FrameError::Empty)?;
        match kind {
            OUTPUT => {
                let (head, data) = split::<8>(body, "output")?;
                Ok(Self::Output {
                    offset: u64::from_be_bytes(head),
                    data: data.to_vec(),
                })
            }
            SNAPSHOT => {
                let (head, screen) = split::<8>(body, "snapshot")?;
                Ok(Self::Snapshot {
                    offset: u64::from_be_bytes(head),
                    screen: screen.to_vec(),
                })
            }
            EXIT => {
                let (head, reason) = split::<4>(body, "exit")?;
                let code = i32::from_be_bytes(head);
                Ok(Self::Exit {
                    code: (code != i32::MIN).then_some(code),
                    reason: String::from_utf8_lossy(reason).into_owned(),
                })
            }
            other => Err(FrameError::UnknownType(other)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Output { offset, data } => tagged(OUTPUT, &offset.to_be_bytes(), data),
            Self::Snapshot { offset, screen } => tagged(SNAPSHOT, &offset.to_be_bytes(), screen),
            Self::Exit { code, reason } => tagged(
                EXIT,
                &code.unwrap_or(i32::MIN).to_be_bytes(),
                reason.as_bytes(),
            ),
        }
    }
}

fn tagged(kind: u8, head: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + head.len() + body.len());
    out.push(kind);
    out.extend_from_slice(head);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_survives_a_round_trip() {
        for f in [
            ClientFrame::Input(b"ls -l\r".to_vec()),
            ClientFrame::Input(vec![]),
            ClientFrame::Resize {
                cols: 132,
                rows: 43,
            },
            ClientFrame::Pause,
            ClientFrame::Resume,
        ] {
            assert_eq!(ClientFrame::decode(&f.encode()), Ok(f));
        }
        for f in [
            ServerFrame::Output {
                offset: u64::MAX - 3,
                data: vec![0, 255, 27],
            },
            ServerFrame::Snapshot {
                offset: 7,
                screen: b"\x1b[Hhi".to_vec(),
            },
            ServerFrame::Exit {
                code: Some(-1),
                reason: "exited".into(),
            },
            ServerFrame::Exit {
                code: None,
                reason: "idle for 15 min".into(),
            },
        ] {
            assert_eq!(ServerFrame::decode(&f.encode()), Ok(f));
        }
    }

    #[test]
    fn the_wire_layout_is_the_documented_one() {
        assert_eq!(
            ClientFrame::Resize { cols: 80, rows: 24 }.encode(),
            vec![2, 0, 80, 0, 24]
        );
        assert_eq!(
            ServerFrame::Output {
                offset: 258,
                data: b"a".to_vec()
            }
            .encode(),
            vec![1, 0, 0, 0, 0, 0, 0, 1, 2, b'a']
        );
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        assert_eq!(ClientFrame::decode(&[]), Err(FrameError::Empty));
        assert_eq!(ClientFrame::decode(&[9]), Err(FrameError::UnknownType(9)));
        // Output is the server's to send.
        assert_eq!(
            ClientFrame::decode(&[1, 0]),
            Err(FrameError::UnknownType(1))
        );
        assert_eq!(
            ClientFrame::decode(&[2, 0, 80]),
            Err(FrameError::Short {
                kind: "resize",
                needed: 4,
                got: 2
            })
        );
        assert_eq!(
            ClientFrame::decode(&[2, 0, 0, 0, 24]),
            Err(FrameError::BadSize { cols: 0, rows: 24 })
        );
        assert!(ServerFrame::decode(&[1, 0, 0]).is_err());
    }
}
