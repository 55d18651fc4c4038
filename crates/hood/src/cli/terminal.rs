//! `hood alloc terminal ID`: a shell inside the allocation, like `ssh`. On
//! a terminal, keys go through raw and the window's size follows the
//! local one; from a pipe, the lines are typed in and end-of-input ends
//! the shell. A dropped connection is resumed where it broke. Exits with
//! the shell's exit code.

use super::client::Client;
use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use hood_terminal::{ClientFrame, ServerFrame};
use std::io::{IsTerminal, Write};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// Reconnects after a dropped connection, at most this many times in a row.
const RECONNECTS: u32 = 5;
/// Ctrl-D: what end of input becomes for the shell.
const END_OF_INPUT: u8 = 4;

/// The local terminal in raw mode until dropped.
struct RawMode(rustix::termios::Termios);

impl RawMode {
    fn enter() -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).context("reading the terminal's mode")?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw)
            .context("putting the terminal in raw mode")?;
        Ok(Self(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.0,
        );
    }
}

fn window() -> Option<(u16, u16)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// Runs the session; returns the shell's exit code.
pub async fn run(client: &Client, id: Uuid) -> Result<i32> {
    let tty = std::io::stdin().is_terminal();
    let (cols, rows) = window().unwrap_or((80, 24));
    let mut path = format!("/api/v1/allocations/{id}/terminal?cols={cols}&rows={rows}");
    let mut ws = client.websocket(&path).await?;
    let (session, mut offset) = hello(&mut ws).await?;
    path = format!("/api/v1/allocations/{id}/terminal?session={session}");

    // Standard input on a thread of its own (reads block).
    let (keys_tx, mut keys) = mpsc::unbounded_channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    let _ = keys_tx.send(vec![END_OF_INPUT]);
                    return;
                }
                Ok(n) => {
                    if keys_tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let _raw = if tty { Some(RawMode::enter()?) } else { None };
    let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .context("watching the window's size")?;
    let mut stdout = std::io::stdout();
    let mut failures = 0;
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    failures = 0;
                    match ServerFrame::decode(&bytes).context("a frame from the server")? {
                        ServerFrame::Output { offset: at, data } => {
                            // Replays never overlap what was printed.
                            let skip = usize::try_from(offset.saturating_sub(at)).unwrap_or(usize::MAX);
                            if let Some(fresh) = data.get(skip..) {
                                stdout.write_all(fresh)?;
                                stdout.flush()?;
                            }
                            offset = offset.max(at + data.len() as u64);
                        }
                        ServerFrame::Snapshot { offset: at, screen } => {
                            // Clear, then draw the screen as it is now.
                            stdout.write_all(b"\x1b[H\x1b[2J")?;
                            stdout.write_all(&screen)?;
                            stdout.flush()?;
                            offset = at;
                        }
                        ServerFrame::Exit { code, reason } => {
                            drop(_raw);
                            if code.is_none() {
                                eprintln!("\r\n-- the session ended: {reason}");
                            }
                            return Ok(code.unwrap_or(1));
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) if frame.as_ref().is_some_and(|f| u16::from(f.code) == 1003) => {
                    bail!("the server refused a frame: {}", frame.map(|f| f.reason.to_string()).unwrap_or_default());
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    failures += 1;
                    if failures > RECONNECTS {
                        bail!("the connection to the terminal broke {RECONNECTS} times in a row");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(failures))).await;
                    if let Ok(mut again) = client.websocket(&format!("{path}&offset={offset}")).await {
                        if hello(&mut again).await.is_ok() {
                            ws = again;
                        }
                    }
                }
            },
            Some(keys) = keys.recv() => {
                let _ = ws.send(Message::binary(ClientFrame::Input(keys).encode())).await;
            }
            _ = resized.recv() => {
                if let Some((cols, rows)) = window() {
                    let _ = ws.send(Message::binary(ClientFrame::Resize { cols, rows }.encode())).await;
                }
            }
        }
    }
}

/// The first message: the session's id and where its output starts.
async fn hello<S>(ws: &mut S) -> Result<(Uuid, u64)>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let hello: serde_json::Value =
                    serde_json::from_str(text.as_str()).context("the terminal's first message")?;
                let session = hello["session_id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .context("the terminal's first message names no session")?;
                return Ok((session, hello["offset"].as_u64().unwrap_or(0)));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("the terminal connection broke: {e}"),
            None => bail!("the terminal closed before it began"),
        }
    }
}
