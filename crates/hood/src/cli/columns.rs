//! The table columns of each API view the CLI prints: one typed row per
//! view, so the tables follow the API's wire types.

use super::output::{joined, or_dash, Column};
use hood_api::routes::allocations::{AllocationView, AuditView, HostCapacityView, SkuView};
use hood_api::routes::artifacts::{ArtifactView, PushedArtifactView};
use hood_api::routes::budgets::BudgetView;
use hood_api::routes::chains::ChainView;
use hood_api::routes::credits::CreditsViewBody;
use hood_api::routes::edge::{RpcKeyView, RpcPlanView, UsageRowView};
use hood_api::routes::fleet::{HostMetricPointView, HostView, StepView, WorkflowView};
use hood_api::routes::health::{ChannelView, DeliveryView, IncidentView, UptimeBucketView};
use hood_api::routes::invoicing::{
    CreditNoteView, InvoiceView, LineView, PaymentView, RateCardView, ReconciliationItemView,
    SubscriptionView,
};
use hood_api::routes::keys::KeyExportView;
use hood_api::routes::ledger::{CheckpointView, ItemResult};
use hood_api::routes::nodes::{NodeAccepted, NodeEventView, NodeView};
use hood_api::routes::notifications::NotificationView;
use hood_api::routes::rollouts::{RolloutKindView, RolloutNodeView, RolloutView};
use hood_api::routes::service_accounts::{S3KeyView, ServiceAccountView};
use hood_api::routes::snapshots::{SnapshotAccepted, SnapshotView};
use hood_api::routes::ssh_keys::SshKeyView;
use hood_api::routes::storage::{NamespaceView, ObjectView};
use hood_api::routes::storage_uploads::UploadSummaryView;
use hood_api::views::{ApiKeyView, MeView, OrgView, UserView};
use hood_ledger::wire::{AccountRecord, TransferRecord};

pub const ME: &[Column<MeView>] = &[
    Column::new("EMAIL", |m| m.user.email.clone()),
    Column::new("ROLE", |m| m.user.role.clone()),
    Column::new("SLUG", |m| m.org.slug.clone()),
    Column::new("CREDENTIAL", |m| m.credential.clone()),
    Column::new("PERMISSIONS", |m| joined(&m.permissions)),
];

pub const ORG: &[Column<OrgView>] = &[
    Column::new("ID", |o| o.id.to_string()),
    Column::new("SLUG", |o| o.slug.clone()),
    Column::new("NAME", |o| o.name.clone()),
    Column::new("CREATED_AT", |o| o.created_at.clone()),
];

pub const USER: &[Column<UserView>] = &[
    Column::new("ID", |u| u.id.to_string()),
    Column::new("EMAIL", |u| u.email.clone()),
    Column::new("DISPLAY_NAME", |u| u.display_name.clone()),
    Column::new("ROLE", |u| u.role.clone()),
    Column::new("DISABLED", |u| u.disabled.to_string()),
    Column::new("CREATED_AT", |u| u.created_at.clone()),
];

pub const API_KEY: &[Column<ApiKeyView>] = &[
    Column::new("ID", |k| k.id.to_string()),
    Column::new("NAME", |k| k.name.clone()),
    Column::new("PREFIX", |k| k.prefix.clone()),
    Column::new("ROLE", |k| k.role.clone()),
    Column::new("SCOPES", |k| joined(&k.scopes)),
    Column::new("EXPIRES_AT", |k| or_dash(&k.expires_at)),
    Column::new("REVOKED_AT", |k| or_dash(&k.revoked_at)),
    Column::new("LAST_USED_AT", |k| or_dash(&k.last_used_at)),
];

pub const CHAIN: &[Column<ChainView>] = &[
    Column::new("NAME", |c| c.name.clone()),
    Column::new("DISPLAY_NAME", |c| c.display_name.clone()),
    Column::new("FAMILY", |c| c.family.clone()),
    Column::new("NETWORK", |c| c.network.clone()),
];

pub const NODE: &[Column<NodeView>] = &[
    Column::new("ID", |n| n.id.to_string()),
    Column::new("NAME", |n| n.name.clone()),
    Column::new("CHAIN", |n| n.chain.clone()),
    Column::new("NODE_TYPE", |n| n.node_type.clone()),
    Column::new("STATE", |n| n.state.clone()),
    Column::new("SYNC_STATUS", |n| n.sync_status.clone()),
    Column::new("RPC_ENDPOINT", |n| or_dash(&n.rpc_endpoint)),
    Column::new("LABELS", |n| labels(&n.labels)),
    Column::new("CREATED_AT", |n| n.created_at.clone()),
];

