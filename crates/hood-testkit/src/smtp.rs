//! A real SMTP server for tests: aiosmtpd (Python), started per test on a
//! free loopback port by [`SmtpSink::start`], recording every session.
//!
//! The Python interpreter comes from `HOOD_TEST_SMTPD_PYTHON` (a venv with
//! aiosmtpd, installed by `scripts/test`); without it a test skips loudly,
//! and fails under CI.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The environment variable naming a Python interpreter that can
/// `import aiosmtpd`.
pub const SMTPD_PYTHON_ENV: &str = "HOOD_TEST_SMTPD_PYTHON";

/// The Python with aiosmtpd, or a loud skip notice when absent. Under CI a
/// missing interpreter is a failure.
pub fn smtpd_python(test: &str) -> Option<PathBuf> {
    crate::required_file(SMTPD_PYTHON_ENV, test)
}

const SCRIPT: &str = include_str!("smtp_sink.py");

/// How the server secures its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkTls {
    /// Plain SMTP; STARTTLS not offered.
    #[default]
    None,
    /// STARTTLS offered; `required: true` refuses mail without it.
    Starttls { required: bool },
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// How the server behaves.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    pub tls: SinkTls,
    /// Offer AUTH (PLAIN, LOGIN), require it, and accept only these
    /// credentials.
    pub auth: Option<(String, String)>,
    /// Accept AUTH over a plaintext session (aiosmtpd refuses by default).
    pub auth_over_plaintext: bool,
    /// Answer `RCPT TO` for these addresses with this code (`550`, `450`).
    pub refuse: Vec<(String, u16)>,
}

/// A message the server accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The session was encrypted (STARTTLS or implicit TLS).
    pub tls: bool,
    /// The user the session authenticated as.
    pub auth_user: Option<String>,
    /// Header names and decoded values, in order.
    pub headers: Vec<(String, String)>,
    /// Decoded (RFC 2047).
    pub subject: String,
    /// Decoded text (transfer encoding undone, CRLF as LF).
    pub body: String,
    /// The message as received (after dot-unstuffing).
    pub raw: String,
}

impl ReceivedMail {
    /// The decoded value of the first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running aiosmtpd, killed on drop.
pub struct SmtpSink {
    pub port: u16,
    /// DER of the self-signed certificate (for `localhost` and 127.0.0.1)
    /// the server presents when it speaks TLS.
    pub certificate_der: Vec<u8>,
    events: PathBuf,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the server with `python` (see [`smtpd_python`]) and waits until
    /// it accepts connections.
    pub async fn start(python: &Path, options: SinkOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("smtp_sink.py");
        std::fs::write(&script, SCRIPT).expect("write smtp_sink.py");
        let events = dir.path().join("events.jsonl");
        let (certificate_der, cert_pem, key_pem) = self_signed_localhost();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, cert_pem).expect("write cert");
        std::fs::write(&key, key_pem).expect("write key");

        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg("--events")
            .arg(&events)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key);
        match options.tls {
            SinkTls::None => {}
            SinkTls::Starttls { required } => {
                cmd.args(["--tls", "starttls"]);
                if required {
                    cmd.arg("--require-starttls");
                }
            }
            SinkTls::Implicit => {
                cmd.args(["--tls", "implicit"]);
            }
        }
        if let Some((user, password)) = &options.auth {
            cmd.args(["--auth-user", user, "--auth-password", password]);
        }
        if options.auth_over_plaintext {
            cmd.arg("--auth-over-plaintext");
        }
        for (address, code) in &options.refuse {
            cmd.arg("--refuse").arg(format!("{address}={code}"));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start aiosmtpd with {}: {e}", python.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("aiosmtpd did not start within 30 s")
            .expect("read aiosmtpd stdout")
            .expect("aiosmtpd exited before listening");
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from aiosmtpd: {first:?}"));
        Self {
            port,
            certificate_der,
            events,
            _child: child,
            _dir: dir,
        }
    }

    /// Every recorded event, in order (`{"event": "connect" | "auth" |
    /// "rcpt" | "message" | "quit", ...}`).
    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.events).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("event JSON"))
            .collect()
    }

    /// How many events of this kind were recorded.
    pub fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| e["event"] == event).count()
    }

    /// The messages accepted so far.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == "message")
            .map(|e| {
                let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
                ReceivedMail {
                    mail_from: text("mail_from"),
                    rcpt_tos: strings(&e["rcpt_tos"]),
                    tls: e["tls"].as_bool().unwrap_or(false),
                    auth_user: e["auth_user"].as_str().map(str::to_owned),
                    headers: e["headers"]
                        .as_array()
                        .map(|pairs| {
                            pairs
                                .iter()
                                .map(|p| {
                                    let s = strings(p);
                                    (s[0].clone(), s[1].clone())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    subject: text("subject"),
                    body: text("body"),
                    raw: text("raw"),
                }
            })
            .collect()
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A self-signed certificate for `localhost` and `127.0.0.1`: (DER, PEM,
/// key PEM).
fn self_signed_localhost() -> (Vec<u8>, String, String) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let key = rcgen::KeyPair::generate().expect("key pair");
    let cert = rcgen::CertificateParams::new(names)
        .expect("certificate params")
        .self_signed(&key)
        .expect("self-signed certificate");
    (cert.der().to_vec(), cert.pem(), key.serialize_pem())
}
