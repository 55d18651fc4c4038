//! RFC 9457 problem details: the only error shape the API ever returns.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hood_app::AppError;
use hood_domain::validate::FieldError;
use hood_ports::PortError;
use hood_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

/// RFC 9457 problem details.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        rename = "invalid-params"
    )]
    pub invalid_params: Vec<InvalidParam>,
}

/// Every way a request can fail, mapped to a status in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("request validation failed")]
    Validation(Vec<FieldError>),
    /// One invalid request parameter whose name is only known at run time
    /// (a path segment or a query parameter).
    #[error("{name}: {reason}")]
    InvalidParam { name: String, reason: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PaymentRequired(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A storage namespace's byte quota refuses a write.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("range not satisfiable: the object holds {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// What the request was passed on to did not answer (the ingress).
    #[error("{0}")]
    BadGateway(String),
    /// Internal failures: logged in full, reported without detail.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Validation(_) | ApiError::InvalidParam { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::PayloadTooLarge { .. } | ApiError::QuotaExceeded(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    /// A bad request parameter named at run time (path segment, query key).
    pub fn invalid_param(name: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::InvalidParam {
            name: name.into(),
            reason: reason.into(),
        }
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error").to_owned();
        let (detail, invalid_params) = match self {
            ApiError::Validation(fields) => (
                Some(
                    fields
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                fields
                    .iter()
                    .map(|f| InvalidParam {
                        name: f.field.to_owned(),
                        reason: f.message.clone(),
                    })
                    .collect(),
            ),
            ApiError::InvalidParam { name, reason } => (
                Some(self.to_string()),
                vec![InvalidParam {
                    name: name.clone(),
                    reason: reason.clone(),
                }],
            ),
            // Never leak internals to the caller.
            ApiError::Internal(_) => (None, vec![]),
            other => (Some(other.to_string()), vec![]),
        };
        Problem {
            kind: "about:blank".to_owned(),
            title,
            status: status.as_u16(),
            detail,
            invalid_params,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, "internal error while serving request");
        }
        let problem = self.to_problem();
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (self.status(), body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if let ApiError::RangeNotSatisfiable { size } = self {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
        }
        if let ApiError::Unauthorized(_) = self {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Correction(c) => ApiError::Conflict(c.to_string()),
            StoreError::SchemaOutOfDate { .. } | StoreError::SchemaTooNew { .. } => {
                ApiError::Unavailable(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(fields) => ApiError::Validation(fields),
            AppError::NotFound(what) => ApiError::NotFound(what),
            AppError::Conflict(m) => ApiError::Conflict(m),
            AppError::Unavailable(m) => ApiError::Unavailable(m),
            AppError::PaymentRequired(m) => ApiError::PaymentRequired(m),
            AppError::Store(e) => e.into(),
            AppError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<PortError> for ApiError {
    fn from(e: PortError) -> Self {
        AppError::from(e).into()
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Validation(vec![e])
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
