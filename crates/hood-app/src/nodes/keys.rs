//! Key export: a node's key material sealed to the caller's X25519 public
//! key (a NaCl sealed box), so it leaves Hood readable only by whoever
//! holds the matching secret key. Every export is written to the node's
//! history, with who asked and the recipient key's fingerprint.

use super::NodeService;
use crate::error::{AppError, AppResult};
use hood_domain::validate::FieldError;
use hood_domain::{NodeId, OrgId};
use hood_identity::envelope::{open_data_key, open_node_material};
use hood_identity::master_key::MasterKey;
use hood_identity::sealed_box;

/// A node's key material as it leaves Hood.
#[derive(Debug, Clone)]
pub struct KeyExport {
    pub node_id: NodeId,
    /// What the material is (`p2p_nodekey`, …).
    pub kind: String,
    /// SHA-256 hex of the material (what the opened box hashes to).
    pub fingerprint: String,
    /// The material sealed to the recipient's key.
    pub sealed: Vec<u8>,
}

impl NodeService {
    /// Seals node `id`'s key material to `recipient` (32-byte X25519 public
    /// key). `actor` names who asked, for the node's history.
    pub async fn export_keys(
        &self,
        org: OrgId,
        id: NodeId,
        recipient: &[u8],
        master: &MasterKey,
        actor: &str,
    ) -> AppResult<KeyExport> {
        if recipient.len() != sealed_box::KEY_LEN {
            return Err(AppError::Invalid(vec![FieldError::new(
                "public_key",
                format!(
                    "an X25519 public key is {} bytes (base64), not {}",
                    sealed_box::KEY_LEN,
                    recipient.len()
                ),
            )]));
        }
        let node = self.get(org, id).await?;
        let material = self
            .nodes
            .get_node_keys(node.id)
            .await?
            .ok_or_else(|| {
                AppError::Conflict(format!(
                    "node {} has no key material (it is {}; keys are made while provisioning and wiped at termination)",
                    node.id,
                    node.state.as_str()
                ))
            })?;
        let node_ref = node.id.to_string();
        let opened = open_data_key(master, &node_ref, &material.sealed_data_key)
            .and_then(|dek| open_node_material(&dek, &node_ref, &material.ciphertext))
            .map_err(|e| AppError::Internal(format!("node key material does not open: {e}")))?;
        let sealed = sealed_box::seal(recipient, &opened)
            .map_err(|e| AppError::Invalid(vec![FieldError::new("public_key", e.to_string())]))?;
        let recipient_fp = hood_identity::envelope::fingerprint(recipient);
        self.nodes
            .append_node_event(
                node.id,
                "key_export",
                &format!(
                    "key material ({}) exported by {actor}, sealed to X25519 key {}",
                    material.kind,
                    &recipient_fp[..16]
                ),
                self.clock.now(),
            )
            .await?;
        tracing::warn!(node_id = %node.id, actor, recipient = &recipient_fp[..16], "node key material exported");
        Ok(KeyExport {
            node_id: node.id,
            kind: material.kind,
            fingerprint: material.fingerprint,
            sealed,
        })
    }
}
