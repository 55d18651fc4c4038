//! Scheduled backups: a snapshot of every healthy node each period, the
//! newest few kept (the orchestrator role; every replica may run it, the
//! snapshot of a period has one name, so it is taken once).

use hood_app::{BackupSchedule, SnapshotService};
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Period of scheduled snapshots of every healthy node, seconds (each
    /// stops the node while its data directory is packed); 0: none.
    #[arg(long, env = "HOOD_BACKUP_INTERVAL_S", default_value_t = 0)]
    pub backup_interval_s: u64,
    /// Scheduled snapshots kept per node (the newest); older ones are
    /// deleted from the object store.
    #[arg(long, env = "HOOD_BACKUP_KEEP", default_value_t = 7)]
    pub backup_keep: u32,
}

/// The schedule's task; stops when dropped.
pub struct BackupRunner(tokio::task::JoinHandle<()>);

impl Drop for BackupRunner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the schedule, unless it is off.
pub fn start(args: &BackupArgs, snapshots: SnapshotService) -> Option<BackupRunner> {
    if args.backup_interval_s == 0 {
        return None;
    }
    let schedule = BackupSchedule {
        every_s: i64::try_from(args.backup_interval_s).unwrap_or(i64::MAX),
        keep: i64::from(args.backup_keep.max(1)),
    };
    // Several looks per period: a node that was busy is caught soon after.
    let look = Duration::from_secs((args.backup_interval_s / 4).clamp(1, 60));
    tracing::info!(
        every_s = schedule.every_s,
        keep = schedule.keep,
        "scheduled backups on"
    );
    Some(BackupRunner(tokio::spawn(async move {
        let mut tick = tokio::time::interval(look);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match snapshots.run_schedule(schedule).await {
                Ok(r) if r.started + r.deleted + r.failed > 0 => {
                    tracing::info!(
                        started = r.started,
                        deleted = r.deleted,
                        failed = r.failed,
                        "backup schedule pass"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "backup schedule pass failed"),
            }
        }
    })))
}
