//! API key and RPC key secrets.
//!
//! An API key looks like `hood_<prefix>_<secret>`, an RPC key (the edge's
//! keys, used in RPC URLs) `hrpc_<prefix>_<secret>`. Both share one shape
//! and one implementation: the prefix (12 lowercase hex digits) is public
//! and indexes the stored record; the secret is 256 random bits in
//! unpadded base64url, and only its SHA-256 is stored. A fast hash is right
//! here (unlike passwords) because there is nothing to brute-force.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every Hood API key starts with this, so secret scanners can spot leaks
/// and the API can tell keys from JWTs.
pub const API_KEY_PREFIX: &str = "hood_";
/// Every RPC key starts with this. Its alphabet (like the rest of the
/// token) is URL-safe, so the key can sit in an RPC URL's path.
pub const RPC_KEY_PREFIX: &str = "hrpc_";
/// Length of the public lookup prefix (lowercase hex).
pub const PREFIX_LEN: usize = 12;
/// Length of the secret: 32 bytes in unpadded base64url.
pub const SECRET_LEN: usize = 43;

/// A freshly generated key. `token` is shown to the user once and never
/// stored; `prefix` and `secret_hash` go into the `ApiKey` (or `RpcKey`)
/// record.
#[derive(Clone)]
pub struct GeneratedApiKey {
    pub token: String,
    pub prefix: String,
    pub secret_hash: String,
}

/// An RPC key is generated in the same shape (see [`generate_rpc_key`]).
pub type GeneratedRpcKey = GeneratedApiKey;

impl std::fmt::Debug for GeneratedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedApiKey")
            .field("token", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("secret_hash", &"<redacted>")
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

/// Generates a new API key from the OS RNG.
pub fn generate_api_key() -> GeneratedApiKey {
    generate_key(API_KEY_PREFIX)
}

/// Generates a new RPC key (`hrpc_…`) from the OS RNG.
pub fn generate_rpc_key() -> GeneratedRpcKey {
    generate_key(RPC_KEY_PREFIX)
}

/// Splits an RPC key into (prefix, secret), or `None` if it is not shaped
/// like one (an API key is not an RPC key, and vice versa).
pub fn parse_rpc_key(token: &str) -> Option<(&str, &str)> {
    parse_key(RPC_KEY_PREFIX, token)
}

fn generate_key(kind: &str) -> GeneratedApiKey {
    let mut rng = rand::rngs::OsRng;
    let mut prefix_bytes = [0u8; PREFIX_LEN / 2];
    rng.fill_bytes(&mut prefix_bytes);
    let mut secret_bytes = [0u8; 32];
    rng.fill_bytes(&mut secret_bytes);
    let prefix = to_hex(&prefix_bytes);
    let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    GeneratedApiKey {
        token: format!("{kind}{prefix}_{secret}"),
        secret_hash: hash_secret(&secret),
        prefix,
    }
}

/// Splits a token into (prefix, secret), or `None` if it is not shaped like
/// one of our keys. The secret's alphabet includes `_`, so the split is at
/// the first `_` after the fixed-length prefix.
pub fn parse_api_key(token: &str) -> Option<(&str, &str)> {
    parse_key(API_KEY_PREFIX, token)
}

fn parse_key<'t>(kind: &str, token: &'t str) -> Option<(&'t str, &'t str)> {
    let rest = token.strip_prefix(kind)?;
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

/// Hex SHA-256 of the secret part (of either kind of key).
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

    #[test]
    fn api_keys_round_trip() {
        let k = generate_api_key();
        assert!(k.token.starts_with("hood_"));
        let (prefix, secret) = parse_api_key(&k.token).expect("parses");
        assert_eq!(prefix, k.prefix);
        assert!(verify_secret(secret, &k.secret_hash));
        assert!(
            parse_rpc_key(&k.token).is_none(),
            "an API key is no RPC key"
        );
    }

    #[test]
    fn rpc_keys_have_their_own_shape_and_share_the_hash() {
        let k = generate_rpc_key();
        assert!(k.token.starts_with("hrpc_"), "{}", k.prefix);
        assert_eq!(k.token.len(), 5 + PREFIX_LEN + 1 + SECRET_LEN);
        assert_eq!(k.prefix.len(), PREFIX_LEN);
        assert!(
            k.token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "URL-safe"
        );
        let (prefix, secret) = parse_rpc_key(&k.token).expect("parses");
        assert_eq!(prefix, k.prefix);
        assert_eq!(secret.len(), SECRET_LEN);
        assert_eq!(hash_secret(secret), k.secret_hash);
        assert!(verify_secret(secret, &k.secret_hash));
        assert!(!verify_secret(&"A".repeat(SECRET_LEN), &k.secret_hash));
        assert!(
            parse_api_key(&k.token).is_none(),
            "an RPC key is no API key"
        );
        // Two keys never share a prefix or a secret (256 random bits).
        let other = generate_rpc_key();
        assert_ne!(other.prefix, k.prefix);
        assert_ne!(other.secret_hash, k.secret_hash);
        // Debug output shows neither the token nor the hash.
        let dbg = format!("{k:?}");
        assert!(
            !dbg.contains(&k.token) && !dbg.contains(&k.secret_hash),
            "{dbg}"
        );
    }

    #[test]
    fn malformed_rpc_keys_are_refused() {
        let secret = "A".repeat(SECRET_LEN);
        let good = format!("hrpc_0123456789ab_{secret}");
        assert!(parse_rpc_key(&good).is_some());
        // The secret alphabet includes '_' and '-'.
        let underscored = format!("hrpc_0123456789ab_{}", "_-".repeat(SECRET_LEN / 2) + "x");
        assert!(parse_rpc_key(&underscored).is_some());
        for bad in [
            String::new(),
            "hrpc_".into(),
            format!("hrpc_0123456789AB_{secret}"),
            format!("hrpc_0123456789a_{secret}"),
            format!("hrpc_0123456789abc_{secret}"),
            format!("hrpc_0123456789ab_{}", &secret[1..]),
            format!("hrpc_0123456789ab_{secret}A"),
            format!("hrpc_0123456789ab_{}=", &secret[1..]),
            format!("HRPC_0123456789ab_{secret}"),
            format!("hood_0123456789ab_{secret}"),
            format!(" hrpc_0123456789ab_{secret}"),
        ] {
            assert!(parse_rpc_key(&bad).is_none(), "{bad}");
        }
    }
}
