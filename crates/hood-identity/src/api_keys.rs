//! API key secrets.
//!
//! A key looks like `hood_<prefix>_<secret>`. The prefix is public and
//! indexes the stored record; only a SHA-256 of the secret is stored. A fast
//! hash is right here (unlike passwords) because the secret is 256 random
//! bits: there is nothing to brute-force.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every Hood API key starts with this, so secret scanners can spot leaks
/// and the API can tell keys from JWTs.
pub const API_KEY_PREFIX: &str = "hood_";
/// Length of the public lookup prefix (lowercase hex).
pub const PREFIX_LEN: usize = 12;
/// Length of the secret: 32 bytes in unpadded base64url.
pub const SECRET_LEN: usize = 43;

/// A freshly generated key. `token` is shown to the user once and never
/// stored; `prefix` and `secret_hash` go into the `ApiKey` record.
#[derive(Clone)]
pub struct GeneratedApiKey {
    pub token: String,
    pub prefix: String,
    pub secret_hash: String,
}

impl std::fmt::Debug for GeneratedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedApiKey")
            .field("token", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("secret_hash", &self.secret_hash)
            .finish()
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Generates a new key from the OS RNG.
pub fn generate_api_key() -> GeneratedApiKey {
    let mut rng = rand::rngs::OsRng;
    let mut prefix_bytes = [0u8; PREFIX_LEN / 2];
    rng.fill_bytes(&mut prefix_bytes);
    let mut secret_bytes = [0u8; 32];
    rng.fill_bytes(&mut secret_bytes);
    let prefix = to_hex(&prefix_bytes);
    let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    GeneratedApiKey {
        token: format!("{API_KEY_PREFIX}{prefix}_{secret}"),
        secret_hash: hash_secret(&secret),
        prefix,
    }
}

/// Splits a token into (prefix, secret), or `None` if it is not shaped like
/// one of our keys. The secret's alphabet includes `_`, so the split is at
/// the first `_` after the fixed-length prefix.
pub fn parse_api_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(API_KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    let prefix_ok = prefix.len() == PREFIX_LEN
        && prefix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (prefix_ok && secret_ok).then_some((prefix, secret))
}

/// Hex SHA-256 of the secret part.
pub fn hash_secret(secret: &str) -> String {
    to_hex(&Sha256::digest(secret.as_bytes()))
}

/// True when `secret` hashes to `stored_hash`, compared in constant time so
/// response timing leaks nothing about how much of the hash matched.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    let computed = hash_secret(secret);
    let (a, b) = (computed.as_bytes(), stored_hash.as_bytes());
    // Lengths are public (always 64 for a real hash).
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_matches_known_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
