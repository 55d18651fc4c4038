//! Daily exports to the artifact store's object store: for each UTC day,
//! the leaves logged since the previous export (JSON lines, records
//! included) and the signed checkpoint at the day's last leaf, under
//! `ledger/exports/<YYYY-MM-DD>/`. A copy of the prefix is what
//! `hood ledger verify --export DIR` audits.

use crate::error::{LedgerError, LedgerResult};
use crate::log::LedgerLog;
use crate::verify::{leaf_record, EXPORT_CHECKPOINT, EXPORT_LEAVES, EXPORT_PUBLIC_KEY};
use bytes::Bytes;
use hood_domain::ledger::NANOS_PER_SECOND;
use hood_store::ledger::LogRecord;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where exports live in the object store.
pub const EXPORT_PREFIX: &str = "ledger/exports";
const STATE: &str = "state.json";
const NANOS_PER_DAY: u64 = 86_400 * NANOS_PER_SECOND;

/// How far the exports have come.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ExportState {
    /// The first leaf no export holds yet.
    next_leaf: u64,
    /// The last day exported (days since the Unix epoch).
    last_day: Option<u64>,
}

/// What one export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayExport {
    pub day: String,
    pub first_leaf: u64,
    pub tree_size: u64,
}

/// `YYYY-MM-DD` of a day number (days since the Unix epoch).
pub fn day_name(day: u64) -> String {
    let secs = i64::try_from(day.saturating_mul(86_400)).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        }
        Err(_) => format!("day-{day}"),
    }
}

/// Writes the ledger's daily exports.
#[derive(Clone)]
pub struct Exporter {
    log: LedgerLog,
    objects: Arc<dyn ObjectStore>,
}

impl Exporter {
    pub fn new(log: LedgerLog, objects: Arc<dyn ObjectStore>) -> Self {
        Self { log, objects }
    }

    fn path(parts: &[&str]) -> ObjectPath {
        ObjectPath::from(format!("{EXPORT_PREFIX}/{}", parts.join("/")))
    }

    async fn state(&self) -> LedgerResult<ExportState> {
        match self.objects.get(&Self::path(&[STATE])).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(export_error)?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| LedgerError::Export(format!("{EXPORT_PREFIX}/{STATE}: {e}")))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(ExportState::default()),
            Err(e) => Err(export_error(e)),
        }
    }

    async fn put(&self, path: ObjectPath, bytes: Vec<u8>) -> LedgerResult<()> {
        self.objects
            .put(&path, PutPayload::from(Bytes::from(bytes)))
            .await
            .map_err(export_error)?;
        Ok(())
    }

    /// Exports every whole day not yet exported, up to the day before
    /// `now_ns`. The first export ever covers everything before its day's
    /// end. Returns what it wrote.
    pub async fn export_due(&self, now_ns: u64) -> LedgerResult<Vec<DayExport>> {
        let today = now_ns / NANOS_PER_DAY;
        let Some(yesterday) = today.checked_sub(1) else {
            return Ok(Vec::new());
        };
        let mut state = self.state().await?;
        let first = state.last_day.map_or(yesterday, |d| d + 1);
        let mut written = Vec::new();
        for day in first..=yesterday {
            written.push(self.export_day(&mut state, day).await?);
        }
        Ok(written)
    }

    /// Exports the leaves from the state's cursor to the end of `day`.
    async fn export_day(&self, state: &mut ExportState, day: u64) -> LedgerResult<DayExport> {
        let end_ns = (day + 1).saturating_mul(NANOS_PER_DAY);
        let store = self.log.store();
        let mut lines = Vec::new();
        let mut next = state.next_leaf;
        'pages: loop {
            let page = store.log_entries(next, 2_000).await?;
            if page.is_empty() {
                break;
            }
            for e in page {
                let ts = match &e.record {
                    LogRecord::Account(a) => a.timestamp,
                    LogRecord::Transfer(t) => t.timestamp,
                    LogRecord::Missing => {
                        return Err(LedgerError::Export(format!(
                            "leaf {} lost its record; run `hood ledger verify`",
                            e.index
                        )))
                    }
                };
                if ts >= end_ns {
                    break 'pages;
                }
                let line = leaf_record(e.index, &e.hash, &e.record)
                    .ok_or_else(|| LedgerError::Export(format!("leaf {}", e.index)))?;
                let mut json =
                    serde_json::to_vec(&line).map_err(|e| LedgerError::Export(e.to_string()))?;
                json.push(b'\n');
                lines.extend_from_slice(&json);
                next = e.index + 1;
            }
        }
        let checkpoint = self.log.checkpoint_at(next).await?;
        let name = day_name(day);
        self.put(Self::path(&[&name, EXPORT_LEAVES]), lines).await?;
        self.put(
            Self::path(&[&name, EXPORT_CHECKPOINT]),
            checkpoint.signed_note.into_bytes(),
        )
        .await?;
        self.put(
            Self::path(&[EXPORT_PUBLIC_KEY]),
            format!("{}\n", self.log.verifier()).into_bytes(),
        )
        .await?;
        let first_leaf = state.next_leaf;
        state.next_leaf = next;
        state.last_day = Some(day);
        let json = serde_json::to_vec(state).map_err(|e| LedgerError::Export(e.to_string()))?;
        self.put(Self::path(&[STATE]), json).await?;
        tracing::info!(day = %name, first_leaf, tree_size = next, "exported the ledger's day");
        Ok(DayExport {
            day: name,
            first_leaf,
            tree_size: next,
        })
    }
}

fn export_error(e: object_store::Error) -> LedgerError {
    LedgerError::Export(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_named_in_utc() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(20_790), "2026-12-03");
    }
}