/// `k=v,k2=v2`, or `-` for none.
pub fn labels(l: &std::collections::BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "-".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A node request the server accepted (`--no-wait`).
pub const NODE_ACCEPTED: &[Column<NodeAccepted>] = &[
    Column::new("ID", |a| a.node.id.to_string()),
    Column::new("NAME", |a| a.node.name.clone()),
    Column::new("STATE", |a| a.node.state.clone()),
    Column::new("WORKFLOW_ID", |a| a.workflow_id.clone()),
];

pub const NODE_EVENT: &[Column<NodeEventView>] = &[
    Column::new("SEQ", |e| e.seq.to_string()),
    Column::new("AT", |e| e.at.clone()),
    Column::new("KIND", |e| e.kind.clone()),
    Column::new("FROM_STATE", |e| or_dash(&e.from_state)),
    Column::new("TO_STATE", |e| or_dash(&e.to_state)),
    Column::new("MESSAGE", |e| e.message.clone()),
];

pub const RPC_KEY: &[Column<RpcKeyView>] = &[
    Column::new("ID", |k| k.id.to_string()),
    Column::new("NAME", |k| k.name.clone()),
    Column::new("PREFIX", |k| k.prefix.clone()),
    Column::new("PLAN", |k| k.plan.clone()),
    Column::new("CHAINS", |k| joined(&k.chains)),
    Column::new("ALLOWED_METHODS", |k| joined(&k.allowed_methods)),
    Column::new("DENIED_METHODS", |k| joined(&k.denied_methods)),
    Column::new("IP_ALLOW", |k| joined(&k.ip_allow)),
    Column::new("ORIGIN_ALLOW", |k| joined(&k.origin_allow)),
    Column::new("REVOKED_AT", |k| or_dash(&k.revoked_at)),
];

pub const RPC_PLAN: &[Column<RpcPlanView>] = &[
    Column::new("NAME", |p| p.name.clone()),
    Column::new("CU_PER_MINUTE", |p| p.cu_per_minute.to_string()),
    Column::new("BURST_CU", |p| p.burst_cu.to_string()),
];

pub const USAGE_ROW: &[Column<UsageRowView>] = &[
    Column::new("BUCKET_START", |r| r.bucket_start.clone()),
    Column::new("KEY_ID", |r| r.key_id.to_string()),
    Column::new("CHAIN", |r| r.chain.clone()),
    Column::new("METHOD", |r| r.method.clone()),
    Column::new("REQUESTS", |r| r.requests.to_string()),
    Column::new("COMPUTE_UNITS", |r| r.compute_units.to_string()),
    Column::new("ERRORS", |r| r.errors.to_string()),
    Column::new("AVG_LATENCY_US", |r| r.avg_latency_us.to_string()),
];

pub const INCIDENT: &[Column<IncidentView>] = &[
    Column::new("ID", |i| i.id.to_string()),
    Column::new("CATEGORY", |i| i.category.clone()),
    Column::new("SEVERITY", |i| i.severity.clone()),
    Column::new("STATE", |i| i.state.clone()),
    Column::new("NODE_ID", |i| or_dash(&i.node_id)),
    Column::new("CHAIN", |i| or_dash(&i.chain)),
    Column::new("TITLE", |i| i.title.clone()),
    Column::new("ESCALATION_LEVEL", |i| i.escalation_level.to_string()),
    Column::new("OPENED_AT", |i| i.opened_at.clone()),
    Column::new("ACKNOWLEDGED_BY", |i| or_dash(&i.acknowledged_by)),
    Column::new("RESOLVED_AT", |i| or_dash(&i.resolved_at)),
];

pub const DELIVERY: &[Column<DeliveryView>] = &[
    Column::new("ID", |d| d.id.to_string()),
    Column::new("CHANNEL_ID", |d| d.channel_id.to_string()),
    Column::new("EVENT", |d| d.event.clone()),
    Column::new("ESCALATION_LEVEL", |d| d.escalation_level.to_string()),
    Column::new("STATE", |d| d.state.clone()),
    Column::new("ATTEMPTS", |d| d.attempts.to_string()),
    Column::new("LAST_ERROR", |d| or_dash(&d.last_error)),
    Column::new("CREATED_AT", |d| d.created_at.clone()),
    Column::new("DELIVERED_AT", |d| or_dash(&d.delivered_at)),
];

pub const CHANNEL: &[Column<ChannelView>] = &[
    Column::new("ID", |c| c.id.to_string()),
    Column::new("NAME", |c| c.name.clone()),
    Column::new("KIND", |c| c.kind.clone()),
    Column::new("ENABLED", |c| c.enabled.to_string()),
    Column::new("CREATED_AT", |c| c.created_at.clone()),
];

pub const UPTIME_BUCKET: &[Column<UptimeBucketView>] = &[
    Column::new("HOUR_START_MS", |b| b.hour_start_ms.to_string()),
    Column::new("UP_MS", |b| b.up_ms.to_string()),
    Column::new("SYNCING_MS", |b| b.syncing_ms.to_string()),
    Column::new("DOWN_MS", |b| b.down_ms.to_string()),
    Column::new("MAINTENANCE_MS", |b| b.maintenance_ms.to_string()),
];

pub const HOST: &[Column<HostView>] = &[
    Column::new("ID", |h| h.id.to_string()),
    Column::new("PROVIDER", |h| h.provider.clone()),
    Column::new("REGION", |h| h.region.clone()),
    Column::new("STATE", |h| h.state.clone()),
    Column::new("CONNECTED", |h| h.connected.to_string()),
    Column::new("ADDRESS", |h| or_dash(&h.address)),
    Column::new("LAST_SEEN_AT", |h| or_dash(&h.last_seen_at)),
];

const MIB: u64 = 1024 * 1024;

pub const HOST_METRIC: &[Column<HostMetricPointView>] = &[
    Column::new("AT", |p| p.at.clone()),
    Column::new("CPU_%", |p| or_dash(&p.cpu_percent)),
    Column::new("MEM_USED_MIB", |p| (p.memory_used_bytes / MIB).to_string()),
    Column::new("MEM_TOTAL_MIB", |p| {
        (p.memory_total_bytes / MIB).to_string()
    }),
    Column::new("DISK_USED_MIB", |p| (p.disk_used_bytes / MIB).to_string()),
    Column::new("DISK_TOTAL_MIB", |p| (p.disk_total_bytes / MIB).to_string()),
    Column::new("RX_B/S", |p| or_dash(&p.net_rx_bytes_per_sec)),
    Column::new("TX_B/S", |p| or_dash(&p.net_tx_bytes_per_sec)),
];

pub const WORKFLOW: &[Column<WorkflowView>] = &[
    Column::new("ID", |w| w.id.clone()),
    Column::new("NAME", |w| w.name.clone()),
    Column::new("VERSION", |w| w.version.to_string()),
    Column::new("STATE", |w| w.state.clone()),
    Column::new("WAITING_FOR", |w| or_dash(&w.waiting_for)),
    Column::new("ERROR", |w| or_dash(&w.error)),
    Column::new("UPDATED_AT", |w| w.updated_at.clone()),
];

pub const STEP: &[Column<StepView>] = &[
    Column::new("INDEX", |s| s.index.to_string()),
    Column::new("NAME", |s| s.name.clone()),
    Column::new("STATE", |s| s.state.clone()),
    Column::new("ATTEMPT", |s| s.attempt.to_string()),
    Column::new("ERROR", |s| or_dash(&s.error)),
    Column::new("UNDO_ERROR", |s| or_dash(&s.undo_error)),
];

pub const ARTIFACT: &[Column<ArtifactView>] = &[
    Column::new("NAME", |a| a.name.clone()),
    Column::new("VERSION", |a| a.version.clone()),
    Column::new("SHA256", |a| a.sha256.clone()),
    Column::new("SIZE", |a| a.size.to_string()),
    Column::new("CREATED_AT", |a| a.created_at.clone()),
];

/// A push's answer: the artifact and what the push did.
pub const PUSHED: &[Column<PushedArtifactView>] = &[
    Column::new("NAME", |p| p.artifact.name.clone()),
    Column::new("VERSION", |p| p.artifact.version.clone()),
    Column::new("SHA256", |p| p.artifact.sha256.clone()),
    Column::new("SIZE", |p| p.artifact.size.to_string()),
    Column::new("OUTCOME", |p| p.outcome.clone()),
];

/// One artifact shown alone: also its content type and who pushed it.
pub const ARTIFACT_DETAIL: &[Column<ArtifactView>] = &[
    Column::new("NAME", |a| a.name.clone()),
    Column::new("VERSION", |a| a.version.clone()),
    Column::new("SHA256", |a| a.sha256.clone()),
    Column::new("SIZE", |a| a.size.to_string()),
    Column::new("CONTENT_TYPE", |a| a.content_type.clone()),
    Column::new("CREATED_AT", |a| a.created_at.clone()),
    Column::new("CREATED_BY", |a| or_dash(&a.created_by)),
];

pub const LEDGER_ACCOUNT: &[Column<AccountRecord>] = &[
    Column::new("ID", |a| a.id.to_string()),
    Column::new("LEDGER", |a| a.ledger.to_string()),
    Column::new("CODE", |a| a.code.to_string()),
    Column::new("FLAGS", |a| a.flags.to_string()),
    Column::new("ORG", |a| or_dash(&a.org_id)),
    Column::new("DEBITS_PENDING", |a| a.debits_pending.clone()),
    Column::new("DEBITS_POSTED", |a| a.debits_posted.clone()),
    Column::new("CREDITS_PENDING", |a| a.credits_pending.clone()),
    Column::new("CREDITS_POSTED", |a| a.credits_posted.clone()),
    Column::new("TIMESTAMP", |a| a.timestamp.clone()),
];

pub const LEDGER_TRANSFER: &[Column<TransferRecord>] = &[
    Column::new("ID", |t| t.id.to_string()),
    Column::new("DEBIT", |t| t.debit_account_id.to_string()),
    Column::new("CREDIT", |t| t.credit_account_id.to_string()),
    Column::new("AMOUNT", |t| t.amount.clone()),
    Column::new("LEDGER", |t| t.ledger.to_string()),
    Column::new("CODE", |t| t.code.to_string()),
    Column::new("FLAGS", |t| t.flags.to_string()),
    Column::new("PENDING_ID", |t| or_dash(&t.pending_id)),
    Column::new("TIMESTAMP", |t| t.timestamp.clone()),
];

pub const LEDGER_RESULT: &[Column<ItemResult>] = &[
    Column::new("INDEX", |r| r.index.to_string()),
    Column::new("ID", |r| r.id.to_string()),
    Column::new("RESULT", |r| r.result.clone()),
];

pub const LEDGER_CHECKPOINT: &[Column<CheckpointView>] = &[
    Column::new("TREE_SIZE", |c| c.tree_size.to_string()),
    Column::new("ROOT", |c| c.root_hash.clone()),
    Column::new("CREATED_AT", |c| c.created_at.clone()),
];

pub const RATE_CARD: &[Column<RateCardView>] = &[
    Column::new("VERSION", |c| c.version.to_string()),
    Column::new("CURRENCY", |c| c.currency.clone()),
    Column::new("RULES", |c| c.rules.len().to_string()),
    Column::new("CREATED_AT", |c| c.created_at.clone()),
    Column::new("USED_AT", |c| or_dash(&c.used_at)),
];

pub const SUBSCRIPTION: &[Column<SubscriptionView>] = &[
    Column::new("ID", |s| s.id.to_string()),
    Column::new("ORG", |s| s.org_id.to_string()),
    Column::new("KIND", |s| s.terms.kind.clone()),
    Column::new("STATE", |s| s.state.clone()),
    Column::new("START", |s| s.start_date.clone()),
    Column::new("CARD", |s| s.rate_card_version.to_string()),
    Column::new("BILLED_THROUGH", |s| or_dash(&s.billed_through)),
];

pub const BUDGET: &[Column<BudgetView>] = &[
    Column::new("SUBSCRIPTION", |b| b.subscription_id.to_string()),
    Column::new("BUDGET", |b| {
        b.budget_minor
            .map_or_else(|| "-".into(), |m| format!("{m} {}", b.currency))
    }),
    Column::new("HARD_CAP", |b| b.hard_cap.to_string()),
    Column::new("PERIOD", |b| {
        b.current.as_ref().map_or_else(
            || "-".into(),
            |c| format!("{}..{}", c.period_start, c.period_end),
        )
    }),
    Column::new("SPENT", |b| {
        b.current
            .as_ref()
            .map_or_else(|| "-".into(), |c| c.spent_minor.to_string())
    }),
    Column::new("ALERTED", |b| {
        b.current
            .as_ref()
            .and_then(|c| c.alerted_percent)
            .map_or_else(|| "-".into(), |p| format!("{p} %"))
    }),
    Column::new("CAPPED", |b| {
        b.current.as_ref().is_some_and(|c| c.capped).to_string()
    }),
];

pub const KEY_EXPORT: &[Column<KeyExportView>] = &[
    Column::new("NODE", |k| k.node_id.to_string()),
    Column::new("KIND", |k| k.kind.clone()),
    Column::new("FINGERPRINT", |k| k.fingerprint.clone()),
    Column::new("SEALED", |k| k.sealed.clone()),
];

pub const CREDIT_NOTE: &[Column<CreditNoteView>] = &[
    Column::new("NUMBER", |n| n.number.clone()),
    Column::new("INVOICE", |n| n.invoice_id.to_string()),
    Column::new("AMOUNT", |n| format!("{} {}", n.amount_minor, n.currency)),
    Column::new("REASON", |n| n.reason.clone()),
    Column::new("POSTED", |n| or_dash(&n.posted_at)),
];

pub const INVOICE: &[Column<InvoiceView>] = &[
    Column::new("ID", |i| i.id.to_string()),
    Column::new("NUMBER", |i| or_dash(&i.number)),
    Column::new("STATE", |i| i.state.clone()),
    Column::new("PERIOD", |i| {
        format!("{}..{}", i.period_start, i.period_end)
    }),
    Column::new("TOTAL_MINOR", |i| i.total_minor.to_string()),
    Column::new("CURRENCY", |i| i.currency.clone()),
];

pub const INVOICE_LINE: &[Column<LineView>] = &[
    Column::new("KIND", |l| l.kind.clone()),
    Column::new("DESCRIPTION", |l| l.description.clone()),
    Column::new("QUANTITY", |l| or_dash(&l.quantity)),
    Column::new("INCLUDED", |l| or_dash(&l.included)),
    Column::new("AMOUNT_MINOR", |l| l.amount_minor.to_string()),
];

pub const RECONCILIATION_ITEM: &[Column<ReconciliationItemView>] = &[
    Column::new("KIND", |i| i.kind.clone()),
    Column::new("REFERENCE", |i| i.reference.clone()),
    Column::new("AMOUNT_MINOR", |i| i.amount_minor.to_string()),
    Column::new("REASON", |i| i.reason.clone()),
];

pub const CREDITS: &[Column<CreditsViewBody>] = &[
    Column::new("ORG", |c| c.org_id.to_string()),
    Column::new("STATE", |c| c.state.clone()),
    Column::new("AVAILABLE_MINOR", |c| c.available_minor.to_string()),
    Column::new("CURRENCY", |c| c.currency.clone()),
    Column::new("HELD_UNITS", |c| c.held_units.to_string()),
    Column::new("REASON", |c| or_dash(&c.reason)),
];

pub const PAYMENT: &[Column<PaymentView>] = &[
    Column::new("ID", |p| p.id.to_string()),
    Column::new("PROVIDER", |p| p.provider.clone()),
    Column::new("REFERENCE", |p| p.reference.clone()),
    Column::new("AMOUNT_MINOR", |p| p.amount_minor.to_string()),
    Column::new("STATE", |p| p.state.clone()),
];

pub const ALLOCATION_BUDGET: &[Column<hood_api::routes::allocations::AllocationBudgetView>] = &[
    Column::new("MONTHLY_LIMIT_MINOR", |b| b.monthly_limit_minor.to_string()),
    Column::new("SPENT_MINOR", |b| b.spent_minor.to_string()),
    Column::new("CURRENCY", |b| b.currency.clone()),
    Column::new("MONTH_START", |b| b.month_start.clone()),
];

pub const REFUND: &[Column<hood_api::routes::credits::RefundView>] = &[
    Column::new("TRANSFER", |r| r.transfer_id.to_string()),
    Column::new("ORG", |r| r.org_id.to_string()),
    Column::new("AMOUNT_MINOR", |r| r.amount_minor.to_string()),
    Column::new("CURRENCY", |r| r.currency.clone()),
    Column::new("NEW", |r| r.created.to_string()),
];

pub const ROLLOUT: &[Column<RolloutView>] = &[
    Column::new("ID", |r| r.id.to_string()),
    Column::new("CHAIN", |r| r.chain.clone()),
    Column::new("KIND", |r| {
        match r.kind {
            RolloutKindView::Upgrade => "upgrade",
            RolloutKindView::Reconfigure => "reconfigure",
        }
        .to_owned()
    }),
    Column::new("UPGRADE", |r| or_dash(&r.upgrade_id)),
    Column::new("SELECTOR", |r| or_dash(&r.selector)),
    Column::new("FROM", |r| r.from_version.clone()),
    Column::new("TO", |r| r.to_version.clone()),
    Column::new("STATE", |r| r.state.clone()),
    Column::new("DONE", |r| {
        format!("{}/{}", r.progress.upgraded, r.progress.total)
    }),
    Column::new("FAILED", |r| r.progress.failed.to_string()),
    Column::new("ERROR", |r| or_dash(&r.error)),
    Column::new("CREATED_AT", |r| r.created_at.clone()),
];

pub const ROLLOUT_NODE: &[Column<RolloutNodeView>] = &[
    Column::new("BATCH", |n| n.batch.to_string()),
    Column::new("NODE", |n| {
        n.name.clone().unwrap_or_else(|| n.node_id.to_string())
    }),
    Column::new("STATE", |n| n.state.clone()),
    Column::new("VERSION", |n| or_dash(&n.version)),
    Column::new("NODE_STATE", |n| or_dash(&n.node_state)),
    Column::new("HEAD", |n| {
        n.head_height.map_or_else(|| "-".into(), |h| h.to_string())
    }),
    Column::new("ERROR", |n| or_dash(&n.error)),
];

pub const SNAPSHOT: &[Column<SnapshotView>] = &[
    Column::new("NAME", |s| s.name.clone()),
    Column::new("STATE", |s| s.state.clone()),
    Column::new("REASON", |s| s.reason.clone()),
    Column::new("HEAD", |s| {
        s.head_height.map_or_else(|| "-".into(), |h| h.to_string())
    }),
    Column::new("RAW_MIB", |s| {
        format!("{:.1}", s.raw_bytes as f64 / 1_048_576.0)
    }),
    Column::new("STORED_MIB", |s| {
        format!("{:.1}", s.compressed_bytes as f64 / 1_048_576.0)
    }),
    Column::new("CHUNKS", |s| {
        format!("{}/{}", s.chunks_done, s.chunks_total)
    }),
    Column::new("CREATED", |s| s.created_at.clone()),
    Column::new("ERROR", |s| or_dash(&s.error)),
];

pub const SNAPSHOT_ACCEPTED: &[Column<SnapshotAccepted>] = &[
    Column::new("NODE", |a| a.node_id.to_string()),
    Column::new("SNAPSHOT", |a| a.name.clone()),
    Column::new("WORKFLOW_ID", |a| a.workflow_id.clone()),
];

pub const ALLOCATION: &[Column<AllocationView>] = &[
    Column::new("ID", |a| a.id.to_string()),
    Column::new("SKU", |a| a.sku.clone()),
    Column::new("STATE", |a| a.state.clone()),
    Column::new("HOST", |a| a.host_id.to_string()),
    Column::new("CORES", |a| {
        a.reservation
            .cores
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }),
    Column::new("MEMORY_MIB", |a| a.reservation.memory_mib.to_string()),
    Column::new("GPUS", |a| {
        let gpus: Vec<String> = a
            .reservation
            .gpus
            .iter()
            .map(|g| match &g.profile {
                Some(p) => format!("{}:{p}@{}", g.gpu, g.start.unwrap_or(0)),
                None => g.gpu.to_string(),
            })
            .collect();
        if gpus.is_empty() {
            "-".into()
        } else {
            gpus.join(",")
        }
    }),
    Column::new("CREATED_AT", |a| a.created_at.clone()),
    Column::new("ERROR", |a| a.error.clone().unwrap_or_else(|| "-".into())),
];

pub const SKU: &[Column<SkuView>] = &[
    Column::new("NAME", |s| s.name.clone()),
    Column::new("CORES", |s| s.cores.to_string()),
    Column::new("MEMORY_MIB", |s| s.memory_mib.to_string()),
    Column::new("DISK_MIB", |s| s.disk_mib.to_string()),
    Column::new("GPU", |s| match &s.gpu {
        None => "-".into(),
        Some(g) => match (&g.profile, g.count) {
            (Some(p), _) => format!("mig {p}"),
            (None, Some(n)) => format!("{n} whole"),
            (None, None) => g.kind.clone(),
        },
    }),
    Column::new("PRICE_PER_MINUTE", |s| {
        format!("{} {} (minor units)", s.price_per_minute_minor, s.currency)
    }),
];

pub const CAPACITY: &[Column<HostCapacityView>] = &[
    Column::new("HOST", |c| c.host_id.to_string()),
    Column::new("SOURCE", |c| c.source.clone()),
    Column::new("CORES", |c| {
        format!("{} ({} free)", c.cores, c.free.cores.len())
    }),
    Column::new("MEMORY_MIB", |c| {
        format!("{} ({} free)", c.memory_mib, c.free.memory_mib)
    }),
    Column::new("DISK_MIB", |c| {
        format!("{} ({} free)", c.disk_mib, c.free.disk_mib)
    }),
    Column::new("GPUS", |c| c.gpus.len().to_string()),
    Column::new("ALLOCATIONS", |c| c.reservations.len().to_string()),
];

pub const AUDIT: &[Column<AuditView>] = &[
    Column::new("AT", |e| e.at.clone()),
    Column::new("ACTOR", |e| e.actor.clone()),
    Column::new("ACTION", |e| e.action.clone()),
    Column::new("RESOURCE", |e| {
        format!("{}/{}", e.resource_type, e.resource_id)
    }),
    Column::new("REQUEST_ID", |e| or_dash(&e.request_id)),
];

pub const NAMESPACE: &[Column<NamespaceView>] = &[
    Column::new("NAME", |n| n.name.clone()),
    Column::new("VISIBILITY", |n| n.visibility.clone()),
    Column::new("STATE", |n| n.state.clone()),
    Column::new("BYTES", |n| {
        format!("{}/{}", n.usage.bytes, n.quota.max_bytes)
    }),
    Column::new("OBJECTS", |n| {
        format!("{}/{}", n.usage.objects, n.quota.max_objects)
    }),
    Column::new("ID", |n| n.id.to_string()),
    Column::new("CREATED_AT", |n| n.created_at.clone()),
];

pub const OBJECT: &[Column<ObjectView>] = &[
    Column::new("KEY", |o| o.key.clone()),
    Column::new("SIZE", |o| o.size.to_string()),
    Column::new("CONTENT_TYPE", |o| o.content_type.clone()),
    Column::new("SHA256", |o| o.sha256.clone()),
    Column::new("CREATED_AT", |o| o.created_at.clone()),
];

pub const UPLOAD: &[Column<UploadSummaryView>] = &[
    Column::new("ID", |u| u.id.to_string()),
    Column::new("KEY", |u| u.key.clone()),
    Column::new("CONTENT_TYPE", |u| u.content_type.clone()),
    Column::new("CREATED_AT", |u| u.created_at.clone()),
];

pub const NOTIFICATION: &[Column<NotificationView>] = &[
    Column::new("ID", |n| n.id.to_string()),
    Column::new("AT", |n| n.created_at.clone()),
    Column::new("READ", |n| {
        if n.read_at.is_some() { "yes" } else { "no" }.to_owned()
    }),
    Column::new("TITLE", |n| n.title.clone()),
];

pub const CONTAINER: &[Column<hood_api::routes::containers::ContainerView>] = &[
    Column::new("ID", |c| c.id.to_string()),
    Column::new("NAME", |c| c.name.clone()),
    Column::new("IMAGE", |c| c.image.clone()),
    Column::new("SKU", |c| c.sku.clone()),
    Column::new("STATUS", |c| c.status.clone()),
    Column::new("PORTS", |c| {
        c.ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }),
    Column::new("HOST", |c| or_dash(&c.host_id)),
    Column::new("CREATED_AT", |c| c.created_at.clone()),
    Column::new("ERROR", |c| or_dash(&c.error)),
];

pub const SSH_KEY: &[Column<SshKeyView>] = &[
    Column::new("ID", |k| k.id.to_string()),
    Column::new("NAME", |k| k.name.clone()),
    Column::new("ALGORITHM", |k| k.algorithm.clone()),
    Column::new("FINGERPRINT", |k| k.fingerprint.clone()),
    Column::new("CREATED_AT", |k| k.created_at.clone()),
];

pub const SERVICE_ACCOUNT: &[Column<ServiceAccountView>] = &[
    Column::new("ID", |a| a.id.to_string()),
    Column::new("NAME", |a| a.name.clone()),
    Column::new("GRANTS", |a| {
        a.grants
            .iter()
            .map(|g| format!("{}={}", g.scope, g.actions.join(",")))
            .collect::<Vec<_>>()
            .join(" ")
    }),
    Column::new("OWNER", |a| a.owner_id.to_string()),
    Column::new("CREATED_AT", |a| a.created_at.clone()),
];

pub const S3_KEY: &[Column<S3KeyView>] = &[
    Column::new("ACCESS_KEY_ID", |k| k.access_key_id.clone()),
    Column::new("SERVICE_ACCOUNT", |k| k.service_account_id.to_string()),
    Column::new("CREATED_AT", |k| k.created_at.clone()),
    Column::new("REVOKED_AT", |k| {
        k.revoked_at.clone().unwrap_or_else(|| "-".into())
    }),
];

#[cfg(test)]
mod tests {
    //! Each view's columns print what the untyped CLI printed for the same
    //! answer: the field of the same name (`-` for null, lists joined).
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::{json, Value};

    /// The cell the CLI printed when it read answers as untyped JSON.
    fn json_cell(answer: &Value, path: &str) -> String {
        let mut cur = answer;
        for part in path.split('.') {
            match cur.get(part) {
                Some(next) => cur = next,
                None => return "-".into(),
            }
        }
        match cur {
            Value::Null => "-".into(),
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            // Maps (labels) print as `k=v` pairs; none is `-`.
            Value::Object(m) if m.is_empty() => "-".into(),
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        }
    }

    /// Decodes `answer` as the view and checks every column against the
    /// field at `paths` (in column order), headers included.
    fn check<T: DeserializeOwned>(answer: Value, columns: &[Column<T>], paths: &[&str]) {
        let view: T = serde_json::from_value(answer.clone()).expect("the answer decodes");
        assert_eq!(columns.len(), paths.len(), "one path per column");
        for (column, path) in columns.iter().zip(paths) {
            let field = path.rsplit('.').next().unwrap_or(path);
            assert_eq!(column.header, field.to_uppercase(), "header of {path}");
            assert_eq!(
                (column.cell)(&view),
                json_cell(&answer, path),
                "cell of {path}"
            );
        }
    }

    const ID: &str = "0190a8a2-0000-7000-8000-000000000001";
    const OTHER_ID: &str = "0190a8a2-0000-7000-8000-000000000002";
    const AT: &str = "2025-01-01T00:00:00Z";

    fn org() -> Value {
        json!({"id": ID, "slug": "acme", "name": "Acme Corp", "created_at": AT})
    }

    fn user() -> Value {
        json!({"id": ID, "org_id": OTHER_ID, "email": "ops@acme.test", "display_name": "Ops",
            "role": "admin", "platform_admin": false, "disabled": false, "has_password": true,
            "created_at": AT})
    }

    fn node(rpc_endpoint: Value) -> Value {
        json!({"id": ID, "org_id": OTHER_ID, "name": "devnet-1", "chain": "ethereum-anvil",
            "node_type": "dev", "provider": "local", "region": "local", "state": "healthy",
            "sync_status": "synced", "app_health": "ok", "host_id": null,
            "rpc_endpoint": rpc_endpoint, "head_height": 12, "binary_version": "1.5.1",
            "failure_reason": null, "created_at": AT, "updated_at": AT})
    }

    #[test]
    fn identity_views() {
        check(
            json!({"user": user(), "org": org(), "credential": "api_key",
                "permissions": ["read", "operate"]}),
            ME,
            &[
                "user.email",
                "user.role",
                "org.slug",
                "credential",
                "permissions",
            ],
        );
        check(org(), ORG, &["id", "slug", "name", "created_at"]);
        check(
            user(),
            USER,
            &[
                "id",
                "email",
                "display_name",
                "role",
                "disabled",
                "created_at",
            ],
        );
        check(
            json!({"id": ID, "org_id": OTHER_ID, "user_id": OTHER_ID, "name": "deployer",
                "prefix": "abcd1234", "role": "operator", "scopes": ["read", "operate"],
                "created_at": AT, "expires_at": AT, "revoked_at": null, "last_used_at": null}),
            API_KEY,
            &[
                "id",
                "name",
                "prefix",
                "role",
                "scopes",
                "expires_at",
                "revoked_at",
                "last_used_at",
            ],
        );
    }

    #[test]
    fn storage_views() {
        check(
            json!({"id": ID, "key": "big/file.bin", "content_type": "application/octet-stream",
                "created_at": AT}),
            UPLOAD,
            &["id", "key", "content_type", "created_at"],
        );
    }

    #[test]
    fn chain_and_node_views() {
        check(
            json!({"name": "ethereum-anvil", "display_name": "Ethereum (anvil)", "family": "evm",
                "network": "devnet", "chain_id": "31337", "default_node_type": "dev",
                "node_types": [{"name": "dev", "description": "d",
                    "resources": {"cpu": 1, "memory_gb": 1, "disk_gb": 1}}],
                "providers": ["local"], "binaries": [{"name": "anvil", "version": "1.5.1"}],
                "runtime_adapter": "process", "rpc_port": 8545, "sync_method": "eth_syncing",
                "upgrades": []}),
            CHAIN,
            &["name", "display_name", "family", "network"],
        );
        let paths = [
            "id",
            "name",
            "chain",
            "node_type",
            "state",
            "sync_status",
            "rpc_endpoint",
            "labels",
            "created_at",
        ];
        check(node(json!("http://127.0.0.1:8545")), NODE, &paths);
        check(node(Value::Null), NODE, &paths);
        let mut labelled = node(Value::Null);
        labelled["labels"] = json!({"region": "eu", "tier": "main"});
        check(labelled, NODE, &paths);
        check(
            json!({"node": node(Value::Null), "workflow_id": format!("provision-node-{ID}")}),
            NODE_ACCEPTED,
            &["node.id", "node.name", "node.state", "workflow_id"],
        );
        check(
            json!({"seq": 3, "at": AT, "kind": "state", "from_state": "provisioning",
                "to_state": "syncing", "message": "agent started anvil"}),
            NODE_EVENT,
            &["seq", "at", "kind", "from_state", "to_state", "message"],
        );
    }

    #[test]
    fn edge_views() {
        check(
            json!({"id": ID, "org_id": OTHER_ID, "name": "cli", "prefix": "abcd", "plan": "free",
                "chains": ["ethereum"], "allowed_methods": [], "denied_methods": ["debug_*", "trace_*"],
                "ip_allow": ["10.0.0.0/8"], "origin_allow": [], "created_at": AT, "updated_at": AT,
                "revoked_at": null, "version": 1}),
            RPC_KEY,
            &[
                "id",
                "name",
                "prefix",
                "plan",
                "chains",
                "allowed_methods",
                "denied_methods",
                "ip_allow",
                "origin_allow",
                "revoked_at",
            ],
        );
        check(
            json!({"name": "enterprise", "cu_per_minute": 1000000, "burst_cu": 50000}),
            RPC_PLAN,
            &["name", "cu_per_minute", "burst_cu"],
        );
        check(
            json!({"bucket_start": AT, "key_id": ID, "chain": "ethereum", "method": "eth_call",
                "requests": 12, "compute_units": 312, "errors": 1, "avg_latency_us": 950}),
            USAGE_ROW,
            &[
                "bucket_start",
                "key_id",
                "chain",
                "method",
                "requests",
                "compute_units",
                "errors",
                "avg_latency_us",
            ],
        );
    }

    #[test]
    fn health_views() {
        check(
            json!({"id": ID, "category": "node_down", "severity": "critical", "state": "open",
                "node_id": OTHER_ID, "chain": null, "title": "devnet-1 is down", "detail": "",
                "root_id": null, "escalation_level": 1, "opened_at": AT, "acknowledged_at": null,
                "acknowledged_by": null, "resolved_at": null}),
            INCIDENT,
            &[
                "id",
                "category",
                "severity",
                "state",
                "node_id",
                "chain",
                "title",
                "escalation_level",
                "opened_at",
                "acknowledged_by",
                "resolved_at",
            ],
        );
        check(
            json!({"id": ID, "channel_id": OTHER_ID, "event": "incident.opened",
                "escalation_level": 0, "state": "failed", "attempts": 3,
                "last_error": "connection refused", "created_at": AT, "delivered_at": null,
                "attempts_log": [{"attempt": 1, "at": AT, "ok": false, "error": "connection refused"}]}),
            DELIVERY,
            &[
                "id",
                "channel_id",
                "event",
                "escalation_level",
                "state",
                "attempts",
                "last_error",
                "created_at",
                "delivered_at",
            ],
        );
        check(
            json!({"id": ID, "org_id": OTHER_ID, "name": "ops", "kind": "webhook",
                "config": {"kind": "webhook", "url": "https://hooks.example.com/x", "secret": "***"},
                "enabled": true, "created_at": AT, "updated_at": AT}),
            CHANNEL,
            &["id", "name", "kind", "enabled", "created_at"],
        );
        check(
            json!({"hour_start_ms": 1_700_000_000_000_i64, "up_ms": 3_000_000, "syncing_ms": 600_000,
                "down_ms": 0, "maintenance_ms": 0}),
            UPTIME_BUCKET,
            &[
                "hour_start_ms",
                "up_ms",
                "syncing_ms",
                "down_ms",
                "maintenance_ms",
            ],
        );
    }

    #[test]
    fn fleet_and_artifact_views() {
        check(
            json!({"id": ID, "org_id": null, "provider": "local", "region": "local",
                "state": "ready", "address": "127.0.0.1", "hostname": null,
                "agent_version": "0.1.0", "connected": true, "last_seen_at": AT, "created_at": AT}),
            HOST,
            &[
                "id",
                "provider",
                "region",
                "state",
                "connected",
                "address",
                "last_seen_at",
            ],
        );
        let step = json!({"index": 0, "name": "create_host", "state": "succeeded", "attempt": 1,
            "error": null, "undo_error": null, "started_at": AT, "finished_at": AT});
        check(
            step.clone(),
            STEP,
            &["index", "name", "state", "attempt", "error", "undo_error"],
        );
        let workflow_paths = [
            "id",
            "name",
            "version",
            "state",
            "waiting_for",
            "error",
            "updated_at",
        ];
        let workflow = json!({"id": format!("provision-node-{ID}"), "name": "provision-node",
            "version": 1, "state": "waiting", "error": null, "waiting_for": "timer",
            "parent_id": null, "attempts": 0, "input": {"node_id": ID}, "created_at": AT,
            "updated_at": AT});
        check(workflow.clone(), WORKFLOW, &workflow_paths);
        let mut with_steps = workflow;
        with_steps["steps"] = json!([step]);
        check(with_steps, WORKFLOW, &workflow_paths);
        let artifact = json!({"name": "anvil-linux-amd64", "version": "1.5.1",
            "sha256": "ab".repeat(32), "size": 34276528, "content_type": "application/octet-stream",
            "created_at": AT, "created_by": null});
        check(
            artifact.clone(),
            ARTIFACT,
            &["name", "version", "sha256", "size", "created_at"],
        );
        check(
            artifact,
            ARTIFACT_DETAIL,
            &[
                "name",
                "version",
                "sha256",
                "size",
                "content_type",
                "created_at",
                "created_by",
            ],
        );
    }
}
