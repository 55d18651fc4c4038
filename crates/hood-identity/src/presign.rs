//! Presigned storage URLs: an HMAC-SHA256 over the method, the namespace,
//! the object key and the expiry, under a key the master key derives (so
//! every replica signs and checks alike and nothing extra is stored). A
//! signature grants exactly one method on one object until it expires.

use crate::master_key::MasterKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What the master key derives the presigning key from.
const DERIVATION_LABEL: &[u8] = b"hood/storage/presign/v1";

/// The longest a presigned URL may live: seven days, as S3's SigV4.
pub const MAX_VALIDITY_SECS: u64 = 7 * 24 * 3600;

/// What a signature grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant<'a> {
    /// `GET` or `PUT` (upper case).
    pub method: &'a str,
    /// The namespace's id.
    pub namespace: &'a str,
    pub key: &'a str,
    /// Unix seconds after which the URL is refused.
    pub expires: u64,
}

/// Why a presigned request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    #[error("the presigned URL expired")]
    Expired,
    #[error("the presigned URL's signature does not match this request")]
    BadSignature,
}

#[derive(Clone)]
pub struct Presigner {
    key: [u8; 32],
}

impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Presigner(..)")
    }
}

impl Presigner {
    pub fn new(master: &MasterKey) -> Self {
        Self {
            key: master.derive(DERIVATION_LABEL),
        }
    }

    fn mac(&self, grant: &Grant<'_>) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        // Length-prefixed fields: no two grants share a message.
        for field in [
            grant.method.as_bytes(),
            grant.namespace.as_bytes(),
            grant.key.as_bytes(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac.update(&grant.expires.to_be_bytes());
        mac
    }

    /// The signature (lower-case hex) for `grant`.
    pub fn sign(&self, grant: &Grant<'_>) -> String {
        hex::encode(self.mac(grant).finalize().into_bytes())
    }

    /// Checks `signature` for `grant` at `now_unix` (constant-time
    /// comparison; expiry is checked after the signature, so a forged
    /// expiry is a bad signature, not an expired URL).
    pub fn verify(
        &self,
        grant: &Grant<'_>,
        signature: &str,
        now_unix: u64,
    ) -> Result<(), PresignError> {
        let given = hex::decode(signature).map_err(|_| PresignError::BadSignature)?;
        self.mac(grant)
            .verify_slice(&given)
            .map_err(|_| PresignError::BadSignature)?;
        if now_unix >= grant.expires {
            return Err(PresignError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(method: &'static str, key: &'static str, expires: u64) -> Grant<'static> {
        Grant {
            method,
            namespace: "0190a6f2-7d3c-7c9b-8d55-1f4b1e7a9c01",
            key,
            expires,
        }
    }

    #[test]
    fn a_signature_grants_one_method_on_one_object_until_it_expires() {
        let presigner = Presigner::new(&MasterKey::generate());
        let g = grant("GET", "reports/q1.csv", 1_000);
        let sig = presigner.sign(&g);
        assert_eq!(presigner.verify(&g, &sig, 999), Ok(()));
        assert_eq!(
            presigner.verify(&g, &sig, 1_000),
            Err(PresignError::Expired)
        );
        for other in [
            grant("PUT", "reports/q1.csv", 1_000),
            grant("GET", "reports/q2.csv", 1_000),
            grant("GET", "reports/q1.csv", 2_000),
        ] {
            assert_eq!(
                presigner.verify(&other, &sig, 0),
                Err(PresignError::BadSignature),
                "{other:?}"
            );
        }
        assert_eq!(
            presigner.verify(&g, "not hex", 0),
            Err(PresignError::BadSignature)
        );
        // Another master key signs differently.
        let stranger = Presigner::new(&MasterKey::generate());
        assert_eq!(
            stranger.verify(&g, &sig, 0),
            Err(PresignError::BadSignature)
        );
    }
}
