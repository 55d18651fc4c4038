//! The installation's CA in the store: created once, its key sealed under
//! the master key. The control plane's side of `hood-pki` (which holds only
//! the cryptography, so that the agent carries no database code).

use hood_domain::Timestamp;
use hood_identity::master_key::MasterKey;
use hood_pki::{Ca, IssuedCert, PkiError};
use hood_store::fleet::{CaRecord, FleetStore, HostCertificate};
use hood_store::StoreError;

/// Why the CA could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum CaStoreError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Loads the installation's CA, creating it on first start. Two processes
/// starting at once both generate one, but the store keeps only the first
/// insert and both end up using it.
pub async fn load_or_create_ca(
    store: &dyn FleetStore,
    master: &MasterKey,
    now: Timestamp,
) -> Result<Ca, CaStoreError> {
    if let Some(record) = store.get_ca().await? {
        return Ok(Ca::open(&record.cert_pem, &record.sealed_key, master)?);
    }
    let fresh = Ca::generate(now)?;
    let stored = store
        .insert_ca_if_absent(&CaRecord {
            cert_pem: fresh.cert_pem().to_owned(),
            sealed_key: fresh.sealed_key(master)?,
            created_at: now,
        })
        .await?;
    if stored.cert_pem == fresh.cert_pem() {
        tracing::info!("created the internal CA");
        return Ok(fresh);
    }
    Ok(Ca::open(&stored.cert_pem, &stored.sealed_key, master)?)
}

/// The row recording an issued host certificate (public data only).
pub fn certificate_record(issued: &IssuedCert, issued_at: Timestamp) -> HostCertificate {
    HostCertificate {
        serial: issued.serial.clone(),
        host_id: issued.host_id,
        not_before: issued.not_before,
        not_after: issued.not_after,
        issued_at,
        revoked_at: None,
    }
}
