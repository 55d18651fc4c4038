//! [`FeedStore`] for [`SqlStore`].

use super::SqlStore;
use crate::codec::{parse_id, write_error};
use crate::db::{numbered_placeholders, query, query_as, query_scalar};
use crate::feed::{FeedQuery, FeedStore};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::feed::{FeedEvent, FeedItem};
use hood_domain::{FeedItemId, Timestamp, UserId};

const COLUMNS: &str = "id, user_id, org_id, event_id, subject, title, detail, created_at, read_at";

/// Ids per `IN` list when marking items read.
const IDS_PER_STATEMENT: usize = 500;

#[derive(sqlx::FromRow)]
struct FeedRow {
    id: String,
    user_id: String,
    org_id: String,
    event_id: String,
    subject: String,
    title: String,
    detail: String,
    created_at: i64,
    read_at: Option<i64>,
}

impl TryFrom<FeedRow> for FeedItem {
    type Error = StoreError;
    fn try_from(r: FeedRow) -> StoreResult<Self> {
        Ok(FeedItem {
            id: parse_id("id", &r.id)?,
            user_id: parse_id("user_id", &r.user_id)?,
            org_id: parse_id("org_id", &r.org_id)?,
            event_id: r.event_id,
            subject: r.subject,
            title: r.title,
            detail: serde_json::from_str(&r.detail)
                .map_err(|e| StoreError::Corrupt(format!("feed item detail: {e}")))?,
            created_at: Timestamp::from_millis(r.created_at),
            read_at: r.read_at.map(Timestamp::from_millis),
        })
    }
}

#[async_trait]
impl FeedStore for SqlStore {
    async fn fan_out(&self, event: &FeedEvent) -> StoreResult<u64> {
        let mut tx = self.pool.begin_write().await?;
        let users: Vec<String> = query_scalar("SELECT id FROM users WHERE org_id = $1 ORDER BY id")
            .bind(event.org_id.to_string())
            .fetch_all(&mut tx)
            .await?;
        let detail = event.detail.to_string();
        let mut added = 0;
        for user in users {
            added += query(format!(
                "INSERT INTO feed_items ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL) \
                 ON CONFLICT (user_id, event_id) DO NOTHING"
            ))
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(user)
            .bind(event.org_id.to_string())
            .bind(&event.event_id)
            .bind(&event.subject)
            .bind(&event.title)
            .bind(&detail)
            .bind(event.at.millis())
            .execute(&mut tx)
            .await
            .map_err(|e| write_error(e, "organization"))?;
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn feed(&self, user: UserId, q: &FeedQuery) -> StoreResult<Vec<FeedItem>> {
        let mut sql = format!("SELECT {COLUMNS} FROM feed_items WHERE user_id = $1");
        if q.unread_only {
            sql.push_str(" AND read_at IS NULL");
        }
        let cursor = match (q.after, q.before) {
            (Some(after), _) => {
                sql.push_str(" AND id > $2 ORDER BY id LIMIT $3");
                Some(after)
            }
            (None, Some(before)) => {
                sql.push_str(" AND id < $2 ORDER BY id DESC LIMIT $3");
                Some(before)
            }
            (None, None) => {
                sql.push_str(" ORDER BY id DESC LIMIT $2");
                None
            }
        };
        let mut select = query_as::<FeedRow>(sql).bind(user.to_string());
        if let Some(cursor) = cursor {
            select = select.bind(cursor.to_string());
        }
        select
            .bind(q.limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(FeedItem::try_from)
            .collect()
    }

    async fn mark_feed_read(
        &self,
        user: UserId,
        ids: Option<&[FeedItemId]>,
        at: Timestamp,
    ) -> StoreResult<u64> {
        let Some(ids) = ids else {
            return Ok(query(
                "UPDATE feed_items SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL",
            )
            .bind(user.to_string())
            .bind(at.millis())
            .execute(&self.pool)
            .await?);
        };
        let mut tx = self.pool.begin_write().await?;
        let mut marked = 0;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut update = query(format!(
                "UPDATE feed_items SET read_at = $2 \
                 WHERE user_id = $1 AND read_at IS NULL AND id IN ({})",
                numbered_placeholders(3, chunk.len())
            ))
            .bind(user.to_string())
            .bind(at.millis());
            for id in chunk {
                update = update.bind(id.to_string());
            }
            marked += update.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(marked)
    }

    async fn unread_feed_items(&self, user: UserId) -> StoreResult<i64> {
        Ok(
            query_scalar("SELECT COUNT(*) FROM feed_items WHERE user_id = $1 AND read_at IS NULL")
                .bind(user.to_string())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn newest_feed_item(&self, user: UserId) -> StoreResult<Option<FeedItemId>> {
        query_scalar::<Option<String>>("SELECT MAX(id) FROM feed_items WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_one(&self.pool)
            .await?
            .map(|id| parse_id("id", &id))
            .transpose()
    }
}
