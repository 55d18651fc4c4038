//! Error types. `IdentityError` is for setup and key handling (an operator
//! sees it); `TokenError` is for rejected credentials (a client sees it in a
//! 401 body, so its messages never echo the token).

use std::path::PathBuf;

/// Failure of a key-handling or configuration operation.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A cryptographic primitive failed (bad ciphertext, wrong key or aad,
    /// RNG or key generation failure). Deliberately vague: details of a
    /// failed decryption help nobody but an attacker.
    #[error("cryptographic operation failed: {0}")]
    Crypto(String),
    /// Key material is malformed or unusable.
    #[error("invalid key material: {0}")]
    Key(String),
    /// A file could not be read or written.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration cannot work (e.g. no signing key to sign with).
    #[error("invalid identity configuration: {0}")]
    Config(String),
}

impl IdentityError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Why a presented token was refused. Display strings are safe for a 401
/// response body: they name the failed check, never the token or its claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("token signing algorithm not accepted")]
    WrongAlgorithm,
    #[error("token issuer not accepted")]
    WrongIssuer,
    #[error("token audience not accepted")]
    WrongAudience,
    #[error("wrong token type")]
    WrongType,
    #[error("token has expired")]
    Expired,
    /// The external issuer's keys could not be fetched and none are cached.
    #[error("identity provider keys unavailable: {0}")]
    JwksUnavailable(String),
}
