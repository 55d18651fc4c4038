//! A small SMTP client (RFC 5321): greeting, EHLO (HELO fallback), optional
//! AUTH PLAIN (RFC 4954), MAIL FROM, RCPT TO, DATA with dot-stuffing, QUIT.
//! Every read and write runs under the configured timeout.
//!
//! Delivery is all-or-nothing: if any recipient is refused the transaction
//! is abandoned before DATA, so a retry never duplicates the message for the
//! recipients that were accepted.

use crate::config::SmtpTls;
use crate::error::scrub;
use crate::SendError;
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

const CHANNEL: &str = "email";
/// RFC 5321 §4.5.3.1.5: reply lines are at most 512 octets; allow slack.
const MAX_LINE: u64 = 4096;
/// More continuation lines than any real server sends.
const MAX_REPLY_LINES: usize = 128;
/// How long the polite QUIT may take after a failure.
const QUIT_GRACE: Duration = Duration::from_secs(2);

pub(crate) struct Envelope<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: &'a str,
    pub to: &'a [String],
    pub credentials: Option<(&'a str, &'a str)>,
}

pub(crate) struct ClientSettings<'a> {
    pub hello_name: &'a str,
    pub timeout: Duration,
    pub tls_config: Arc<rustls::ClientConfig>,
    pub allow_plaintext_auth: bool,
}

/// Sends `message` (CRLF line endings, not dot-stuffed) to every recipient.
pub(crate) async fn send_mail(
    env: &Envelope<'_>,
    settings: &ClientSettings<'_>,
    message: &str,
    secrets: &[String],
) -> Result<(), SendError> {
    if env.credentials.is_some() && env.tls == SmtpTls::None && !settings.allow_plaintext_auth {
        return Err(SendError::Refused {
            channel: CHANNEL,
            message: "refusing to send SMTP credentials over a plaintext connection \
                      (use tls: implicit)"
                .to_owned(),
        });
    }
    let mut secrets = secrets.to_vec();
    if let Some((user, pass)) = env.credentials {
        secrets.push(auth_plain_response(user, pass));
    }

    let tcp = match timeout(settings.timeout, TcpStream::connect((env.host, env.port))).await {
        Err(_) => return Err(timed_out("connect")),
        Ok(Err(e)) => return Err(io_error(&e, &secrets)),
        Ok(Ok(tcp)) => tcp,
    };
    // Commands are small and answered one by one; don't let Nagle delay them.
    let _ = tcp.set_nodelay(true);

    match env.tls {
        SmtpTls::None => {
            let mut session = Session::new(tcp, settings.timeout, secrets);
            session.run(env, settings, message, false).await
        }
        SmtpTls::Implicit => {
            let name =
                rustls::pki_types::ServerName::try_from(env.host.to_owned()).map_err(|_| {
                    SendError::Refused {
                        channel: CHANNEL,
                        message: "smtp_host is not a valid TLS server name".to_owned(),
                    }
                })?;
            let connector = tokio_rustls::TlsConnector::from(settings.tls_config.clone());
            let stream = match timeout(settings.timeout, connector.connect(name, tcp)).await {
                Err(_) => return Err(timed_out("TLS handshake")),
                // rustls reports its own failures (certificate, alerts) as
                // InvalidData; anything else is the transport.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(SendError::Tls {
                        message: scrub(&e.to_string(), &secrets),
                    })
                }
                Ok(Err(e)) => return Err(io_error(&e, &secrets)),
                Ok(Ok(stream)) => stream,
            };
            let mut session = Session::new(stream, settings.timeout, secrets);
            session.run(env, settings, message, true).await
        }
    }
}

/// One reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" / ")
    }
}

