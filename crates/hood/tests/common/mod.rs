//! Fixtures for tests that drive the real `hood` binary.

#![allow(dead_code)]

pub mod edge;
pub mod health;
pub mod http;
pub mod suite;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn hood_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hood")
}

/// A running `hood` server process, killed on drop.
pub struct HoodProcess {
    child: Child,
    /// Base URLs announced on stdout, by label (`api`, `auth`, `serving`).
    pub urls: Vec<(String, String)>,
    pub stdout_rest: mpsc::Receiver<String>,
}

impl HoodProcess {
    /// Starts `hood <args>` with `envs` and waits until it has announced
    /// every label in `labels` (lines `label: URL` or `serving … on URL`).
    pub fn start(args: &[&str], envs: &[(&str, String)], labels: &[&str]) -> Self {
        Self::start_logged(args, envs, labels, None)
    }

    /// Like [`Self::start`], with stderr (the log) written to `log`.
    pub fn start_logged(
        args: &[&str],
        envs: &[(&str, String)],
        labels: &[&str],
        log: Option<&Path>,
    ) -> Self {
        let mut cmd = Command::new(hood_bin());
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
            None => Stdio::inherit(),
        };
        cmd.args(args)
            .env_remove("HOOD_TOKEN")
            .env_remove("HOOD_SERVER")
            .env("HOOD_LOG", "warn")
            // `hood up` also serves S3 (default 127.0.0.1:9000): ephemeral
            // unless a test names an address, so tests run in parallel.
            .env("HOOD_S3_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn hood");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut urls = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while labels
            .iter()
            .any(|l| !urls.iter().any(|(k, _): &(String, String)| k == l))
        {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!("hood {args:?} did not announce {labels:?} in time (got {urls:?})");
                }
            };
            if let Some(rest) = line.strip_prefix("serving roles ") {
                if let Some((_, url)) = rest.split_once(" on ") {
                    urls.push(("serving".into(), url.trim().to_owned()));
                } else if rest.contains("(no HTTP listener") {
                    // Roles without an HTTP API started without --listen.
                    urls.push(("serving".into(), String::new()));
                }
            } else if let Some((label, url)) = line.split_once(':') {
                let url = url.trim();
                if url.starts_with("http://") {
                    urls.push((label.trim().to_owned(), url.to_owned()));
                }
            }
        }
        Self {
            child,
            urls,
            stdout_rest: rx,
        }
    }

    pub fn url(&self, label: &str) -> String {
        self.urls
            .iter()
            .find(|(k, _)| k == label)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| panic!("no url {label}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM/SIGINT and waits for a clean exit.
    pub fn stop(mut self, signal: &str) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("hood did not stop on {signal}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HoodProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hood up` with ephemeral HTTP ports and the agent gateway on a fixed
/// address, so agents find it again after a restart.
pub fn hood_up_with_gateway(home: &Path, gateway: &str) -> HoodProcess {
    HoodProcess::start(
        &[
            "up",
            "--api-addr",
            "127.0.0.1:0",
            "--auth-addr",
            "127.0.0.1:0",
            "--gateway-addr",
            gateway,
            "--edge-addr",
            "127.0.0.1:0",
        ],
        &[("HOOD_HOME", home.display().to_string())],
        &["api", "auth", "edge"],
    )
}

/// Pids and command lines of live processes whose command line mentions `dir`.
pub fn processes_under(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.display().to_string();
    let mut out = vec![];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains(&needle) {
            out.push((pid, cmd));
        }
    }
    out
}

/// Pids and allocation ids of allocation sandboxes' processes working
/// under `dir` (their command lines do not name it; their working
/// directory and `HOOD_ALLOCATION_ID` do).
pub fn sandboxes_under(dir: &Path) -> Vec<(u32, String)> {
    let mut out = vec![];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if !cwd.starts_with(dir) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if let Some(id) = environ
            .split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(b"HOOD_ALLOCATION_ID="))
        {
            out.push((pid, String::from_utf8_lossy(id).into_owned()));
        }
    }
    out
}

/// SIGKILLs every process under `dir` (and every allocation sandbox working
/// there) when dropped, so a failing test never leaves agents, nodes or
/// sandboxes behind.
pub struct KillUnder(pub PathBuf);

