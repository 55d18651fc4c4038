//! A small SMTP server for tests, following RFC 5321: greeting 220, EHLO
//! multi-line 250 (or 502 so the client falls back to HELO), optional AUTH
//! PLAIN, MAIL/RCPT, DATA 354 … `.` 250, QUIT 221. Plain TCP or implicit
//! TLS. It records every session as it goes (before answering), so a test
//! can inspect the record as soon as the client has its reply.

use base64::Engine as _;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the server behaves.
#[derive(Clone)]
pub struct Behavior {
    /// The greeting line, e.g. `220 mx.test ESMTP` or `421 4.3.2 busy`. A
    /// non-220 greeting is followed by closing (421) or by refusing every
    /// command but QUIT (554).
    pub greeting: String,
    /// `false`: answer EHLO with 502 (an RFC 821 server).
    pub ehlo: bool,
    /// Advertise `AUTH PLAIN LOGIN` and accept only these credentials.
    pub auth: Option<(String, String)>,
    /// Answer `RCPT TO` for this address with this reply instead of 250.
    pub rcpt_reply: Option<(String, String)>,
    /// Accept the connection and never say anything.
    pub silent: bool,
    /// Speak TLS from the first byte.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for Behavior {
    fn default() -> Self {
        Self {
            greeting: "220 mx.test ESMTP ready".into(),
            ehlo: true,
            auth: None,
            rcpt_reply: None,
            silent: false,
            tls: None,
        }
    }
}

/// What one client session did.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Every command line, in order (AUTH lines included, verbatim).
    pub commands: Vec<String>,
    /// `EHLO name` / `HELO name` as sent.
    pub hello: Option<String>,
    /// Credentials decoded from AUTH PLAIN.
    pub auth: Option<(String, String)>,
    pub mail_from: Option<String>,
    /// Accepted recipients.
    pub rcpt_to: Vec<String>,
    /// The DATA section as sent on the wire (dot-stuffed), without the
    /// terminating `.` line.
    pub raw_data: Option<String>,
    /// The message after removing the dot-stuffing.
    pub message: Option<String>,
    /// A line arrived ending in a bare LF instead of CRLF.
    pub bare_lf: bool,
    pub quit: bool,
    /// The session ran over TLS.
    pub tls: bool,
}

pub struct SmtpServer {
    pub port: u16,
    sessions: Arc<Mutex<Vec<Session>>>,
    task: JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    pub async fn start(behavior: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let recorded = sessions.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let behavior = behavior.clone();
                let index = {
                    let mut all = recorded.lock().expect("lock");
                    all.push(Session::default());
                    all.len() - 1
                };
                let record = Recorder {
                    all: recorded.clone(),
                    index,
                };
                tokio::spawn(async move {
                    match behavior.tls.clone() {
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                record.update(|s| s.tls = true);
                                serve(stream, &behavior, &record).await;
                            }
                        }
                        None => serve(tcp, &behavior, &record).await,
                    }
                });
            }
        });
        Self {
            port,
            sessions,
            task,
        }
    }

    /// Every session so far, in connection order.
    pub fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().expect("lock").clone()
    }

    /// The only session; panics unless there was exactly one.
    pub fn session(&self) -> Session {
        let all = self.sessions();
        assert_eq!(all.len(), 1, "expected one SMTP session, got {all:#?}");
        all.into_iter().next().expect("one session")
    }
}

struct Recorder {
    all: Arc<Mutex<Vec<Session>>>,
    index: usize,
}

impl Recorder {
    fn update(&self, f: impl FnOnce(&mut Session)) {
        let mut all = self.all.lock().expect("lock");
        f(&mut all[self.index]);
    }
}

async fn read_line<S: AsyncRead + Unpin>(
    io: &mut BufReader<S>,
    record: &Recorder,
) -> Option<String> {
    let mut buf = Vec::new();
    match io.read_until(b'\n', &mut buf).await {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            let Some(line) = buf.strip_suffix(b"\r\n") else {
                record.update(|s| s.bare_lf = true);
                let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                return Some(String::from_utf8_lossy(line).into_owned());
            };
            Some(String::from_utf8_lossy(line).into_owned())
        }
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>, text: &str) -> bool {
    // One write per reply, so Nagle never holds back the end of a line.
    let stream = io.get_mut();
    let line = format!("{text}\r\n");
    stream.write_all(line.as_bytes()).await.is_ok() && stream.flush().await.is_ok()
}

