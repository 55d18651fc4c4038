//! A session's recording in asciicast v2: a JSON header line, then one
//! JSON array per event, `[seconds since start, "o" | "r", text]`. Output
//! and window changes are recorded; keystrokes are not (they would keep
//! every password typed at a prompt), as `asciinema rec` does by default.

use serde_json::json;

/// Recordings stop growing here; the end of the session is still noted.
pub const MAX_RECORDING_BYTES: usize = 16 * 1024 * 1024;

/// An asciicast v2 recording being written.
pub struct Recording {
    started_ms: i64,
    text: String,
    /// The tail of the last output that ended inside a UTF-8 character.
    partial: Vec<u8>,
    truncated: bool,
}

impl Recording {
    /// Starts a recording of a `cols`×`rows` window opened at `started_ms`
    /// (Unix milliseconds).
    pub fn new(started_ms: i64, cols: u16, rows: u16, title: &str) -> Self {
        let header = json!({
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": started_ms.div_euclid(1000),
            "title": title,
            "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"},
        });
        Self {
            started_ms,
            text: format!("{header}\n"),
            partial: Vec::new(),
            truncated: false,
        }
    }

    fn event(&mut self, at_ms: i64, code: &str, data: &str) {
        if self.truncated {
            return;
        }
        // Seconds with millisecond precision, as the format wants a number.
        let elapsed = (at_ms - self.started_ms).max(0);
        let line = format!(
            "[{}.{:03}, {}, {}]\n",
            elapsed / 1000,
            elapsed % 1000,
            json!(code),
            json!(data)
        );
        if self.text.len() + line.len() > MAX_RECORDING_BYTES {
            self.truncated = true;
            return;
        }
        self.text.push_str(&line);
    }

    /// Output at `at_ms`. A character split across two writes is recorded
    /// whole, with the second.
    pub fn output(&mut self, at_ms: i64, data: &[u8]) {
        let mut bytes = std::mem::take(&mut self.partial);
        bytes.extend_from_slice(data);
        let complete = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            // An incomplete character at the end (at most 3 bytes) waits;
            // anything else invalid is replaced.
            Err(e) if e.error_len().is_none() && bytes.len() - e.valid_up_to() < 4 => {
                e.valid_up_to()
            }
            Err(_) => bytes.len(),
        };
        self.partial = bytes.split_off(complete);
        if !bytes.is_empty() {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            self.event(at_ms, "o", &text);
        }
    }

    /// The window became `cols`×`rows` at `at_ms`.
    pub fn resize(&mut self, at_ms: i64, cols: u16, rows: u16) {
        self.event(at_ms, "r", &format!("{cols}x{rows}"));
    }

    /// Whether output was dropped because the recording reached its cap.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The finished file.
    pub fn finish(mut self, at_ms: i64) -> Vec<u8> {
        if !self.partial.is_empty() {
            let rest = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            self.event(at_ms, "o", &rest);
        }
        self.text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(cast: &[u8]) -> Vec<serde_json::Value> {
        std::str::from_utf8(cast)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn writes_a_header_and_timed_events() {
        let mut r = Recording::new(1_700_000_000_123, 80, 24, "alloc a1");
        r.output(1_700_000_000_123, b"$ ");
        r.resize(1_700_000_001_000, 100, 30);
        r.output(1_700_000_002_500, b"ls\r\n");
        let l = lines(&r.finish(1_700_000_003_000));
        assert_eq!(l[0]["version"], 2);
        assert_eq!(l[0]["width"], 80);
        assert_eq!(l[0]["height"], 24);
        assert_eq!(l[0]["timestamp"], 1_700_000_000);
        assert_eq!(l[1], json!([0.0, "o", "$ "]));
        assert_eq!(l[2], json!([0.877, "r", "100x30"]));
        assert_eq!(l[3], json!([2.377, "o", "ls\r\n"]));
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn a_character_split_between_writes_is_recorded_whole() {
        let mut r = Recording::new(0, 80, 24, "t");
        let euro = "€".as_bytes();
        r.output(10, &[b'a', euro[0]]);
        r.output(20, &euro[1..]);
        let l = lines(&r.finish(30));
        assert_eq!(l[1], json!([0.01, "o", "a"]));
        assert_eq!(l[2], json!([0.02, "o", "€"]));
    }

    #[test]
    fn stops_growing_at_its_cap() {
        let mut r = Recording::new(0, 80, 24, "t");
        let chunk = vec![b'x'; 1024 * 1024];
        for i in 0..20 {
            r.output(i, &chunk);
        }
        assert!(r.truncated());
        assert!(r.finish(100).len() <= MAX_RECORDING_BYTES);
    }
}