impl Drop for KillUnder {
    fn drop(&mut self) {
        let sandboxes = sandboxes_under(&self.0);
        let pids: Vec<u32> = processes_under(&self.0)
            .into_iter()
            .map(|(pid, _)| pid)
            .chain(sandboxes.iter().map(|(pid, _)| *pid))
            .collect();
        for pid in pids {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        // The killed sandboxes' memory cgroups, once their processes are
        // gone (a cgroup with members cannot be removed).
        std::thread::sleep(Duration::from_millis(200));
        for (_, allocation) in sandboxes {
            for dir in ["/sys/fs/cgroup/memory/hood", "/sys/fs/cgroup/hood"] {
                let _ = std::fs::remove_dir(Path::new(dir).join(format!("alloc-{allocation}")));
            }
        }
    }
}

/// `hood up` on a fresh home with ephemeral ports.
pub fn hood_up(home: &Path, extra_env: &[(&str, String)]) -> HoodProcess {
    let mut envs = vec![("HOOD_HOME", home.display().to_string())];
    envs.extend(extra_env.iter().cloned());
    HoodProcess::start(UP_ARGS, &envs, UP_LABELS)
}

/// `hood up` on ephemeral ports, and what it announces.
pub const UP_ARGS: &[&str] = &[
    "up",
    "--api-addr",
    "127.0.0.1:0",
    "--auth-addr",
    "127.0.0.1:0",
    "--gateway-addr",
    "127.0.0.1:0",
    "--edge-addr",
    "127.0.0.1:0",
];
pub const UP_LABELS: &[&str] = &["api", "auth", "edge", "s3"];

/// Runs a CLI command to completion: (exit ok, stdout, stderr).
pub fn hood_cli(
    args: &[&str],
    envs: &[(&str, String)],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(hood_bin());
    cmd.args(args)
        .env_remove("HOOD_TOKEN")
        .env_remove("HOOD_SERVER")
        .env_remove("HOOD_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn hood cli");
    if let Some(mut sin) = child.stdin.take() {
        if let Some(input) = stdin {
            sin.write_all(input.as_bytes()).expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("wait hood cli");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn read_admin_key(home: &Path) -> String {
    std::fs::read_to_string(home.join("admin.key"))
        .expect("admin.key")
        .trim()
        .to_owned()
}

pub fn temp_home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    (dir, home)
}

/// Pushes the anvil binary as artifact `anvil-linux-amd64` 1.5.1 through
/// the CLI of the server in `env` (`HOOD_SERVER`, `HOOD_TOKEN`).
pub fn push_anvil(anvil: &Path, env: &[(&str, String)]) {
    let (ok, out, err) = hood_cli(
        &[
            "artifact",
            "push",
            "anvil-linux-amd64",
            "1.5.1",
            anvil.to_str().expect("utf-8 path"),
        ],
        env,
        None,
    );
    assert!(ok, "artifact push: {out} {err}");
}

/// The wall clock as a domain timestamp.
pub fn now() -> hood_domain::Timestamp {
    hood_domain::Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64,
    )
}

/// xorshift64*: enough randomness for kill timings, reproducible by seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// A seed from `var` (to replay a failure), else from the clock; printed
/// so a failure can be replayed.
pub fn seed_from_env(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now().millis() as u64 | 1);
    eprintln!("{var}={seed}");
    seed
}

/// Runs a browser script of `tests/browser` against `api`; `true` when it
/// reported `@@hood passed`.
pub fn run_browser_script(
    script: &str,
    browser_dir: &Path,
    chromium: &Path,
    shots: &Path,
    env: &[(&str, String)],
) -> bool {
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir.join(script))
        .current_dir(browser_dir)
        .env("HOOD_CHROMIUM", chromium)
        .env("HOOD_SCREENSHOTS", shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("node runs the browser test");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let started = Instant::now();
    let mut passed = false;
    for line in out.lines().map_while(Result::ok) {
        eprintln!("[browser {:>5.1}s] {line}", started.elapsed().as_secs_f64());
        passed |= line == "@@hood passed";
    }
    child.wait().expect("browser test exit").success() && passed
}
