//! Signed task parameters (seed 004's trust boundary): what the control
//! plane asks an agent to run is signed with the installation's task key,
//! and the agent runs it only when the signature verifies against the key
//! it pinned at enrollment, the task names this host and this command
//! kind, and it has not expired. Whoever can write the command queue (the
//! database, the bus) but does not hold the master key cannot make a host
//! run anything.
//!
//! The signature covers the exact bytes of the task's JSON text (carried
//! as a string, so no canonical form is needed) behind a domain prefix.

use crate::master_key::MasterKey;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use hood_domain::{HostId, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How far an agent's clock may run ahead of the control plane's before it
/// would refuse a fresh task as expired.
pub const CLOCK_MARGIN: std::time::Duration = std::time::Duration::from_secs(300);

/// What the master key derives the task key from.
const DERIVATION_LABEL: &[u8] = b"hood/task-signing/v1";
/// Prefixed to the signed bytes so a task signature is never anything else.
const SIGNED_PREFIX: &[u8] = b"hood-task-v1\n";

/// A task as it travels: its JSON text and the signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTask {
    /// The JSON text of a [`TaskClaims`].
    pub body: String,
    /// Ed25519 over the prefix and `body`, base64.
    pub signature: String,
}

/// What is signed: the task and where, what and until when it may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskClaims<T> {
    pub host_id: HostId,
    /// The command kind it may run as (`start_allocation`, …).
    pub kind: String,
    /// Unix ms after which the agent refuses it (a replayed old task).
    pub expires_at_ms: i64,
    pub task: T,
}

/// Why an agent refuses a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskRefusal {
    #[error("the task is not signed (this control plane signs every task it sends)")]
    Unsigned,
    #[error("the task's signature does not verify against the key pinned at enrollment")]
    BadSignature,
    #[error("the task is for host {0}, not this one")]
    OtherHost(HostId),
    #[error("the task was signed for `{0}`, not this command")]
    OtherKind(String),
    #[error("the task expired")]
    Expired,
    #[error("the task is malformed: {0}")]
    Malformed(String),
    #[error("this agent pinned no task key at enrollment: enroll it again")]
    NoKey,
}

/// The control plane's half: signs tasks. Derived from the master key, so
/// every replica holding it signs with the same key and nothing new is
/// stored.
#[derive(Clone)]
pub struct TaskSigner {
    key: SigningKey,
}

impl std::fmt::Debug for TaskSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSigner")
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

impl TaskSigner {
    pub fn from_master(master: &MasterKey) -> Self {
        Self {
            key: SigningKey::from_bytes(&master.derive(DERIVATION_LABEL)),
        }
    }

    /// The key agents pin at enrollment, base64 of its 32 bytes.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// Signs `task` for `kind` on `host` at `now`, valid while its command
    /// may `wait` for the agent plus [`CLOCK_MARGIN`]: the one validity
    /// rule of every task the control plane sends.
    pub fn sign_valid_for<T: Serialize>(
        &self,
        host: HostId,
        kind: &str,
        now: Timestamp,
        wait: std::time::Duration,
        task: &T,
    ) -> Result<SignedTask, serde_json::Error> {
        let valid_ms = i64::try_from((wait + CLOCK_MARGIN).as_millis()).unwrap_or(i64::MAX / 4);
        self.sign(host, kind, now.plus_millis(valid_ms), task)
    }

    /// Signs `task` for `kind` on `host`, valid until `expires_at`.
    pub fn sign<T: Serialize>(
        &self,
        host: HostId,
        kind: &str,
        expires_at: Timestamp,
        task: &T,
    ) -> Result<SignedTask, serde_json::Error> {
        let body = serde_json::to_string(&TaskClaims {
            host_id: host,
            kind: kind.to_owned(),
            expires_at_ms: expires_at.millis(),
            task,
        })?;
        let signature = self.key.sign(&signed_bytes(&body));
        Ok(SignedTask {
            body,
            signature: STANDARD.encode(signature.to_bytes()),
        })
    }
}

/// The agent's half: the pinned public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskVerifier {
    key: VerifyingKey,
}

