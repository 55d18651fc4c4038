//! Agent errors. Messages never include a token, a key or a data key.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] hood_pki::PkiError),
    #[error("configuration: {0}")]
    Config(String),
    /// Not enrolled, and no enrollment token to enroll with.
    #[error("not enrolled and no enrollment token (file or ${})", crate::TOKEN_ENV)]
    NoToken,
    /// The gateway refused the enrollment: retrying will not help.
    #[error("enrollment refused: {0}")]
    EnrollmentRefused(String),
    #[error("gateway unreachable: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A call failed; `code` and message as the gateway sent them.
    #[error("gateway call failed ({code:?}): {message}")]
    Rpc { code: tonic::Code, message: String },
    /// The gateway's answer makes no sense (wrong host id, bad PEM, …).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The gateway cannot serve an artifact and says why (not in the
    /// catalog, its object missing or damaged in the artifact store):
    /// retrying will not help until an operator pushes it again. `reason`
    /// is the gateway's message, which names the artifact.
    #[error("{reason}")]
    ArtifactNotServed {
        name: String,
        version: String,
        reason: String,
    },
    /// Downloaded bytes do not match the expected SHA-256 or size.
    #[error("artifact {name} {version}: {reason}")]
    ArtifactMismatch {
        name: String,
        version: String,
        reason: String,
    },
    #[error("stored state is corrupt: {0}")]
    Corrupt(String),
}

impl AgentError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<tonic::Status> for AgentError {
    fn from(status: tonic::Status) -> Self {
        Self::Rpc {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}
