//! Presigned URLs: one method on one object until they expire.

use crate::{Storage, StorageError, StorageResult};
use hood_domain::storage::{Namespace, NamespaceState, ObjectKey};
use hood_domain::validate::FieldError;
use hood_domain::NamespaceId;
use hood_identity::presign::Grant;
use std::time::Duration;

/// A presigned grant: the signature and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub namespace_id: NamespaceId,
    pub method: &'static str,
    pub expires_unix: u64,
    pub signature: String,
}

impl Storage {
    /// Signs `method` (`GET` or `PUT`) on one object for `valid_for`.
    pub fn presign(
        &self,
        ns: &Namespace,
        key: &str,
        method: &str,
        valid_for: Duration,
    ) -> StorageResult<Presigned> {
        ObjectKey::parse(key)?;
        let method = match method.to_ascii_uppercase().as_str() {
            "GET" => "GET",
            "PUT" => "PUT",
            other => {
                return Err(FieldError::new(
                    "method",
                    format!("`{other}` cannot be presigned (GET or PUT)"),
                )
                .into())
            }
        };
        let secs = valid_for.as_secs();
        if secs == 0 || secs > hood_identity::presign::MAX_VALIDITY_SECS {
            return Err(FieldError::new(
                "expires_in_seconds",
                format!(
                    "must be between 1 and {}",
                    hood_identity::presign::MAX_VALIDITY_SECS
                ),
            )
            .into());
        }
        let expires_unix = self.now_unix().saturating_add(secs);
        let namespace = ns.id.to_string();
        let signature = self.inner.presigner.sign(&Grant {
            method,
            namespace: &namespace,
            key,
            expires: expires_unix,
        });
        Ok(Presigned {
            namespace_id: ns.id,
            method,
            expires_unix,
            signature,
        })
    }

    /// The active namespace a presigned request may act on, once its
    /// signature and expiry are checked.
    pub async fn presigned_namespace(
        &self,
        namespace: NamespaceId,
        key: &str,
        method: &str,
        expires_unix: u64,
        signature: &str,
    ) -> StorageResult<Namespace> {
        let ns_text = namespace.to_string();
        self.inner.presigner.verify(
            &Grant {
                method,
                namespace: &ns_text,
                key,
                expires: expires_unix,
            },
            signature,
            self.now_unix(),
        )?;
        match self.inner.store.namespace(namespace).await? {
            Some(ns) if ns.state == NamespaceState::Active => Ok(ns),
            _ => Err(StorageError::NotFound("namespace")),
        }
    }

    fn now_unix(&self) -> u64 {
        u64::try_from(self.now().secs()).unwrap_or(0)
    }
}
