//! What to run: the workload specification every adapter accepts.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::RuntimeError;

/// Identifies a workload on one host. Used as a directory name, so it is
/// restricted to `[A-Za-z0-9._-]`, 1–128 characters, not starting with `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkloadId(String);

impl WorkloadId {
    pub fn new(s: impl Into<String>) -> Result<Self, RuntimeError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s))
        } else {
            Err(RuntimeError::InvalidSpec {
                field: "id".into(),
                reason: "must be 1-128 characters of [A-Za-z0-9._-], not starting with '.'".into(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for WorkloadId {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for WorkloadId {
    type Error = RuntimeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<WorkloadId> for String {
    fn from(id: WorkloadId) -> Self {
        id.0
    }
}

/// When the supervisor starts a workload again after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartMode {
    /// After every exit, clean or not (long-running daemons such as nodes).
    Always,
    /// Only after a non-zero exit or a death by signal.
    OnFailure,
    /// Never: the first exit is final.
    Never,
}

/// Restart policy: which exits restart, how fast, and when to give up.
///
/// A workload that needs more than `max_restarts_in_window` restarts within
/// any `window` is declared `failed`: a crash loop is reported rather than
/// hidden. Delays grow from `backoff_initial`, doubling per consecutive
/// quick failure up to `backoff_max`; a run that lasted at least
/// `backoff_max` counts as healthy and resets the delay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub mode: RestartMode,
    pub max_restarts_in_window: u32,
    #[serde(with = "duration_ms", rename = "window_ms")]
    pub window: Duration,
    #[serde(with = "duration_ms", rename = "backoff_initial_ms")]
    pub backoff_initial: Duration,
    #[serde(with = "duration_ms", rename = "backoff_max_ms")]
    pub backoff_max: Duration,
}

impl Default for RestartPolicy {
    /// Node daemons: always restart, at most 5 times in 10 minutes, 1 s to 60 s apart.
    fn default() -> Self {
        Self {
            mode: RestartMode::Always,
            max_restarts_in_window: 5,
            window: Duration::from_secs(600),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// Delay before restart number `consecutive` (0-based) of a quick-failure streak.
    pub fn backoff(&self, consecutive: u32) -> Duration {
        hood_domain::backoff::Backoff::doubling(self.backoff_initial, self.backoff_max)
            .delay(consecutive.saturating_add(1))
    }
}

/// Signal that asks a workload to stop (before SIGKILL after the grace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StopSignal {
    #[default]
    #[serde(rename = "SIGTERM")]
    Term,
    #[serde(rename = "SIGINT")]
    Int,
    #[serde(rename = "SIGQUIT")]
    Quit,
    #[serde(rename = "SIGHUP")]
    Hup,
    #[serde(rename = "SIGUSR1")]
    Usr1,
    #[serde(rename = "SIGUSR2")]
    Usr2,
    #[serde(rename = "SIGKILL")]
    Kill,
}

impl StopSignal {
    pub fn to_nix(self) -> nix::sys::signal::Signal {
        use nix::sys::signal::Signal as S;
        match self {
            Self::Term => S::SIGTERM,
            Self::Int => S::SIGINT,
            Self::Quit => S::SIGQUIT,
            Self::Hup => S::SIGHUP,
            Self::Usr1 => S::SIGUSR1,
            Self::Usr2 => S::SIGUSR2,
            Self::Kill => S::SIGKILL,
        }
    }
}

/// A file written into the workload's data directory before each start:
/// rendered recipe config, or key material when `secret`.
///
/// Secret files are written `0600` (whatever `mode` says) in directories
/// created `0700`, are never persisted in the workload's `spec.json` (only
/// their SHA-256, to recognise them after an agent restart), and are
/// overwritten and removed when the workload stops, fails or is removed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadFile {
    /// Relative to the data directory; no `..`, not absolute.
    pub path: PathBuf,
    /// Hex on the wire so binary key material survives JSON.
    #[serde(with = "hex_bytes")]
    pub contents: Vec<u8>,
    #[serde(default = "default_mode")]
    pub mode: u32,
    #[serde(default)]
    pub secret: bool,
}

fn default_mode() -> u32 {
    0o644
}

impl WorkloadFile {
    pub fn new(path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
            mode,
            secret: false,
        }
    }

    pub fn secret(path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
            mode: 0o600,
            secret: true,
        }
    }
}

impl fmt::Debug for WorkloadFile {
    /// Never prints contents: they may be key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadFile")
            .field("path", &self.path)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .field("mode", &format_args!("{:o}", self.mode))
            .field("secret", &self.secret)
            .finish()
    }
}

/// Everything needed to run one workload. Adapters compare specs by
/// [`WorkloadSpec::fingerprint`] to make `start` idempotent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    pub id: WorkloadId,
    pub executable: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    /// Added to the supervisor's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Relative paths are resolved against the workload's data directory;
    /// `None` means the data directory itself.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    #[serde(default)]
    pub files: Vec<WorkloadFile>,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub stop_signal: StopSignal,
    #[serde(
        with = "duration_ms",
        rename = "stop_grace_ms",
        default = "default_grace"
    )]
    pub stop_grace: Duration,
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