fn decode_plain(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split('\0');
    let _authzid = parts.next()?;
    let user = parts.next()?.to_owned();
    let pass = parts.next()?.to_owned();
    Some((user, pass))
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, b: &Behavior, record: &Recorder) {
    let mut io = BufReader::new(stream);
    if b.silent {
        // Hold the connection open, say nothing.
        while read_line(&mut io, record).await.is_some() {}
        return;
    }
    if !reply(&mut io, &b.greeting).await {
        return;
    }
    let greeted = b.greeting.starts_with("220");
    if b.greeting.starts_with("421") {
        return;
    }
    let mut authenticated = false;
    let mut has_mail = false;
    while let Some(line) = read_line(&mut io, record).await {
        record.update(|s| s.commands.push(line.clone()));
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_owned();
        if verb == "QUIT" {
            record.update(|s| s.quit = true);
            reply(&mut io, "221 2.0.0 Bye").await;
            return;
        }
        if !greeted {
            reply(&mut io, "503 5.5.1 no service").await;
            continue;
        }
        let answer: String = match verb.as_str() {
            "EHLO" if b.ehlo => {
                record.update(|s| s.hello = Some(line.clone()));
                let mut lines = vec![
                    "250-mx.test greets you".to_owned(),
                    "250-PIPELINING".to_owned(),
                    "250-8BITMIME".to_owned(),
                ];
                if b.auth.is_some() {
                    lines.push("250-AUTH LOGIN PLAIN".to_owned());
                }
                lines.push("250 SIZE 10485760".to_owned());
                lines.join("\r\n")
            }
            "EHLO" => "502 5.5.2 EHLO not implemented".to_owned(),
            "HELO" => {
                record.update(|s| s.hello = Some(line.clone()));
                "250 mx.test".to_owned()
            }
            "AUTH" => {
                let words: Vec<&str> = line.split_whitespace().collect();
                match (&b.auth, words.get(1).map(|m| m.to_ascii_uppercase())) {
                    (Some(expected), Some(mech)) if mech == "PLAIN" => {
                        let response = match words.get(2) {
                            Some(r) => Some((*r).to_owned()),
                            None => {
                                reply(&mut io, "334 ").await;
                                read_line(&mut io, record).await
                            }
                        };
                        let creds = response.as_deref().and_then(decode_plain);
                        record.update(|s| s.auth = creds.clone());
                        if creds.as_ref() == Some(expected) {
                            authenticated = true;
                            "235 2.7.0 Authentication successful".to_owned()
                        } else {
                            "535 5.7.8 Authentication credentials invalid".to_owned()
                        }
                    }
                    _ => "504 5.5.4 mechanism not supported".to_owned(),
                }
            }
            "MAIL" => {
                if b.auth.is_some() && !authenticated {
                    "530 5.7.0 Authentication required".to_owned()
                } else {
                    let addr = bracketed(&line);
                    record.update(|s| s.mail_from = addr);
                    has_mail = true;
                    "250 2.1.0 Ok".to_owned()
                }
            }
            "RCPT" => {
                let addr = bracketed(&line).unwrap_or_default();
                if !has_mail {
                    "503 5.5.1 need MAIL first".to_owned()
                } else {
                    match &b.rcpt_reply {
                        Some((who, answer)) if *who == addr => answer.clone(),
                        _ => {
                            record.update(|s| s.rcpt_to.push(addr));
                            "250 2.1.5 Ok".to_owned()
                        }
                    }
                }
            }
            "DATA" => {
                let has_rcpt = {
                    let all = record.all.lock().expect("lock");
                    !all[record.index].rcpt_to.is_empty()
                };
                if !has_rcpt {
                    "554 5.5.1 no valid recipients".to_owned()
                } else {
                    reply(&mut io, "354 End data with <CR><LF>.<CR><LF>").await;
                    let mut raw = Vec::new();
                    let mut unstuffed = Vec::new();
                    loop {
                        let Some(l) = read_line(&mut io, record).await else {
                            return;
                        };
                        if l == "." {
                            break;
                        }
                        unstuffed.push(l.strip_prefix('.').unwrap_or(&l).to_owned());
                        raw.push(l);
                    }
                    let raw = raw.join("\r\n") + "\r\n";
                    let message = unstuffed.join("\r\n") + "\r\n";
                    record.update(|s| {
                        s.raw_data = Some(raw);
                        s.message = Some(message);
                    });
                    "250 2.0.0 Ok: queued as 1".to_owned()
                }
            }
            "RSET" => {
                has_mail = false;
                record.update(|s| {
                    s.mail_from = None;
                    s.rcpt_to.clear();
                });
                "250 2.0.0 Ok".to_owned()
            }
            "NOOP" => "250 2.0.0 Ok".to_owned(),
            _ => "500 5.5.2 Syntax error, command unrecognized".to_owned(),
        };
        if !reply(&mut io, &answer).await {
            return;
        }
    }
}

/// The address between `<` and `>` in `MAIL FROM:<a>` / `RCPT TO:<a>`.
fn bracketed(line: &str) -> Option<String> {
    let start = line.find('<')?;
    let end = line[start..].find('>')? + start;
    Some(line[start + 1..end].to_owned())
}

/// A self-signed certificate for `localhost` and a TLS server config
/// serving it; returns the config and the certificate's DER for the client
/// to trust.
pub fn tls_for_localhost() -> (Arc<rustls::ServerConfig>, Vec<u8>) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert_der = key.cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()),
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key_der)
        .expect("server config");
    (Arc::new(config), cert_der.to_vec())
}
