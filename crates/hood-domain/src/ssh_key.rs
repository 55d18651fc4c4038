//! Users' SSH public keys, the SSH gateway's credentials: one OpenSSH
//! public-key line (`ssh-ed25519 AAAA… comment`), checked and
//! fingerprinted as `ssh-keygen -l` shows it.

use crate::ids::{OrgId, SshKeyId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use ssh_key::{Algorithm, HashAlg, PublicKey};

/// RSA keys shorter than this are refused (OpenSSH's own floor since 8.9
/// is 1024; NIST retired 2048-bit RSA's predecessors long ago).
pub const MIN_RSA_BITS: usize = 2048;

/// A key as stored: whom it lets in, and how it is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    pub id: SshKeyId,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub name: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …
    pub algorithm: String,
    /// The key in OpenSSH's one-line form, without its comment.
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub created_at: Timestamp,
}

/// A parsed public key, before it is anyone's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub algorithm: String,
    pub public_key: String,
    pub fingerprint: String,
    /// The line's comment (often `user@host`), empty when it had none.
    pub comment: String,
}

/// Why a text is not an acceptable public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshKeyError {
    #[error("this is a private key: paste the public one (the `.pub` file)")]
    PrivateKey,
    #[error("one public key per request, on one line")]
    SeveralLines,
    #[error("not an OpenSSH public key (`ssh-ed25519 AAAA… comment`): {0}")]
    Malformed(String),
    #[error("{0} keys are not accepted: use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa of at least {MIN_RSA_BITS} bits")]
    Unsupported(String),
    #[error("an RSA key of {bits} bits is too short: at least {MIN_RSA_BITS}")]
    WeakRsa { bits: usize },
}

/// Parses one OpenSSH public-key line.
pub fn parse_public_key(text: &str) -> Result<ParsedKey, SshKeyError> {
    let text = text.trim();
    if text.contains("PRIVATE KEY") {
        return Err(SshKeyError::PrivateKey);
    }
    if text.lines().count() > 1 {
        return Err(SshKeyError::SeveralLines);
    }
    let key = PublicKey::from_openssh(text).map_err(|e| SshKeyError::Malformed(e.to_string()))?;
    let algorithm = key.algorithm();
    match &algorithm {
        Algorithm::Ed25519
        | Algorithm::Ecdsa { .. }
        | Algorithm::SkEd25519
        | Algorithm::SkEcdsaSha2NistP256 => {}
        Algorithm::Rsa { .. } => {
            let bits = key
                .key_data()
                .rsa()
                .map(|rsa| significant_bits(rsa.n.as_positive_bytes().unwrap_or_default()))
                .unwrap_or(0);
            if bits < MIN_RSA_BITS {
                return Err(SshKeyError::WeakRsa { bits });
            }
        }
        other => return Err(SshKeyError::Unsupported(other.as_str().to_owned())),
    }
    let bare = PublicKey::new(key.key_data().clone(), "");
    let public_key = bare
        .to_openssh()
        .map_err(|e| SshKeyError::Malformed(e.to_string()))?
        .trim()
        .to_owned();
    Ok(ParsedKey {
        algorithm: algorithm.as_str().to_owned(),
        public_key,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        comment: key.comment().to_owned(),
    })
}