/// One reply line: `(code, is_last, text)`. `250-x` continues, `250 x` and
/// `250` end the reply (RFC 5321 §4.2.1).
pub(crate) fn parse_reply_line(line: &str) -> Result<(u16, bool, &str), String> {
    let bytes = line.as_bytes();
    let code_ok = bytes.len() >= 3
        && (b'2'..=b'5').contains(&bytes[0])
        && (b'0'..=b'5').contains(&bytes[1])
        && bytes[2].is_ascii_digit();
    if !code_ok {
        return Err(format!("not an SMTP reply line: {:?}", truncate(line, 40)));
    }
    let code = u16::from(bytes[0] - b'0') * 100
        + u16::from(bytes[1] - b'0') * 10
        + u16::from(bytes[2] - b'0');
    match bytes.get(3) {
        None => Ok((code, true, "")),
        Some(b' ') => Ok((code, true, line.get(4..).unwrap_or(""))),
        Some(b'-') => Ok((code, false, line.get(4..).unwrap_or(""))),
        Some(_) => Err(format!("not an SMTP reply line: {:?}", truncate(line, 40))),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `message` with CRLF line endings, every line starting with `.` given
/// another (RFC 5321 §4.5.2), and the terminating `.` line.
pub(crate) fn dot_stuff(message: &str) -> String {
    let normalized = message.replace("\r\n", "\n").replace('\r', "\n");
    let body = normalized.strip_suffix('\n').unwrap_or(&normalized);
    let mut out = String::with_capacity(body.len() + body.len() / 16 + 8);
    for line in body.split('\n') {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

/// The AUTH PLAIN initial response: base64 of `\0user\0password`.
fn auth_plain_response(user: &str, pass: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}

/// What the server said it supports after EHLO.
#[derive(Debug, Default)]
struct Extensions {
    auth_plain: bool,
}

impl Extensions {
    fn parse(reply: &Reply) -> Self {
        let mut ext = Self::default();
        // The first line is the server's greeting, the rest one keyword each.
        for line in reply.lines.iter().skip(1) {
            let upper = line.to_ascii_uppercase();
            let mut words = upper.split_whitespace();
            let keyword = words.next().unwrap_or("");
            // "AUTH=PLAIN LOGIN" is the pre-standard form some servers send.
            let (keyword, first) = match keyword.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (keyword, None),
            };
            if keyword == "AUTH" && first.into_iter().chain(words).any(|m| m == "PLAIN") {
                ext.auth_plain = true;
            }
        }
        ext
    }
}

fn timed_out(stage: &'static str) -> SendError {
    SendError::Timeout {
        channel: CHANNEL,
        stage,
    }
}

fn io_error(e: &std::io::Error, secrets: &[String]) -> SendError {
    SendError::Connection {
        channel: CHANNEL,
        message: scrub(&e.to_string(), secrets),
    }
}

struct Session<S> {
    io: BufReader<S>,
    timeout: Duration,
    secrets: Vec<String>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(stream: S, timeout: Duration, secrets: Vec<String>) -> Self {
        Self {
            io: BufReader::new(stream),
            timeout,
            secrets,
        }
    }

    async fn run(
        &mut self,
        env: &Envelope<'_>,
        settings: &ClientSettings<'_>,
        message: &str,
        encrypted: bool,
    ) -> Result<(), SendError> {
        match self.transaction(env, settings, message, encrypted).await {
            Ok(()) => {
                // The message is accepted once the end-of-data reply is 250;
                // a failed QUIT must not turn that into a (retried) failure.
                self.quit(self.timeout).await;
                Ok(())
            }
            Err(e) => {
                if !matches!(e, SendError::Timeout { .. } | SendError::Connection { .. }) {
                    self.quit(QUIT_GRACE).await;
                }
                Err(e)
            }
        }
    }

    async fn transaction(
        &mut self,
        env: &Envelope<'_>,
        settings: &ClientSettings<'_>,
        message: &str,
        encrypted: bool,
    ) -> Result<(), SendError> {
        let greeting = self.read_reply("greeting").await?;
        self.expect(&greeting, "greeting", &[220])?;

        let hello = format!("EHLO {}", settings.hello_name);
        let ehlo = self.command(&hello, "EHLO").await?;
        let ext = match ehlo.code {
            250 => Extensions::parse(&ehlo),
            // A server that does not know EHLO answers 5xx: fall back
            // (RFC 5321 §3.2). A 4xx is a transient refusal: stop.
            500..=599 => {
                let helo = self
                    .command(&format!("HELO {}", settings.hello_name), "HELO")
                    .await?;
                self.expect(&helo, "HELO", &[250])?;
                Extensions::default()
            }
            _ => return Err(self.failure("EHLO", &ehlo)),
        };
        tracing::debug!(
            smtp.ehlo = ehlo.code == 250,
            smtp.auth_plain = ext.auth_plain,
            smtp.tls = encrypted,
            "SMTP session open"
        );

        if let Some((user, pass)) = env.credentials {
            if !ext.auth_plain {
                return Err(SendError::Refused {
                    channel: CHANNEL,
                    message: "the SMTP server does not offer AUTH PLAIN".to_owned(),
                });
            }
            self.authenticate(user, pass).await?;
        }

        let mail = self
            .command(&format!("MAIL FROM:<{}>", env.from), "MAIL FROM")
            .await?;
        self.expect(&mail, "MAIL FROM", &[250])?;

        for rcpt in env.to {
            let reply = self
                .command(&format!("RCPT TO:<{rcpt}>"), "RCPT TO")
                .await?;
            if !matches!(reply.code, 250 | 251) {
                return Err(match self.failure("RCPT TO", &reply) {
                    SendError::Smtp {
                        stage,
                        code,
                        message,
                    } => SendError::Smtp {
                        stage,
                        code,
                        message: format!("<{rcpt}>: {message}"),
                    },
                    other => other,
                });
            }
        }

        let data = self.command("DATA", "DATA").await?;
        self.expect(&data, "DATA", &[354])?;
        self.write_all(dot_stuff(message).as_bytes(), "message")
            .await?;
        let done = self.read_reply("end of data").await?;
        self.expect(&done, "end of data", &[250])?;
        Ok(())
    }

    async fn authenticate(&mut self, user: &str, pass: &str) -> Result<(), SendError> {
        let response = auth_plain_response(user, pass);
        // Never log this line: it is the credential.
        let reply = self
            .command(&format!("AUTH PLAIN {response}"), "AUTH")
            .await?;
        let reply = if reply.code == 334 {
            // Some servers ask for the response after an empty challenge.
            self.command(&response, "AUTH").await?
        } else {
            reply
        };
        self.expect(&reply, "AUTH", &[235])
    }

    async fn quit(&mut self, grace: Duration) {
        let saved = self.timeout;
        self.timeout = grace.min(saved);
        let _ = self.command("QUIT", "QUIT").await;
        let _ = timeout(self.timeout, self.io.get_mut().shutdown()).await;
        self.timeout = saved;
    }

    fn expect(&self, reply: &Reply, stage: &'static str, ok: &[u16]) -> Result<(), SendError> {
        if ok.contains(&reply.code) {
            Ok(())
        } else {
            Err(self.failure(stage, reply))
        }
    }

    /// A reply that is not the one wanted: 4xx/5xx are the server's verdict,
    /// anything else (an unexpected 2xx/3xx) breaks the protocol.
    fn failure(&self, stage: &'static str, reply: &Reply) -> SendError {
        let message = scrub(&reply.text(), &self.secrets);
        if (400..600).contains(&reply.code) {
            SendError::Smtp {
                stage,
                code: reply.code,
                message,
            }
        } else {
            SendError::SmtpProtocol {
                stage,
                message: format!("unexpected reply {}: {message}", reply.code),
            }
        }
    }

    async fn command(&mut self, line: &str, stage: &'static str) -> Result<Reply, SendError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write_all(&bytes, stage).await?;
        self.read_reply(stage).await
    }

    async fn write_all(&mut self, bytes: &[u8], stage: &'static str) -> Result<(), SendError> {
        let stream = self.io.get_mut();
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match timeout(self.timeout, write).await {
            Err(_) => Err(timed_out(stage)),
            Ok(Err(e)) => Err(io_error(&e, &self.secrets)),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn read_reply(&mut self, stage: &'static str) -> Result<Reply, SendError> {
        let mut reply = Reply {
            code: 0,
            lines: Vec::new(),
        };
        loop {
            let line = self.read_line(stage).await?;
            let (code, last, text) =
                parse_reply_line(&line).map_err(|message| SendError::SmtpProtocol {
                    stage,
                    message: scrub(&message, &self.secrets),
                })?;
            if reply.lines.is_empty() {
                reply.code = code;
            } else if code != reply.code {
                return Err(SendError::SmtpProtocol {
                    stage,
                    message: format!("reply code changed from {} to {code} mid-reply", reply.code),
                });
            }
            reply.lines.push(text.to_owned());
            if last {
                return Ok(reply);
            }
            if reply.lines.len() >= MAX_REPLY_LINES {
                return Err(SendError::SmtpProtocol {
                    stage,
                    message: "reply has too many lines".to_owned(),
                });
            }
        }
    }

    async fn read_line(&mut self, stage: &'static str) -> Result<String, SendError> {
        let mut buf = Vec::new();
        let mut limited = (&mut self.io).take(MAX_LINE);
        let read = limited.read_until(b'\n', &mut buf);
        match timeout(self.timeout, read).await {
            Err(_) => Err(timed_out(stage)),
            Ok(Err(e)) => Err(io_error(&e, &self.secrets)),
            Ok(Ok(0)) => Err(SendError::Connection {
                channel: CHANNEL,
                message: format!(
                    "the server closed the connection (waiting for the {stage} reply)"
                ),
            }),
            Ok(Ok(n)) if !buf.ends_with(b"\n") => {
                if n as u64 >= MAX_LINE {
                    Err(SendError::SmtpProtocol {
                        stage,
                        message: "reply line too long".to_owned(),
                    })
                } else {
                    Err(SendError::Connection {
                        channel: CHANNEL,
                        message: format!("the server closed the connection mid-reply ({stage})"),
                    })
                }
            }
            Ok(Ok(_)) => {
                let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                Ok(String::from_utf8_lossy(line).into_owned())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(
            parse_reply_line("250-mx.example.com").unwrap(),
            (250, false, "mx.example.com")
        );
        assert_eq!(parse_reply_line("250 OK").unwrap(), (250, true, "OK"));
        assert_eq!(parse_reply_line("250").unwrap(), (250, true, ""));
        assert_eq!(
            parse_reply_line("421 4.3.2 bye").unwrap(),
            (421, true, "4.3.2 bye")
        );
        for bad in [
            "", "25", "abc def", "250x", "650 no", "199 no", "2a0 no", "+OK POP3",
        ] {
            assert!(parse_reply_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff("a\r\n.b\r\n"), "a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(".\r\n"), "..\r\n.\r\n");
        assert_eq!(dot_stuff("x\ny"), "x\r\ny\r\n.\r\n");
        assert_eq!(dot_stuff("x\r\n..y"), "x\r\n...y\r\n.\r\n");
        // A lone "." line inside the message can never end the DATA early.
        let stuffed = dot_stuff("one\r\n.\r\ntwo\r\n");
        assert_eq!(stuffed.matches("\r\n.\r\n").count(), 1);
        assert!(stuffed.ends_with("\r\n.\r\n"));
    }

    #[test]
    fn auth_plain_encoding() {
        // RFC 4954 §4 example: "\0tim\0tanstaaftanstaaf".
        assert_eq!(
            auth_plain_response("tim", "tanstaaftanstaaf"),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
    }

    #[test]
    fn extensions() {
        let reply = |lines: &[&str]| Reply {
            code: 250,
            lines: lines.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert!(Extensions::parse(&reply(&["mx", "PIPELINING", "AUTH LOGIN PLAIN"])).auth_plain);
        assert!(Extensions::parse(&reply(&["mx", "auth=plain"])).auth_plain);
        assert!(!Extensions::parse(&reply(&["mx", "AUTH LOGIN CRAM-MD5"])).auth_plain);
        assert!(!Extensions::parse(&reply(&["AUTH PLAIN"])).auth_plain);
    }
}
