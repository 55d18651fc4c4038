//! The agent's durable command log: one small JSON file per command id
//! under `commands/`, written before execution starts and again when it
//! ends. It is what makes delivery "at least once" safe: a redelivered id is
//! answered from the log instead of being executed again, across restarts.

use crate::error::AgentError;
use crate::now_ms;
use crate::stored_identity::write_private;
use hood_domain::CommandId;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Finished records whose result the gateway confirmed are kept this long
/// (far beyond any command TTL), then pruned at start.
const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Finished {
    pub success: bool,
    pub output_json: String,
    pub error: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CommandRecord {
    pub id: CommandId,
    pub kind: String,
    pub received_at_ms: i64,
    pub finished: Option<Finished>,
    /// The gateway confirmed it stored the result (`ResultAck`).
    pub result_acked: bool,
}

/// What to do with a command that just arrived.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arrival {
    /// Never seen: the record is written, execute it.
    Execute,
    /// Running in this process: acknowledge, the result will follow.
    Running,
    /// Already finished: acknowledge and send the stored result again.
    Finished(Finished),
    /// Started by an earlier run of the agent that died mid-way: the
    /// outcome is unknown, and running it again could do it twice.
    Interrupted,
}

pub(crate) struct CommandLog {
    dir: PathBuf,
    /// Executing in this process.
    running: Mutex<HashSet<CommandId>>,
    /// Finished, result not yet confirmed by the gateway.
    unacked: Mutex<HashSet<CommandId>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Set operations cannot leave the data half-updated: poison is harmless.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CommandLog {
    pub(crate) fn open(dir: &Path) -> Result<Self, AgentError> {
        std::fs::create_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
        let log = Self {
            dir: dir.to_owned(),
            running: Mutex::new(HashSet::new()),
            unacked: Mutex::new(HashSet::new()),
        };
        let now = now_ms();
        let entries = std::fs::read_dir(dir).map_err(|e| AgentError::io(dir, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                // Leftover temp file of an interrupted write.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(record) = read(&path)? else { continue };
            match &record.finished {
                Some(f) if record.result_acked && now - f.at_ms > RETENTION_MS => {
                    let _ = std::fs::remove_file(&path);
                }
                Some(_) if !record.result_acked => {
                    lock(&log.unacked).insert(record.id);
                }
                _ => {}
            }
        }
        Ok(log)
    }

    fn path(&self, id: CommandId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub(crate) fn get(&self, id: CommandId) -> Result<Option<CommandRecord>, AgentError> {
        read(&self.path(id))
    }

    fn write(&self, record: &CommandRecord) -> Result<(), AgentError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| AgentError::Corrupt(format!("serialising command record: {e}")))?;
        write_private(&self.path(record.id), &bytes)
    }

    /// Decides what to do with an arriving command; for a new one, writes
    /// the record first (so a crash during execution is detected later).
    pub(crate) fn arrive(&self, id: CommandId, kind: &str) -> Result<Arrival, AgentError> {
        // Holding `running` makes check-and-insert atomic within the process.
        let mut running = lock(&self.running);
        if running.contains(&id) {
            return Ok(Arrival::Running);
        }
        match self.get(id)? {
            Some(CommandRecord {
                finished: Some(f), ..
            }) => Ok(Arrival::Finished(f)),
            Some(_) => Ok(Arrival::Interrupted),
            None => {
                self.write(&CommandRecord {
                    id,
                    kind: kind.to_owned(),
                    received_at_ms: now_ms(),
                    finished: None,
                    result_acked: false,
                })?;
                running.insert(id);
                Ok(Arrival::Execute)
            }
        }
    }

    /// Records the outcome (executed here, or declared for an interrupted
    /// command).
    pub(crate) fn finish(
        &self,
        id: CommandId,
        kind: &str,
        finished: Finished,
    ) -> Result<(), AgentError> {
        let mut record = self.get(id)?.unwrap_or(CommandRecord {
            id,
            kind: kind.to_owned(),
            received_at_ms: now_ms(),
            finished: None,
            result_acked: false,
        });
        record.finished = Some(finished);
        record.result_acked = false;
        self.write(&record)?;
        lock(&self.unacked).insert(id);
        lock(&self.running).remove(&id);
        Ok(())
    }

    /// Forgets that a command is running without an outcome (the record
    /// could not be finished: it will look interrupted later).
    pub(crate) fn abandon(&self, id: CommandId) {
        lock(&self.running).remove(&id);
    }

    pub(crate) fn result_acked(&self, id: CommandId) -> Result<(), AgentError> {
        if !lock(&self.unacked).remove(&id) {
            return Ok(());
        }
        if let Some(mut record) = self.get(id)? {
            record.result_acked = true;
            self.write(&record)?;
        }
        Ok(())
    }

    /// Finished commands whose result the gateway has not confirmed.
    pub(crate) fn unacked(&self) -> Result<Vec<CommandRecord>, AgentError> {
        let ids: Vec<CommandId> = lock(&self.unacked).iter().copied().collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = self.get(id)? {
                if record.finished.is_some() {
                    out.push(record);
                }
            }
        }
        Ok(out)
    }
}

fn read(path: &Path) -> Result<Option<CommandRecord>, AgentError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AgentError::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id() -> CommandId {
        CommandId::from_uuid(uuid::Uuid::now_v7())
    }

    fn done() -> Finished {
        Finished {
            success: true,
            output_json: "{}".into(),
            error: String::new(),
            at_ms: now_ms(),
        }
    }

    #[test]
    fn a_command_runs_once_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let c = id();
        let log = CommandLog::open(dir.path()).unwrap();
        assert_eq!(log.arrive(c, "ping").unwrap(), Arrival::Execute);
        assert_eq!(log.arrive(c, "ping").unwrap(), Arrival::Running);
        log.finish(c, "ping", done()).unwrap();
        assert!(matches!(
            log.arrive(c, "ping").unwrap(),
            Arrival::Finished(_)
        ));
        drop(log);
        let log = CommandLog::open(dir.path()).unwrap();
        assert!(matches!(
            log.arrive(c, "ping").unwrap(),
            Arrival::Finished(_)
        ));
        assert_eq!(log.unacked().unwrap().len(), 1);
        log.result_acked(c).unwrap();
        assert!(log.unacked().unwrap().is_empty());
    }

    #[test]
    fn a_command_started_by_a_dead_process_is_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let c = id();
        let log = CommandLog::open(dir.path()).unwrap();
        assert_eq!(log.arrive(c, "ping").unwrap(), Arrival::Execute);
        drop(log);
        let log = CommandLog::open(dir.path()).unwrap();
        assert_eq!(log.arrive(c, "ping").unwrap(), Arrival::Interrupted);
    }
}
