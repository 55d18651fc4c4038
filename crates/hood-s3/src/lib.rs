//! The S3-compatible endpoint of Hood's storage (the `storage` role):
//! bucket = namespace of the key's organization, objects and multipart
//! uploads through [`hood_storage::Storage`], so quotas, audit and the
//! sweeper are the same as through Hood's own API.
//!
//! [`s3s`] speaks the protocol (routing, XML, SigV4 including streamed
//! payloads); Hood answers who a signature belongs to ([`Principals`]) and
//! what it may do: every call checks the service account's grants on
//! `storage.{org}.namespaces.{bucket}` and its owner's current role.

mod errors;
mod ops;
mod principals;

pub use principals::{Principal, Principals};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hood_storage::Storage;
use std::sync::Arc;

/// The S3 implementation over Hood's storage.
#[derive(Clone)]
pub struct HoodS3 {
    storage: Storage,
    principals: Arc<Principals>,
}

impl HoodS3 {
    pub fn new(storage: Storage, principals: Arc<Principals>) -> Self {
        Self {
            storage,
            principals,
        }
    }

    /// The s3s service: SigV4 against Hood's access keys, path-style
    /// buckets (virtual-hosted names would need a DNS zone per install).
    pub fn service(self) -> s3s::service::S3Service {
        let auth = principals::Auth(Arc::clone(&self.principals));
        let mut builder = s3s::service::S3ServiceBuilder::new(self);
        builder.set_auth(auth);
        builder.set_access(AnonymousReads);
        builder.build()
    }

    /// The service as an axum router (every path), to be served with the
    /// rest of Hood's listeners and their graceful shutdown.
    pub fn router(self) -> Router {
        let service = self.service();
        Router::new().fallback(move |req: Request| {
            let service = service.clone();
            async move {
                let sends_body = carries_body(req.headers());
                let req = req.map(s3s::Body::http_body_unsync);
                match service.call(req).await {
                    Ok(resp) => {
                        let mut resp = resp.map(axum::body::Body::new);
                        // A refusal may come before the body was read (an
                        // unknown upload, a denied bucket): whatever of it
                        // is still in flight must not be taken for the
                        // next request on the connection (a 1-byte body
                        // became the first letter of the next method and
                        // broke its signature), so the connection ends.
                        if sends_body && !resp.status().is_success() {
                            resp.headers_mut().insert(
                                axum::http::header::CONNECTION,
                                axum::http::HeaderValue::from_static("close"),
                            );
                        }
                        resp
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "s3 request failed outside the protocol");
                        Response::from(
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        )
                    }
                }
            }
        })
    }
}

/// Whether a request says a body follows (a length above 0, or chunks).
fn carries_body(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// Which requests may go unsigned: only reads, which then reach public
/// namespaces alone (the operations check; see `ops.rs`). Everything else
/// needs a signature, as s3s's default.
struct AnonymousReads;

/// The operations an unsigned request may ask for.
const ANONYMOUS_OPERATIONS: [&str; 3] = ["GetObject", "HeadObject", "ListObjectsV2"];

#[async_trait::async_trait]
impl s3s::access::S3Access for AnonymousReads {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        if cx.credentials().is_some() || ANONYMOUS_OPERATIONS.contains(&cx.s3_op().name()) {
            Ok(())
        } else {
            Err(s3s::s3_error!(
                AccessDenied,
                "sign the request with an access key: anonymous requests only read public namespaces"
            ))
        }
    }
}
