//! Enrollment and renewal: how the agent obtains and keeps its host
//! identity (stored by `stored_identity`).

use crate::channel::gateway_channel;
use crate::error::AgentError;
use crate::handle::AgentHandle;
use crate::now_ms;
use crate::stored_identity::{write_private, StoredIdentity};
use hood_agent_proto::v1::agent_gateway_client::AgentGatewayClient;
use hood_agent_proto::v1::{EnrollRequest, RenewRequest};
use hood_domain::HostId;
use hood_pki::{HostKey, PeerIdentity};

/// The enrollment key pair while enrollment is in flight.
const PENDING_KEY_FILE: &str = "enroll-key.pem";

/// Reads the token: the configured file, else the environment. Never logged.
fn read_token(handle: &AgentHandle) -> Result<String, AgentError> {
    if let Some(path) = &handle.config().token_file {
        return match std::fs::read_to_string(path) {
            Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
            Ok(_) => Err(AgentError::NoToken),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(AgentError::NoToken),
            Err(e) => Err(AgentError::io(path, e)),
        };
    }
    match std::env::var(crate::TOKEN_ENV) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
        _ => Err(AgentError::NoToken),
    }
}

/// Checks that a certificate from the gateway is for `host` and returns
/// its serial and expiry.
fn check_cert(cert_pem: &str, host: HostId) -> Result<PeerIdentity, AgentError> {
    let peer = PeerIdentity::from_pem(cert_pem)
        .map_err(|e| AgentError::Protocol(format!("certificate from the gateway: {e}")))?;
    if peer.host_id != host {
        return Err(AgentError::Protocol(
            "certificate from the gateway names another host".into(),
        ));
    }
    Ok(peer)
}

pub(crate) async fn enroll_if_needed(handle: &AgentHandle) -> Result<HostId, AgentError> {
    if let Some(id) = handle.identity() {
        return Ok(id.host_id);
    }
    let config = handle.config();
    let ca_pem = config.ca_pem.clone().ok_or_else(|| {
        AgentError::Config(
            "enrollment needs the CA certificate (ca_pem) to trust the gateway".into(),
        )
    })?;
    let token = read_token(handle)?;
    // The key pair is kept until enrollment succeeds: if the answer is lost
    // (the control plane died after spending the token), the retry presents
    // the same key and the gateway issues the certificate again.
    let pending = config.data_dir.join(PENDING_KEY_FILE);
    let key = match std::fs::read_to_string(&pending) {
        Ok(pem) => HostKey::from_pem(&pem)?,
        Err(_) => {
            let key = HostKey::generate()?;
            write_private(&pending, key.private_key_pem().as_bytes())?;
            key
        }
    };
    let csr_pem = key.csr_pem(&config.hostname)?;
    let channel = gateway_channel(config, &ca_pem, None)?;
    let response = AgentGatewayClient::new(channel)
        .enroll(EnrollRequest {
            token,
            csr_pem,
            agent_version: config.agent_version.clone(),
            hostname: config.hostname.clone(),
        })
        .await;
    let response = match response {
        Ok(r) => r.into_inner(),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Unauthenticated
                    | tonic::Code::FailedPrecondition
                    | tonic::Code::InvalidArgument
            ) =>
        {
            return Err(AgentError::EnrollmentRefused(status.message().to_owned()));
        }
        Err(status) => return Err(status.into()),
    };
    let host_id: HostId = response
        .host_id
        .parse()
        .map_err(|_| AgentError::Protocol("enrollment returned a malformed host id".into()))?;
    let peer = check_cert(&response.certificate_pem, host_id)?;
    let identity = StoredIdentity {
        host_id,
        cert_pem: response.certificate_pem,
        key_pem: key.private_key_pem(),
        ca_pem: if response.ca_certificate_pem.is_empty() {
            ca_pem
        } else {
            response.ca_certificate_pem
        },
        serial: peer.serial,
        obtained_at_ms: now_ms(),
        not_after_ms: response.not_after_unix_ms,
        task_key: (!response.task_public_key.is_empty()).then_some(response.task_public_key),
    };
    identity.save(&config.data_dir)?;
    let _ = std::fs::remove_file(&pending);
    // The token is spent; do not leave it lying around.
    if let Some(path) = &config.token_file {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!(host_id = %host_id, serial = %identity.serial, "enrolled");
    handle.set_identity(identity);
    Ok(host_id)
}

pub(crate) async fn renew(handle: &AgentHandle) -> Result<(), AgentError> {
    let current = handle
        .identity()
        .ok_or_else(|| AgentError::Config("cannot renew: not enrolled".into()))?;
    let key = HostKey::generate()?;
    let csr_pem = key.csr_pem(&handle.config().hostname)?;
    let channel = gateway_channel(
        handle.config(),
        &current.ca_pem,
        Some((&current.cert_pem, current.key_pem())),
    )?;
    let response = AgentGatewayClient::new(channel)
        .renew(RenewRequest { csr_pem })
        .await?
        .into_inner();
    let peer = check_cert(&response.certificate_pem, current.host_id)?;
    let renewed = StoredIdentity {
        host_id: current.host_id,
        cert_pem: response.certificate_pem,
        key_pem: key.private_key_pem(),
        ca_pem: current.ca_pem.clone(),
        serial: peer.serial,
        obtained_at_ms: now_ms(),
        not_after_ms: response.not_after_unix_ms,
        // Renewal changes the certificate, never the pinned task key.
        task_key: current.task_key.clone(),
    };
    renewed.save(&handle.config().data_dir)?;
    tracing::info!(host_id = %renewed.host_id, old_serial = %current.serial, serial = %renewed.serial, "renewed certificate");
    handle.emit_event(
        "cert_renewed",
        None,
        "host certificate renewed",
        serde_json::json!({ "serial": renewed.serial, "not_after_unix_ms": renewed.not_after_ms }),
    );
    handle.set_identity(renewed);
    Ok(())
}
