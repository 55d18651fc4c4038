//! Envelope encryption of node key material.
//!
//! Each node gets its own random data key (DEK). The key material is sealed
//! under the DEK; the DEK is sealed under the installation's master key.
//! The store holds only the two sealed blobs. An agent receives the DEK over
//! mutual TLS (for nodes placed on its host only) and the sealed material in
//! its command, and opens it in memory. Both seals bind the node id as
//! associated data, so a blob moved to another node's row does not open.

use crate::master_key::MasterKey;
use crate::IdentityError;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What the store keeps for a node's key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedMaterial {
    pub sealed_data_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// SHA-256 hex of the plaintext: identifies the material without revealing it.
    pub fingerprint: String,
}

fn dek_aad(node_id: &str) -> Vec<u8> {
    format!("node-data-key:{node_id}").into_bytes()
}

fn material_aad(node_id: &str) -> Vec<u8> {
    format!("node-key-material:{node_id}").into_bytes()
}

/// A fresh 32-byte secret, e.g. a devp2p node key (any 32 random bytes are a
/// valid secp256k1 scalar with overwhelming probability).
pub fn generate_secret() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

pub fn fingerprint(plaintext: &[u8]) -> String {
    hex::encode(Sha256::digest(plaintext))
}

/// Seals `plaintext` for `node_id` under a new data key.
pub fn seal_node_material(
    master: &MasterKey,
    node_id: &str,
    plaintext: &[u8],
) -> Result<SealedMaterial, IdentityError> {
    let dek = MasterKey::generate();
    let ciphertext = dek.seal(plaintext, &material_aad(node_id))?;
    let sealed_data_key = master.seal(&dek.to_bytes(), &dek_aad(node_id))?;
    Ok(SealedMaterial {
        sealed_data_key,
        ciphertext,
        fingerprint: fingerprint(plaintext),
    })
}

/// Unwraps a node's data key (control plane side, to hand it to the agent).
pub fn open_data_key(
    master: &MasterKey,
    node_id: &str,
    sealed_data_key: &[u8],
) -> Result<MasterKey, IdentityError> {
    let bytes = master.open(sealed_data_key, &dek_aad(node_id))?;
    MasterKey::from_bytes(&bytes)
}

/// Opens a node's key material with its data key (agent side).
pub fn open_node_material(
    data_key: &MasterKey,
    node_id: &str,
    ciphertext: &[u8],
) -> Result<Vec<u8>, IdentityError> {
    data_key.open(ciphertext, &material_aad(node_id))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn material_round_trips_through_the_envelope_and_is_bound_to_its_node() {
        let master = MasterKey::generate();
        let secret = generate_secret();
        let sealed = seal_node_material(&master, "node-a", &secret).unwrap();
        assert_eq!(sealed.fingerprint, fingerprint(&secret));
        assert!(
            !sealed.ciphertext.windows(secret.len()).any(|w| w == secret),
            "ciphertext hides the key"
        );
        let dek = open_data_key(&master, "node-a", &sealed.sealed_data_key).unwrap();
        assert_eq!(
            open_node_material(&dek, "node-a", &sealed.ciphertext).unwrap(),
            secret
        );
        // Moved to another node's row, nothing opens.
        assert!(open_data_key(&master, "node-b", &sealed.sealed_data_key).is_err());
        assert!(open_node_material(&dek, "node-b", &sealed.ciphertext).is_err());
        // Another installation's master key opens nothing.
        assert!(open_data_key(&MasterKey::generate(), "node-a", &sealed.sealed_data_key).is_err());
    }
}