impl fmt::Debug for WorkloadSpec {
    /// Prints env keys only: values may be credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadSpec")
            .field("id", &self.id)
            .field("executable", &self.executable)
            .field("args", &self.args)
            .field("env_keys", &self.env.keys().collect::<Vec<_>>())
            .field("working_dir", &self.working_dir)
            .field("files", &self.files)
            .field("restart", &self.restart)
            .field("stop_signal", &self.stop_signal)
            .field("stop_grace", &self.stop_grace)
            .finish()
    }
}

impl WorkloadSpec {
    /// A spec with defaults: no args, env or files, default restart policy,
    /// SIGTERM with a 30 s grace.
    pub fn new(id: WorkloadId, executable: impl Into<PathBuf>) -> Self {
        Self {
            id,
            executable: executable.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            files: Vec::new(),
            restart: RestartPolicy::default(),
            stop_signal: StopSignal::Term,
            stop_grace: default_grace(),
        }
    }

    /// Checks what the supervisor relies on, naming the offending field.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |field: &str, reason: &str| RuntimeError::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        };
        if self.executable.as_os_str().is_empty() {
            return Err(bad("executable", "must not be empty"));
        }
        for k in self.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(bad("env", "keys must be non-empty without '=' or NUL"));
            }
        }
        if let Some(wd) = &self.working_dir {
            if !is_safe_relative(wd) && !wd.is_absolute() {
                return Err(bad(
                    "working_dir",
                    "must be absolute or relative without '..'",
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in self.files.iter().enumerate() {
            let field = format!("files[{i}].path");
            if !is_safe_relative(&f.path) {
                return Err(bad(&field, "must be a relative path without '..'"));
            }
            if !seen.insert(&f.path) {
                return Err(bad(&field, "duplicate path"));
            }
            if f.mode > 0o7777 {
                return Err(bad(
                    &format!("files[{i}].mode"),
                    "must be a permission mode",
                ));
            }
        }
        let r = &self.restart;
        if r.backoff_initial.is_zero() || r.backoff_max < r.backoff_initial {
            return Err(bad(
                "restart",
                "backoff_initial must be > 0 and backoff_max >= backoff_initial",
            ));
        }
        if r.window.is_zero() {
            return Err(bad("restart.window", "must be > 0"));
        }
        Ok(())
    }

    /// SHA-256 over the whole spec, secret contents included: equal
    /// fingerprints mean "same workload, nothing to do".
    pub fn fingerprint(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

fn is_safe_relative(p: &Path) -> bool {
    !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// `Duration` as integer milliseconds.
pub(crate) mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn id(s: &str) -> WorkloadId {
        WorkloadId::new(s).unwrap()
    }

    #[test]
    fn ids_are_directory_safe() {
        assert!(WorkloadId::new("eth-anvil_1.0").is_ok());
        for bad in ["", ".x", "a/b", "..", "a b", &"x".repeat(129)] {
            assert!(WorkloadId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_must_stay_inside_the_data_dir() {
        let mut s = WorkloadSpec::new(id("w"), "/bin/true");
        s.files.push(WorkloadFile::new("../etc/passwd", "x", 0o644));
        assert!(s.validate().is_err());
        s.files[0].path = "/etc/passwd".into();
        assert!(s.validate().is_err());
        s.files[0].path = "conf/app.toml".into();
        assert!(s.validate().is_ok());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RestartPolicy {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(350),
            ..RestartPolicy::default()
        };
        let got: Vec<u128> = (0..5).map(|i| p.backoff(i).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 350, 350, 350]);
        assert_eq!(p.backoff(200), Duration::from_millis(350));
    }

    #[test]
    fn debug_never_shows_secret_contents_or_env_values() {
        let mut s = WorkloadSpec::new(id("w"), "/bin/true");
        s.files.push(WorkloadFile::secret("keys/k", "SUPERSECRET"));
        s.env.insert("PASSWORD".into(), "hunter2".into());
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("SUPERSECRET"));
        assert!(!dbg.contains("hunter2"));
        assert!(dbg.contains("PASSWORD"));
    }

    #[test]
    fn round_trips_through_json_and_fingerprints_change_with_content() {
        let mut s = WorkloadSpec::new(id("w"), "/bin/sleep");
        s.args = vec!["1".into()];
        s.files.push(WorkloadFile::secret("k", vec![0u8, 255, 7]));
        let json = serde_json::to_string(&s).unwrap();
        let back: WorkloadSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.fingerprint(), s.fingerprint());
        let mut t = s.clone();
        t.files[0].contents = vec![1];
        assert_ne!(t.fingerprint(), s.fingerprint());
    }
}