/// Bits of a big-endian unsigned integer, leading zeros aside.
fn significant_bits(bytes: &[u8]) -> usize {
    let bytes = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => return 0,
    };
    bytes.len() * 8 - bytes[0].leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by OpenSSH's ssh-keygen; fingerprints as `ssh-keygen -lf` shows.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeztSW0VxjoraB0z8fn3ilcYAa5JqFsYZfjSNY7J8DB ops@example";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBD1sw9NFt/Z/R10OU1aQp8sV+7KUcaburlJ3rtrjS6+2YkW8vj5C9orbMADLjXMGK9c6gHKjZic6l/JiEN9Q3dw= root@vm";
    const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDfbBvkRixL6QAMia6A4RxSSj85n04IBx2RD49G3k30iPru9zuNnl4lLFQrJC/yWIx4DFGqSQA1DHeWVXwm9wrFeaoeuQSeAZtxoMtmmnVutiGecJJtLzA3gA7scDVwL7kM2epRYF4reoR6sCWbUR96HNYcJvVF/SAfWeBxAOrpJQ== root@vm";
    const DSA: &str = "ssh-dss AAAAB3NzaC1kc3MAAACBAMqRdLxooRVOBiSvY9IHu9PK/hPctBkDnApGl+vIE8ls0Oj/a22xENoJ0wIxqebqO1hacB+3f3xvQy5GpZlSZ4z6oSyWcgOuKHgpHYbJmKmWvF61XnktSW9tc49kHn/MwwKRu5bgzNWVddDmcj7ss3mSdqUw6KQ1B86KyTJ8oqSHAAAAFQCqVeqBb6EaxTEwgEJ87gyG3szEkwAAAIAoDPcEwyL8QGrlgGOzGJUUIcVSvscO1J/6gsucU6wWnLRqNBy6spN3SywwMiwF8ehOVc82CTzGFa/2pK1upmE32nuqOmzHMlWxoYgAPNBrhQjuqaCl8exEiSU2+NVSffgYKb+aKDlRyCQMj/wtOqV1CR1OpDeDbzx/tZiXAKeNcAAAAIB9Ehfg8Edv8gzlXQrSihl/jObmertDBnKIIx5EpJNQBEixEVJlUhNbcwTVuBJqzRYxR5juGVcEwMjs4DgLovykeRFNaInato0XQuZ4JldwLUOHvQ591NTdxmQOU6Tq0VUIxZz4kA+3GDztf30BprumgY5D6EUfGxZIJMrVmpe4bQ== root@vm";

    #[test]
    fn keys_are_fingerprinted_as_openssh_does() {
        let key = parse_public_key(&format!("  {ED25519}\n")).unwrap();
        assert_eq!(key.algorithm, "ssh-ed25519");
        assert_eq!(
            key.fingerprint,
            "SHA256:nG3vWmqVRlMXIMLSWB0ZGF06arMA148Yum5quqGS8Q0"
        );
        assert_eq!(key.comment, "ops@example");
        assert_eq!(
            key.public_key,
            ED25519.trim_end_matches(" ops@example"),
            "stored without its comment"
        );
        let key = parse_public_key(ECDSA).unwrap();
        assert_eq!(key.algorithm, "ecdsa-sha2-nistp256");
        assert_eq!(
            key.fingerprint,
            "SHA256:0FvutXTepbokVhu4pdUg89k8YHLVXUCktSyGbZZvJ6Q"
        );
    }

    #[test]
    fn weak_unsupported_and_malformed_keys_are_refused() {
        assert_eq!(
            parse_public_key(RSA_1024),
            Err(SshKeyError::WeakRsa { bits: 1024 })
        );
        assert_eq!(
            parse_public_key(DSA),
            Err(SshKeyError::Unsupported("ssh-dss".into()))
        );
        assert_eq!(
            parse_public_key(
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"
            ),
            Err(SshKeyError::PrivateKey)
        );
        assert_eq!(
            parse_public_key(&format!("{ED25519}\n{ECDSA}")),
            Err(SshKeyError::SeveralLines)
        );
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 not-base64!",
            // The blob names another algorithm than the line.
            &ED25519.replacen("ssh-ed25519", "ssh-rsa", 1),
            // authorized_keys options are not a key.
            &format!("from=\"10.0.0.1\" {ED25519}"),
        ] {
            assert!(
                matches!(parse_public_key(bad), Err(SshKeyError::Malformed(_))),
                "{bad:?}: {:?}",
                parse_public_key(bad)
            );
        }
    }

    #[test]
    fn bits_count_from_the_first_set_bit() {
        assert_eq!(significant_bits(&[]), 0);
        assert_eq!(significant_bits(&[0, 0]), 0);
        assert_eq!(significant_bits(&[0, 1]), 1);
        assert_eq!(significant_bits(&[0x80, 0]), 16);
        assert_eq!(significant_bits(&[0, 0x7f, 0xff]), 15);
    }
}
