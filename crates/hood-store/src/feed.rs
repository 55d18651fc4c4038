//! Users' notification feeds.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::feed::{FeedEvent, FeedItem};
use hood_domain::{FeedItemId, Timestamp, UserId};

/// Which of a user's items to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedQuery {
    pub unread_only: bool,
    /// Items older than this one (ids are UUIDv7): the next page, newest
    /// first.
    pub before: Option<FeedItemId>,
    /// Items newer than this one, oldest first (a live follow's cursor).
    /// Excludes `before`.
    pub after: Option<FeedItemId>,
    pub limit: i64,
}

#[async_trait]
pub trait FeedStore: Send + Sync {
    /// One item per user of the event's organization, in one transaction;
    /// an event already fanned out adds nothing (delivery is at least
    /// once). Returns the items added.
    async fn fan_out(&self, event: &FeedEvent) -> StoreResult<u64>;

    /// A user's items: newest first, or oldest first after a cursor.
    async fn feed(&self, user: UserId, query: &FeedQuery) -> StoreResult<Vec<FeedItem>>;

    /// Marks a user's items read (these, or all of them); returns how many
    /// changed.
    async fn mark_feed_read(
        &self,
        user: UserId,
        ids: Option<&[FeedItemId]>,
        at: Timestamp,
    ) -> StoreResult<u64>;

    async fn unread_feed_items(&self, user: UserId) -> StoreResult<i64>;

    /// The id of the user's newest item: where a live follow starts.
    async fn newest_feed_item(&self, user: UserId) -> StoreResult<Option<FeedItemId>>;
}
