//! The installation's master key: the envelope key that seals private key
//! material (token signing keys, node keys) before it reaches the database,
//! so that a leaked database dump alone reveals no private key.

use crate::errors::IdentityError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use std::path::Path;

/// Format version of sealed blobs, so the scheme can change later without
/// guessing what an old blob is.
const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// A 256-bit AES-GCM key. `Debug` never prints the bytes.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh random key from the OS RNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses a standard-base64 encoding of exactly 32 bytes (surrounding
    /// whitespace is ignored, so a key file may end in a newline).
    pub fn from_base64(s: &str) -> Result<Self, IdentityError> {
        // Never echo the input: it is the key.
        let bytes = STANDARD
            .decode(s.trim())
            .map_err(|_| IdentityError::Key("master key is not valid base64".into()))?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|v: Vec<u8>| {
            IdentityError::Key(format!(
                "master key must be {KEY_LEN} bytes, got {}",
                v.len()
            ))
        })?;
        Ok(Self(bytes))
    }

    /// The raw key bytes, for a data key sent to an agent over mTLS.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.0
    }

    /// A key from exactly 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            IdentityError::Key(format!("key must be {KEY_LEN} bytes, got {}", bytes.len()))
        })?;
        Ok(Self(bytes))
    }

    /// Standard base64 of the key bytes, as stored in the key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Reads the key from `path`, or creates it (mode 0600, parent dirs
    /// 0700) when missing. Returns (key, created).
    ///
    /// Creation is create-once and atomic (`hood_files::create_private`):
    /// two processes racing on first start cannot overwrite each other's
    /// key, and neither can read a half-written one; the loser reads the
    /// winner's.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), IdentityError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                warn_if_permissive(path);
                return Ok((Self::from_base64(&text)?, false));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IdentityError::io(path, e)),
        }
        let key = Self::generate();
        match hood_files::create_private(path, format!("{}\n", key.to_base64()).as_bytes()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Lost a creation race: use the key the other process wrote.
                let text = std::fs::read_to_string(path).map_err(|e| IdentityError::io(path, e))?;
                return Ok((Self::from_base64(&text)?, false));
            }
            Err(e) => return Err(IdentityError::io(path, e)),
        }
        tracing::info!(path = %path.display(), "created new master key");
        Ok((key, true))
    }

    /// A 32-byte key for one purpose (HMAC-SHA256 keyed by the master key
    /// over `label`): keys of different labels are unrelated, and none
    /// reveals the master key.
    pub fn derive(&self, label: &[u8]) -> [u8; KEY_LEN] {
        use hmac::Mac as _;
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }

    /// AES-256-GCM with a random 96-bit nonce; output = version byte ||
    /// nonce || ciphertext+tag. `aad` binds the ciphertext to its purpose
    /// (e.g. `b"signing-key:<kid>"`), so a blob cannot be replayed as
    /// another record's secret.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| IdentityError::Crypto(format!("random nonce: {e}")))?;
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| IdentityError::Crypto("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Reverses [`MasterKey::seal`]. Fails on a wrong key, wrong `aad`, or
    /// any modified byte.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, IdentityError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(IdentityError::Crypto("sealed data too short".into()));
        }
        let (version, rest) = sealed.split_at(1);
        if version[0] != SEAL_VERSION {
            return Err(IdentityError::Crypto(format!(
                "unsupported sealed data version {}",
                version[0]
            )));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| {
                IdentityError::Crypto("decryption failed (wrong key, purpose or corrupted)".into())
            })
    }
}

/// A key file readable by others defeats the envelope; say so loudly but
/// keep running (the operator may have reasons, e.g. a secrets mount).
fn warn_if_permissive(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{mode:o}"),
                    "master key file is accessible by group or others; expected 0600"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
