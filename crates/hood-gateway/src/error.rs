//! Errors of the service API and the server.

use hood_domain::lifecycle::HostState;
use hood_domain::HostId;

/// Failures of [`Fleet`](crate::Fleet) and [`Gateway`](crate::Gateway).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Store(#[from] hood_store::StoreError),
    #[error(transparent)]
    Pki(#[from] hood_pki::PkiError),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Bad input from the caller; the message names the field.
    #[error("invalid {0}")]
    Invalid(String),
    /// The host's lifecycle forbids the operation (e.g. it is deleted).
    #[error("host {host} is {state}")]
    HostState { host: HostId, state: HostState },
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type GatewayResult<T> = Result<T, GatewayError>;
