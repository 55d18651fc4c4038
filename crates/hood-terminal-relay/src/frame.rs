//! The relay's wire format: `[kind u8][sequence u64 BE][body]`. Each
//! direction numbers its frames from 0 so a receiver notices a lost one
//! (NATS core delivers at most once) instead of showing a torn screen.

use hood_terminal::AgentInput;

/// Host to API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Up {
    Output(Vec<u8>),
    Exit { code: Option<i32>, reason: String },
    Ping,
}

/// API to host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Down {
    Input(AgentInput),
    Ping,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a relay frame of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown relay frame kind {0}")]
    UnknownKind(u8),
    #[error("a malformed {0} frame")]
    Malformed(&'static str),
}

const HEADER: usize = 9;

fn frame(kind: u8, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.push(kind);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn split(bytes: &[u8]) -> Result<(u8, u64, &[u8]), FrameError> {
    if bytes.len() < HEADER {
        return Err(FrameError::Short(bytes.len()));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[1..HEADER]);
    Ok((bytes[0], u64::from_be_bytes(seq), &bytes[HEADER..]))
}

impl Up {
    pub(crate) fn encode(&self, seq: u64) -> Vec<u8> {
        match self {
            Up::Output(data) => frame(1, seq, data),
            Up::Exit { code, reason } => {
                let mut body = Vec::with_capacity(5 + reason.len());
                body.push(u8::from(code.is_some()));
                body.extend_from_slice(&code.unwrap_or(0).to_be_bytes());
                body.extend_from_slice(reason.as_bytes());
                frame(2, seq, &body)
            }
            Up::Ping => frame(3, seq, &[]),
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<(u64, Up), FrameError> {
        let (kind, seq, body) = split(bytes)?;
        let up = match kind {
            1 => Up::Output(body.to_vec()),
            2 => {
                if body.len() < 5 {
                    return Err(FrameError::Malformed("exit"));
                }
                let mut code = [0u8; 4];
                code.copy_from_slice(&body[1..5]);
                Up::Exit {
                    code: (body[0] == 1).then(|| i32::from_be_bytes(code)),
                    reason: String::from_utf8_lossy(&body[5..]).into_owned(),
                }
            }
            3 => Up::Ping,
            other => return Err(FrameError::UnknownKind(other)),
        };
        Ok((seq, up))
    }
}

impl Down {
    pub(crate) fn encode(&self, seq: u64) -> Vec<u8> {
        match self {
            Down::Input(AgentInput::Data(data)) => frame(1, seq, data),
            Down::Input(AgentInput::Resize { cols, rows }) => {
                let mut body = [0u8; 4];
                body[..2].copy_from_slice(&cols.to_be_bytes());
                body[2..].copy_from_slice(&rows.to_be_bytes());
                frame(2, seq, &body)
            }
            Down::Input(AgentInput::Close) => frame(3, seq, &[]),
            Down::Ping => frame(4, seq, &[]),
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<(u64, Down), FrameError> {
        let (kind, seq, body) = split(bytes)?;
        let down = match kind {
            1 => Down::Input(AgentInput::Data(body.to_vec())),
            2 => {
                if body.len() != 4 {
                    return Err(FrameError::Malformed("resize"));
                }
                Down::Input(AgentInput::Resize {
                    cols: u16::from_be_bytes([body[0], body[1]]),
                    rows: u16::from_be_bytes([body[2], body[3]]),
                })
            }
            3 => Down::Input(AgentInput::Close),
            4 => Down::Ping,
            other => return Err(FrameError::UnknownKind(other)),
        };
        Ok((seq, down))
    }
}

/// The next sequence number a receiver expects.
#[derive(Debug, Default)]
pub(crate) struct Expected(u64);

impl Expected {
    /// Whether `seq` is the next frame; a gap or a repeat is not.
    pub(crate) fn accept(&mut self, seq: u64) -> bool {
        if seq != self.0 {
            return false;
        }
        self.0 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let ups = [
            Up::Output(b"hello\r\n".to_vec()),
            Up::Output(Vec::new()),
            Up::Exit {
                code: Some(-3),
                reason: "exited".into(),
            },
            Up::Exit {
                code: None,
                reason: String::new(),
            },
            Up::Ping,
        ];
        for (seq, up) in ups.into_iter().enumerate() {
            let seq = seq as u64 * 1_000_003;
            assert_eq!(Up::decode(&up.encode(seq)).unwrap(), (seq, up));
        }
        let downs = [
            Down::Input(AgentInput::Data(b"ls\r".to_vec())),
            Down::Input(AgentInput::Resize { cols: 300, rows: 2 }),
            Down::Input(AgentInput::Close),
            Down::Ping,
        ];
        for (seq, down) in downs.into_iter().enumerate() {
            let seq = u64::MAX - seq as u64;
            assert_eq!(Down::decode(&down.encode(seq)).unwrap(), (seq, down));
        }
    }

    #[test]
    fn malformed_frames_are_refused() {
        assert_eq!(Up::decode(&[1, 0, 0]), Err(FrameError::Short(3)));
        assert_eq!(
            Up::decode(&frame(9, 0, b"")),
            Err(FrameError::UnknownKind(9))
        );
        assert_eq!(
            Up::decode(&frame(2, 0, &[1, 0])),
            Err(FrameError::Malformed("exit"))
        );
        assert_eq!(
            Down::decode(&frame(2, 0, &[0, 80, 0])),
            Err(FrameError::Malformed("resize"))
        );
    }

    #[test]
    fn a_gap_or_a_repeat_is_noticed() {
        let mut expected = Expected::default();
        assert!(expected.accept(0));
        assert!(expected.accept(1));
        assert!(!expected.accept(1), "a repeat");
        let mut expected = Expected::default();
        assert!(expected.accept(0));
        assert!(!expected.accept(2), "frame 1 was lost");
    }
}
