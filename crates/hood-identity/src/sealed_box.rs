//! NaCl sealed boxes (libsodium's `crypto_box_seal`: X25519, XSalsa20 and
//! Poly1305 with an ephemeral sender key): how a node's key material
//! leaves Hood. Only the holder of the recipient's X25519 secret key opens
//! one; PyNaCl's `SealedBox`, libsodium and `hood keys open` all do.

use crate::IdentityError;
use crypto_box::{PublicKey, SecretKey};

/// Bytes of an X25519 key, public or secret.
pub const KEY_LEN: usize = 32;

/// A fresh X25519 key pair: `(secret, public)`.
pub fn generate_keypair() -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
    let secret = SecretKey::generate(&mut rand::rngs::OsRng);
    let public = secret.public_key();
    (secret.to_bytes(), *public.as_bytes())
}

fn key(bytes: &[u8], what: &str) -> Result<[u8; KEY_LEN], IdentityError> {
    <[u8; KEY_LEN]>::try_from(bytes).map_err(|_| {
        IdentityError::Key(format!(
            "an X25519 {what} key is {KEY_LEN} bytes, not {}",
            bytes.len()
        ))
    })
}

/// Seals `plaintext` to the X25519 `public_key`.
pub fn seal(public_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, IdentityError> {
    let public = PublicKey::from(key(public_key, "public")?);
    if public.as_bytes().iter().all(|b| *b == 0) {
        return Err(IdentityError::Key("the all-zero public key".into()));
    }
    public
        .seal(&mut rand::rngs::OsRng, plaintext)
        .map_err(|_| IdentityError::Crypto("sealing failed".into()))
}

/// Opens a sealed box with the X25519 `secret_key` it was sealed to.
pub fn open(secret_key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, IdentityError> {
    let secret = SecretKey::from(key(secret_key, "secret")?);
    secret
        .unseal(sealed)
        .map_err(|_| IdentityError::Crypto("not sealed to this key, or damaged".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_the_recipient_opens_and_each_seal_differs() {
        let (secret, public) = generate_keypair();
        let a = seal(&public, b"node key").unwrap();
        let b = seal(&public, b"node key").unwrap();
        assert_ne!(a, b, "an ephemeral sender key per seal");
        assert_eq!(a.len(), b"node key".len() + 48, "epk, tag, ciphertext");
        assert_eq!(open(&secret, &a).unwrap(), b"node key");
        let (other, _) = generate_keypair();
        assert!(open(&other, &a).is_err());
        let mut damaged = a.clone();
        damaged[40] ^= 1;
        assert!(open(&secret, &damaged).is_err());
        assert!(seal(&public[..31], b"x").is_err());
        assert!(seal(&[0u8; 32], b"x").is_err());
    }
}
