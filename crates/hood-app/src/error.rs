//! What a use case can answer besides success.

use hood_domain::validate::FieldError;
use hood_ports::PortError;
use hood_store::StoreError;

/// Why a use case refused or failed. Transports map each variant to one
/// answer (400, 404, 409, 503, 500); messages are safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed; each field names what is wrong with it.
    #[error("request validation failed")]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with what exists or with a state; the message
    /// says what to do about it.
    #[error("{0}")]
    Conflict(String),
    /// A part of Hood the request needs is not running or not answering.
    #[error("{0}")]
    Unavailable(String),
    /// The organization must pay first (prepaid credits exhausted).
    #[error("{0}")]
    PaymentRequired(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A port failed in a way the caller cannot fix.
    #[error("{0}")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl From<PortError> for AppError {
    fn from(e: PortError) -> Self {
        match e {
            // Ports name what is missing in free text; the caller sees a
            // plain 404 for the resource it asked about.
            PortError::NotFound(_) => AppError::NotFound("workflow"),
            PortError::Conflict(m) => AppError::Conflict(m),
            PortError::Unavailable(m) => AppError::Unavailable(m),
            PortError::Internal(m) => AppError::Internal(m),
        }
    }
}
