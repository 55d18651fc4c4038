//! [`CreditStore`] for [`SqlStore`].

use super::SqlStore;
use crate::codec::{parse_json, parse_opt_json, write_error};
use crate::credits::CreditStore;
use crate::db::{query, query_as};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::billing::credits::{CreditAccount, CreditState};
use hood_domain::{OrgId, Timestamp};

const COLUMNS: &str = "org_id, rate_card_version, window_ms, low_balance_minor, state, reason, \
     state_since, accrued_through, hold, warned_below, created_at, version";

#[derive(sqlx::FromRow)]
struct CreditAccountRow {
    org_id: String,
    rate_card_version: i64,
    window_ms: i64,
    low_balance_minor: String,
    state: String,
    reason: Option<String>,
    state_since: i64,
    accrued_through: i64,
    hold: Option<String>,
    warned_below: Option<i64>,
    created_at: i64,
    version: i64,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("credit account: {what}"))
}

impl TryFrom<CreditAccountRow> for CreditAccount {
    type Error = StoreError;
    fn try_from(r: CreditAccountRow) -> StoreResult<Self> {
        Ok(CreditAccount {
            org_id: r.org_id.parse().map_err(|_| corrupt("org_id"))?,
            rate_card_version: u32::try_from(r.rate_card_version)
                .map_err(|_| corrupt("rate_card_version"))?,
            window_ms: r.window_ms,
            low_balance_minor: parse_json("low_balance_minor", &r.low_balance_minor)?,
            state: CreditState::parse(&r.state).ok_or_else(|| corrupt("state"))?,
            reason: r.reason,
            state_since: Timestamp::from_millis(r.state_since),
            accrued_through: Timestamp::from_millis(r.accrued_through),
            hold: parse_opt_json("hold", r.hold.as_deref())?,
            warned_below: r
                .warned_below
                .map(|w| u64::try_from(w).map_err(|_| corrupt("warned_below")))
                .transpose()?,
            created_at: Timestamp::from_millis(r.created_at),
            version: r.version,
        })
    }
}

struct Encoded {
    thresholds: String,
    hold: Option<String>,
    warned_below: Option<i64>,
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| corrupt(&e.to_string()))
}

fn encode(a: &CreditAccount) -> StoreResult<Encoded> {
    Ok(Encoded {
        thresholds: to_json(&a.low_balance_minor)?,
        hold: a.hold.as_ref().map(to_json).transpose()?,
        warned_below: a
            .warned_below
            .map(|w| i64::try_from(w).map_err(|_| corrupt("warned_below")))
            .transpose()?,
    })
}

#[async_trait]
impl CreditStore for SqlStore {
    async fn insert_credit_account(&self, a: &CreditAccount) -> StoreResult<()> {
        let e = encode(a)?;
        query(format!(
            "INSERT INTO credit_accounts ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(a.org_id.to_string())
        .bind(i64::from(a.rate_card_version))
        .bind(a.window_ms)
        .bind(e.thresholds)
        .bind(a.state.as_str())
        .bind(a.reason.clone())
        .bind(a.state_since.millis())
        .bind(a.accrued_through.millis())
        .bind(e.hold)
        .bind(e.warned_below)
        .bind(a.created_at.millis())
        .bind(a.version)
        .execute(&self.pool)
        .await
        .map_err(|err| write_error(err, "organization or rate card"))?;
        Ok(())
    }

    async fn get_credit_account(&self, org: OrgId) -> StoreResult<Option<CreditAccount>> {
        query_as::<CreditAccountRow>(format!(
            "SELECT {COLUMNS} FROM credit_accounts WHERE org_id = $1"
        ))
        .bind(org.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(CreditAccount::try_from)
        .transpose()
    }

    async fn list_credit_accounts(&self) -> StoreResult<Vec<CreditAccount>> {
        query_as::<CreditAccountRow>(format!(
            "SELECT {COLUMNS} FROM credit_accounts ORDER BY org_id"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(CreditAccount::try_from)
        .collect()
    }

    async fn update_credit_account(&self, a: &CreditAccount) -> StoreResult<bool> {
        let e = encode(a)?;
        let changed = query(
            "UPDATE credit_accounts SET rate_card_version = $1, window_ms = $2, \
             low_balance_minor = $3, state = $4, reason = $5, state_since = $6, \
             accrued_through = $7, hold = $8, warned_below = $9, version = $10 \
             WHERE org_id = $11 AND version = $12",
        )
        .bind(i64::from(a.rate_card_version))
        .bind(a.window_ms)
        .bind(e.thresholds)
        .bind(a.state.as_str())
        .bind(a.reason.clone())
        .bind(a.state_since.millis())
        .bind(a.accrued_through.millis())
        .bind(e.hold)
        .bind(e.warned_below)
        .bind(a.version)
        .bind(a.org_id.to_string())
        .bind(a.version - 1)
        .execute(&self.pool)
        .await?;
        Ok(changed == 1)
    }

    async fn spending_stops(&self) -> StoreResult<Vec<(OrgId, String)>> {
        let rows: Vec<(String, Option<String>, i64)> = query_as(
            "SELECT org_id, reason, CAST(0 AS BIGINT) FROM credit_accounts WHERE state = 'stopped' \
             UNION ALL \
             SELECT org_id, 'the monthly budget of ' || budget_minor || ' minor units is reached \
             (hard cap); raise it or wait for the next period', CAST(1 AS BIGINT) \
             FROM subscription_budgets WHERE capped ORDER BY 1, 3",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut stops: Vec<(OrgId, String)> = Vec::with_capacity(rows.len());
        for (org, reason, _) in rows {
            let org: OrgId = org.parse().map_err(|_| corrupt("org_id"))?;
            // Credits first (the order above): one reason per organization.
            if stops.last().is_some_and(|(o, _)| *o == org) {
                continue;
            }
            stops.push((
                org,
                reason.unwrap_or_else(|| "prepaid credits exhausted".into()),
            ));
        }
        Ok(stops)
    }
}
