//! Following something live as server-sent events: what there is now,
//! then a poll every [`POLL`] for what came since, until the thing ends.
//! A poll that finds it gone or ended (404/409) ends the stream with an
//! `end` event saying why; any other failure is an `error` event and the
//! next poll tries again. Keep-alive comments hold idle connections open.

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};
use hood_app::AppError;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How often a follower asks for more.
pub const POLL: Duration = Duration::from_secs(1);

/// A `name` event carrying `data` (a carriage return would end the field
/// early, so none is sent).
pub fn event(name: &str, data: &str) -> Event {
    Event::default().event(name).data(data.replace('\r', ""))
}

/// `backlog` now, then what `poll` finds after each cursor it returns.
pub fn follow<C, F, Fut>(
    backlog: Vec<Event>,
    cursor: C,
    poll: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    C: Clone + Send + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(Vec<Event>, C), AppError>> + Send,
{
    let poll = Arc::new(poll);
    let live = futures::stream::unfold(Some(cursor), move |cursor| {
        let poll = poll.clone();
        async move {
            let cursor = cursor?;
            tokio::time::sleep(POLL).await;
            Some(match poll(cursor.clone()).await {
                Ok((events, next)) => (events, Some(next)),
                Err(e @ (AppError::Conflict(_) | AppError::NotFound(_))) => {
                    (vec![event("end", &e.to_string())], None)
                }
                Err(e) => (vec![event("error", &e.to_string())], Some(cursor)),
            })
        }
    });
    let events = futures::stream::iter([backlog])
        .chain(live)
        .flat_map(|batch| futures::stream::iter(batch.into_iter().map(Ok)));
    Sse::new(events).keep_alive(KeepAlive::default())
}
