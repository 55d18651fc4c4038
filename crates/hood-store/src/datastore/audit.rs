//! [`AuditStore`] for [`SqlStore`], and the one writer of audit rows.

use super::SqlStore;
use crate::audit::{AuditEvent, AuditFilter, AuditStore};
use crate::codec::write_error;
use crate::db::{query, query_as, Tx};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::audit::{AuditContext, AuditEntry};
use hood_domain::{OrgId, Timestamp};

/// What a change did, for its audit row.
pub(crate) struct Audited<'a> {
    pub org_id: Option<OrgId>,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// A resource as its audit row's `before` or `after`.
pub(crate) fn audit_value<T: serde::Serialize>(v: &T) -> StoreResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| StoreError::Corrupt(format!("audit value: {e}")))
}

/// Appends one audit row inside the change's transaction.
pub(crate) async fn insert_audit(
    tx: &mut Tx<'_>,
    ctx: &AuditContext,
    at: Timestamp,
    change: Audited<'_>,
) -> StoreResult<()> {
    let json = |v: Option<serde_json::Value>| v.map(|v| v.to_string());
    query(
        "INSERT INTO audit_log (id, at, org_id, actor, action, resource_type, resource_id, \
         before, after, request_id, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(at.millis())
    .bind(change.org_id.map(|o| o.to_string()))
    .bind(&ctx.actor)
    .bind(change.action)
    .bind(change.resource_type)
    .bind(change.resource_id)
    .bind(json(change.before))
    .bind(json(change.after))
    .bind(ctx.request_id.clone())
    .bind(ctx.reason.clone())
    .execute(&mut *tx)
    .await
    .map_err(|e| write_error(e, "audit row"))?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    at: i64,
    org_id: Option<String>,
    actor: String,
    action: String,
    resource_type: String,
    resource_id: String,
    before: Option<String>,
    after: Option<String>,
    request_id: Option<String>,
    reason: Option<String>,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> StoreResult<Self> {
        let json = |what: &str, v: Option<String>| {
            v.map(|s| {
                serde_json::from_str(&s)
                    .map_err(|e| StoreError::Corrupt(format!("audit row {what}: {e}")))
            })
            .transpose()
        };
        Ok(AuditEntry {
            id: r
                .id
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("audit row id: {e}")))?,
            at: Timestamp::from_millis(r.at),
            org_id: r
                .org_id
                .map(|o| super::billing::parse_id("org_id", &o))
                .transpose()?,
            actor: r.actor,
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            before: json("before", r.before)?,
            after: json("after", r.after)?,
            request_id: r.request_id,
            reason: r.reason,
        })
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let mut sql = String::from(
            "SELECT id, at, org_id, actor, action, resource_type, resource_id, before, after, \
             request_id, reason FROM audit_log WHERE 1 = 1",
        );
        let mut texts: Vec<String> = vec![];
        // `condition` is a column and an operator; the value is bound.
        let mut text = |sql: &mut String, condition: &str, v: Option<String>| {
            if let Some(v) = v {
                texts.push(v);
                sql.push_str(&format!(" AND {condition} ${}", texts.len()));
            }
        };
        text(&mut sql, "org_id =", filter.org_id.map(|o| o.to_string()));
        text(&mut sql, "actor =", filter.actor.clone());
        text(&mut sql, "action =", filter.action.clone());
        text(&mut sql, "resource_type =", filter.resource_type.clone());
        text(&mut sql, "resource_id =", filter.resource_id.clone());
        text(&mut sql, "request_id =", filter.request_id.clone());
        // UUIDv7 text sorts by time of writing.
        text(&mut sql, "id <", filter.before.map(|b| b.to_string()));
        let n = texts.len();
        sql.push_str(&format!(
            " AND at >= ${} AND at < ${} ORDER BY id DESC LIMIT ${}",
            n + 1,
            n + 2,
            n + 3
        ));
        let mut q = query_as::<AuditRow>(sql);
        for t in texts {
            q = q.bind(t);
        }
        let rows = q
            .bind(filter.since.map_or(i64::MIN, Timestamp::millis))
            .bind(filter.until.map_or(i64::MAX, Timestamp::millis))
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(AuditEntry::try_from).collect()
    }

    async fn append_audit(
        &self,
        ctx: &AuditContext,
        at: Timestamp,
        event: AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        insert_audit(
            &mut tx,
            ctx,
            at,
            Audited {
                org_id: event.org_id,
                action: &event.action,
                resource_type: &event.resource_type,
                resource_id: event.resource_id,
                before: None,
                after: event.after,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
