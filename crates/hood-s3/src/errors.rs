//! Hood's storage errors as S3's (XML) errors.

use hood_domain::storage::{CompletionError, QuotaExceeded};
use hood_storage::StorageError;
use s3s::{s3_error, S3Error, S3ErrorCode};

pub(crate) fn s3(e: StorageError) -> S3Error {
    match e {
        StorageError::NotFound("namespace") => s3_error!(
            NoSuchBucket,
            "the key's organization has no namespace of that name"
        ),
        StorageError::NotFound("upload") => s3_error!(
            NoSuchUpload,
            "no multipart upload of that id is in progress for that key"
        ),
        StorageError::NotFound(_) => s3_error!(NoSuchKey, "the namespace holds no such key"),
        StorageError::Invalid(f) => s3_error!(InvalidArgument, "{f}"),
        StorageError::Conflict(m) => s3_error!(BucketAlreadyOwnedByYou, "{m}"),
        StorageError::Quota(q @ QuotaExceeded::Bytes { .. }) => {
            s3_error!(EntityTooLarge, "{q}")
        }
        StorageError::Quota(q) => {
            let mut err =
                S3Error::with_message(S3ErrorCode::Custom("QuotaExceeded".into()), q.to_string());
            err.set_status_code(axum::http::StatusCode::CONFLICT);
            err
        }
        StorageError::TooLarge { limit } => {
            s3_error!(
                EntityTooLarge,
                "an object or part may hold at most {limit} bytes"
            )
        }
        StorageError::RangeNotSatisfiable { .. } => s3_error!(InvalidRange),
        StorageError::Completion(c) => match c {
            CompletionError::NoParts => s3_error!(MalformedXML, "{c}"),
            CompletionError::Order { .. } => s3_error!(InvalidPartOrder, "{c}"),
            CompletionError::InvalidPart { .. } => s3_error!(InvalidPart, "{c}"),
            CompletionError::TooSmall { .. } => s3_error!(EntityTooSmall, "{c}"),
        },
        StorageError::Body(m) => s3_error!(IncompleteBody, "{m}"),
        StorageError::Presign(e) => s3_error!(AccessDenied, "{e}"),
        e @ (StorageError::Object(_) | StorageError::Store(_)) => {
            tracing::error!(error = %e, "storage failed under an S3 call");
            s3_error!(InternalError)
        }
    }
}
