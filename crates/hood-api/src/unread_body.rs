//! A request whose body was not read to its end cannot share its
//! connection with the next one: whatever of the body is still in flight
//! (a client that waited for `100 Continue`, or just a late packet) would
//! be parsed as the start of the next request. Routes refuse uploads
//! before reading them (a missing namespace, a scope, a quota by declared
//! length), so every answer to such a request says `Connection: close`.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Whether a request says a body follows (a length above 0, or chunks).
pub fn carries_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// The layer: answers to requests whose body was left unread end their
/// connection.
pub(crate) async fn close_if_body_unread(req: Request, next: Next) -> Response {
    if !carries_body(req.headers()) {
        return next.run(req).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let tracked = Arc::clone(&finished);
    let req = req.map(|inner| {
        Body::new(Tracked {
            inner,
            finished: tracked,
        })
    });
    let mut resp = next.run(req).await;
    if !finished.load(Ordering::Acquire) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A body that notes when it was read to its end.
struct Tracked {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::put;
    use axum::Router;
    use tower::ServiceExt;

    async fn answer(router: Router, body: &'static str) -> Option<HeaderValue> {
        let req = Request::put("/")
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .unwrap();
        let resp = router
            .layer(axum::middleware::from_fn(close_if_body_unread))
            .oneshot(req)
            .await
            .unwrap();
        resp.headers().get(header::CONNECTION).cloned()
    }

    #[tokio::test]
    async fn an_unread_body_ends_the_connection_a_read_one_does_not() {
        let refuses = Router::new().route("/", put(|| async { "refused unread" }));
        assert_eq!(answer(refuses, "late").await.unwrap(), "close");
        let reads = Router::new().route("/", put(|body: Bytes| async move { body }));
        assert_eq!(answer(reads, "read").await, None);
        // No body: nothing to leave unread.
        let refuses = Router::new().route("/", put(|| async { "no body" }));
        assert_eq!(answer(refuses, "").await, None);
    }
}