impl TaskVerifier {
    pub fn from_base64(public_key: &str) -> Result<Self, TaskRefusal> {
        let bytes: [u8; 32] = STANDARD
            .decode(public_key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                TaskRefusal::Malformed("the task key is not 32 bytes of base64".into())
            })?;
        VerifyingKey::from_bytes(&bytes)
            .map(|key| Self { key })
            .map_err(|_| TaskRefusal::Malformed("the task key is not an Ed25519 key".into()))
    }

    /// The task inside `signed`, when its signature verifies and it is for
    /// `host`, for `kind` and not expired at `now`.
    pub fn verify<T: DeserializeOwned>(
        &self,
        signed: &SignedTask,
        host: HostId,
        kind: &str,
        now: Timestamp,
    ) -> Result<T, TaskRefusal> {
        let signature: [u8; 64] = STANDARD
            .decode(&signed.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(TaskRefusal::BadSignature)?;
        self.key
            .verify(
                &signed_bytes(&signed.body),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| TaskRefusal::BadSignature)?;
        // Only a verified body is parsed.
        let claims: TaskClaims<T> = serde_json::from_str(&signed.body)
            .map_err(|e| TaskRefusal::Malformed(e.to_string()))?;
        if claims.host_id != host {
            return Err(TaskRefusal::OtherHost(claims.host_id));
        }
        if claims.kind != kind {
            return Err(TaskRefusal::OtherKind(claims.kind));
        }
        if now.millis() > claims.expires_at_ms {
            return Err(TaskRefusal::Expired);
        }
        Ok(claims.task)
    }
}

fn signed_bytes(body: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(SIGNED_PREFIX.len() + body.len());
    bytes.extend_from_slice(SIGNED_PREFIX);
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Task {
        command: Vec<String>,
    }

    fn host(n: u128) -> HostId {
        HostId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn task() -> Task {
        Task {
            command: vec!["sleep".into(), "1".into()],
        }
    }

    #[test]
    fn a_signed_task_verifies_only_for_its_host_kind_and_time() {
        let master = MasterKey::generate();
        let signer = TaskSigner::from_master(&master);
        // The same master derives the same key (every replica signs alike).
        assert_eq!(
            signer.public_key_base64(),
            TaskSigner::from_master(&master).public_key_base64()
        );
        let verifier = TaskVerifier::from_base64(&signer.public_key_base64()).unwrap();
        let signed = signer
            .sign(host(1), "start_allocation", Timestamp(1_000), &task())
            .unwrap();
        let ok: Task = verifier
            .verify(&signed, host(1), "start_allocation", Timestamp(1_000))
            .unwrap();
        assert_eq!(ok, task());
        let refuse = |s: &SignedTask, h, k: &str, at| {
            verifier.verify::<Task>(s, h, k, Timestamp(at)).unwrap_err()
        };
        assert_eq!(
            refuse(&signed, host(2), "start_allocation", 0),
            TaskRefusal::OtherHost(host(1))
        );
        assert_eq!(
            refuse(&signed, host(1), "stop_allocation", 0),
            TaskRefusal::OtherKind("start_allocation".into())
        );
        assert_eq!(
            refuse(&signed, host(1), "start_allocation", 1_001),
            TaskRefusal::Expired
        );
    }

    #[test]
    fn a_task_is_valid_while_its_command_waits_plus_the_clock_margin() {
        let signer = TaskSigner::from_master(&MasterKey::generate());
        let verifier = TaskVerifier::from_base64(&signer.public_key_base64()).unwrap();
        let wait = std::time::Duration::from_secs(30);
        let signed = signer
            .sign_valid_for(host(1), "open_terminal", Timestamp(1_000), wait, &task())
            .unwrap();
        let last = 1_000 + (wait + CLOCK_MARGIN).as_millis() as i64;
        let at = |ms| verifier.verify::<Task>(&signed, host(1), "open_terminal", Timestamp(ms));
        assert_eq!(at(last).unwrap(), task());
        assert_eq!(at(last + 1).unwrap_err(), TaskRefusal::Expired);
    }

    #[test]
    fn any_change_or_another_key_breaks_the_signature() {
        let signer = TaskSigner::from_master(&MasterKey::generate());
        let verifier = TaskVerifier::from_base64(&signer.public_key_base64()).unwrap();
        let signed = signer
            .sign(host(1), "start_allocation", Timestamp(10), &task())
            .unwrap();
        let mut tampered = signed.clone();
        tampered.body = tampered.body.replace("sleep", "curl!");
        assert_eq!(
            verifier
                .verify::<Task>(&tampered, host(1), "start_allocation", Timestamp(0))
                .unwrap_err(),
            TaskRefusal::BadSignature
        );
        let forged = TaskSigner::from_master(&MasterKey::generate())
            .sign(host(1), "start_allocation", Timestamp(10), &task())
            .unwrap();
        assert_eq!(
            verifier
                .verify::<Task>(&forged, host(1), "start_allocation", Timestamp(0))
                .unwrap_err(),
            TaskRefusal::BadSignature
        );
        let mut garbage = signed;
        garbage.signature = "not base64!".into();
        assert_eq!(
            verifier
                .verify::<Task>(&garbage, host(1), "start_allocation", Timestamp(0))
                .unwrap_err(),
            TaskRefusal::BadSignature
        );
        assert!(TaskVerifier::from_base64("AAAA").is_err());
    }
}
