//! The SSH gateway (Edd Cloud's SSH flow): `ssh {container}@hood -p 2222`
//! with one of the user's uploaded keys opens a terminal session in that
//! running container of their organization. Nothing listens on the hosts:
//! the session is the terminal machinery's (the allocation's agent dials
//! out to the gateway), audited and recorded like any terminal.
//!
//! A `shell` request with a PTY is an interactive shell of the client's
//! window size; an `exec` request runs the command (`/bin/sh -c …`) and
//! answers its exit status. Keys are checked by fingerprint after russh
//! has verified the client's signature; a key that opens nothing is
//! refused like any other (no hint of which containers exist).

use hood_app::{SshAccess, SshTarget};
use hood_terminal::{ClientFrame, Read, Replay, Session};
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use russh::server::{Auth, Handle, Msg, Server as _, Session as SshSession};
use russh::{Channel, ChannelId, CryptoVec};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The window of an `exec` without a PTY.
const DEFAULT_COLS: u16 = 80;
const DEFAULT_ROWS: u16 = 24;
/// Output is sent in pieces of at most this.
const MAX_CHUNK: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("the SSH host key at {path}: {reason}")]
    HostKey { path: String, reason: String },
}

/// The gateway's host key, made once (Ed25519) and kept at `path` (0600).
pub fn host_key(path: &Path) -> Result<PrivateKey, SshError> {
    let fail = |reason: String| SshError::HostKey {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_openssh(text.as_bytes()).map_err(|e| fail(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::random(
                &mut russh::keys::ssh_key::rand_core::OsRng,
                russh::keys::Algorithm::Ed25519,
            )
            .map_err(|e| fail(e.to_string()))?;
            let text = key
                .to_openssh(russh::keys::ssh_key::LineEnding::LF)
                .map_err(|e| fail(e.to_string()))?;
            hood_files::create_private(path, text.as_bytes()).map_err(|e| fail(e.to_string()))?;
            tracing::info!(path = %path.display(), "made the SSH gateway's host key");
            Ok(key)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Serves SSH on `listener` until the task is dropped or aborted.
pub fn serve(
    listener: TcpListener,
    key: PrivateKey,
    access: SshAccess,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let config = Arc::new(russh::server::Config {
        keys: vec![key],
        auth_rejection_time: Duration::from_millis(500),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: Some(Duration::from_secs(3600)),
        keepalive_interval: Some(Duration::from_secs(30)),
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
        ..Default::default()
    });
    let mut gateway = Gateway {
        access: Arc::new(access),
    };
    tokio::spawn(async move { gateway.run_on_socket(config, &listener).await })
}

struct Gateway {
    access: Arc<SshAccess>,
}

impl russh::server::Server for Gateway {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            access: self.access.clone(),
            peer,
            target: None,
            channels: HashMap::new(),
        }
    }
}

/// One channel: its window, and its session once started.
struct ChannelState {
    cols: u16,
    rows: u16,
    pty: bool,
    session: Option<Arc<Session>>,
}

/// One client connection.
struct Connection {
    access: Arc<SshAccess>,
    peer: Option<SocketAddr>,
    target: Option<SshTarget>,
    channels: HashMap<ChannelId, ChannelState>,
}

fn reject() -> Auth {
    Auth::Reject {
        proceed_with_methods: None,
        partial_success: false,
    }
}

impl Connection {
    async fn authorize(&self, user: &str, key: &PublicKey) -> Option<SshTarget> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        match self.access.authorize(user, &fingerprint).await {
            Ok(target) => target,
            Err(e) => {
                tracing::warn!(error = %e, "could not check an SSH key");
                None
            }
        }
    }

    /// Opens the channel's session and pumps its output to the client.
    async fn start(
        &mut self,
        channel: ChannelId,
        command: Vec<String>,
        session: &mut SshSession,
    ) -> Result<(), russh::Error> {
        let (Some(target), Some(state)) = (self.target.clone(), self.channels.get_mut(&channel))
        else {
            return session.channel_failure(channel);
        };
        if state.session.is_some() {
            return session.channel_failure(channel);
        }
        let opened = self
            .access
            .open(&target, state.cols, state.rows, command)
            .await;
        let terminal = match opened {
            Ok(terminal) => terminal,
            Err(e) => {
                tracing::warn!(container = %target.container_id, error = %e,
                    "an SSH session could not open");
                session.channel_failure(channel)?;
                let handle = session.handle();
                let message = format!("hood: {e}\r\n");
                tokio::spawn(async move {
                    let _ = handle
                        .extended_data(channel, 1, CryptoVec::from_slice(message.as_bytes()))
                        .await;
                    let _ = handle.exit_status_request(channel, 255).await;
                    let _ = handle.close(channel).await;
                });
                return Ok(());
            }
        };
        tracing::info!(container = %target.container_id, user = %target.user_id,
            session = %terminal.info().id, peer = ?self.peer, pty = state.pty, "SSH session opened");
        state.session = Some(terminal.clone());
        session.channel_success(channel)?;
        terminal.client_attached();
        tokio::spawn(pump(terminal, session.handle(), channel));
        Ok(())
    }

    fn session_of(&self, channel: ChannelId) -> Option<&Arc<Session>> {
        self.channels.get(&channel)?.session.as_ref()
    }
}

/// The session's output to the channel, then its exit status.
async fn pump(terminal: Arc<Session>, handle: Handle, channel: ChannelId) {
    let mut changed = terminal.subscribe();
    let mut offset = 0;
    loop {
        match terminal.read(offset) {
            Read::Replay(Replay::Bytes { data, .. }) if !data.is_empty() => {
                let data: Vec<u8> = data.into_iter().take(MAX_CHUNK).collect();
                offset += data.len() as u64;
                if handle
                    .data(channel, CryptoVec::from_slice(&data))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Read::Replay(Replay::Screen {
                offset: next,
                screen,
            }) => {
                offset = next;
                if handle
                    .data(channel, CryptoVec::from_slice(&screen))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Read::Ended(ended) => {
                let status = ended
                    .code
                    .and_then(|c| u32::try_from(c).ok())
                    .unwrap_or(255);
                let _ = handle.exit_status_request(channel, status).await;
                let _ = handle.eof(channel).await;
                let _ = handle.close(channel).await;
                break;
            }
            Read::Replay(Replay::Bytes { .. }) => {}
        }
        if changed.changed().await.is_err() {
            break;
        }
    }
    terminal.client_detached();
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        key: &PublicKey,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.authorize(user, key).await {
            Some(_) => Auth::Accept,
            None => reject(),
        })
    }

    async fn auth_publickey(&mut self, user: &str, key: &PublicKey) -> Result<Auth, Self::Error> {
        // Called once russh has checked the client's signature.
        match self.authorize(user, key).await {
            Some(target) => {
                tracing::info!(container = user, user = %target.user_id, peer = ?self.peer,
                    "SSH key accepted");
                self.target = Some(target);
                Ok(Auth::Accept)
            }
            None => {
                tracing::info!(container = user, peer = ?self.peer, "SSH key refused");
                Ok(reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        _session: &mut SshSession,
    ) -> Result<bool, Self::Error> {
        self.channels.insert(
            channel.id(),
            ChannelState {
                cols: DEFAULT_COLS,
                rows: DEFAULT_ROWS,
                pty: false,
                session: None,
            },
        );
        Ok(true)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        let Some(state) = self.channels.get_mut(&channel) else {
            return session.channel_failure(channel);
        };
        state.cols = u16::try_from(col_width).unwrap_or(DEFAULT_COLS).max(1);
        state.rows = u16::try_from(row_height).unwrap_or(DEFAULT_ROWS).max(1);
        state.pty = true;
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.start(channel, Vec::new(), session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        self.start(
            channel,
            vec!["/bin/sh".into(), "-c".into(), command],
            session,
        )
        .await
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        if let Some(terminal) = self.session_of(channel) {
            let _ = terminal.input(ClientFrame::Input(data.to_vec()));
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        if let Some(terminal) = self.session_of(channel) {
            let _ = terminal.input(ClientFrame::Resize {
                cols: u16::try_from(col_width).unwrap_or(DEFAULT_COLS).max(1),
                rows: u16::try_from(row_height).unwrap_or(DEFAULT_ROWS).max(1),
            });
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        // The client's input ended: end of file on the terminal (^D).
        if let Some(terminal) = self.session_of(channel) {
            let _ = terminal.input(ClientFrame::Input(vec![4]));
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_host_key_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssh_host_ed25519_key");
        let made = host_key(&path).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = host_key(&path).unwrap();
        assert_eq!(
            made.public_key().fingerprint(HashAlg::Sha256),
            again.public_key().fingerprint(HashAlg::Sha256)
        );
        // A damaged file is an error, never replaced silently.
        std::fs::write(&path, "not a key").unwrap();
        assert!(host_key(&path).is_err());
    }
}
