//! `hood alloc …` (allocations: slices of hosts rented by SKU), `hood host
//! capacity …` and `hood audit`.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{list, show, Format};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use hood_api::routes::allocations::{
    AllocationBudgetInput, AllocationBudgetView, AllocationLogsView, AllocationView, AuditView,
    CapacityInput, CreateAllocationRequest, ForceReleaseRequest, GpuCapacityView, HostCapacityView,
    IdlePolicyView, SkuView,
};
use hood_api::views::Page;
use reqwest::Method;
use std::path::PathBuf;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum AllocCmd {
    /// Rents a slice of a host by SKU (`hood alloc skus` lists them).
    Create(Box<CreateArgs>),
    /// The organization's allocations, newest first.
    List,
    Show {
        id: Uuid,
    },
    /// Releases an allocation (stops what runs in it, frees its capacity).
    Release {
        id: Uuid,
    },
    /// Releases any organization's allocation (platform administrators).
    ForceRelease {
        id: Uuid,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// The last lines the allocation's command wrote (stdout and stderr).
    Logs {
        id: Uuid,
        #[arg(long, default_value_t = 100)]
        lines: u32,
        /// Keep printing new lines as they are written, until the
        /// allocation stops running (or Ctrl-C).
        #[arg(long, short)]
        follow: bool,
    },
    /// A shell inside the allocation's sandbox (recorded, and audited).
    /// Exits with the shell's exit code.
    Terminal {
        id: Uuid,
    },
    /// The organization's monthly allocation budget and this month's
    /// spend; with --set-minor, caps it (new allocations refused, running
    /// ones released at the cap); with --remove, lifts it.
    Budget {
        #[arg(long, value_name = "MINOR_UNITS", conflicts_with = "remove")]
        set_minor: Option<u64>,
        /// ISO 4217 (default: the SKUs' currency).
        #[arg(long, requires = "set_minor")]
        currency: Option<String>,
        #[arg(long)]
        remove: bool,
    },
    /// The SKUs on offer and their price per minute.
    Skus,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The SKU, e.g. `cpu.2c4g` or `gpu.h200.1g.18gb`.
    pub sku: String,
    /// An image to run (from the host's image store or an OCI archive).
    #[arg(long)]
    pub image: Option<String>,
    /// An OpenSSH public key file allowed in (repeat for more).
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<PathBuf>,
    /// Release after this many minutes.
    #[arg(long, value_name = "MINUTES")]
    pub max_duration: Option<u32>,
    /// Release after this many idle minutes (with --idle-floor).
    #[arg(long, value_name = "MINUTES", requires = "idle_floor")]
    pub idle_minutes: Option<u32>,
    /// The utilization (percent) under which the allocation counts as idle.
    #[arg(long, value_name = "PERCENT", requires = "idle_minutes")]
    pub idle_floor: Option<u8>,
    /// Retrying with the same key answers the first allocation.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// The command to run, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// The public keys in OpenSSH key files (one per line, `#` comments and
/// blank lines skipped).
pub(crate) fn read_ssh_keys(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut keys = vec![];
    for path in files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the SSH key {}", path.display()))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(keys)
}

pub async fn run(opts: &ConnectOpts, format: Format, cmd: AllocCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        AllocCmd::Create(args) => {
            let keys = read_ssh_keys(&args.ssh_keys)?;
            let body = CreateAllocationRequest {
                sku: args.sku,
                image: args.image,
                command: args.command,
                ssh_public_keys: keys,
                max_duration_minutes: args.max_duration,
                idle: args
                    .idle_minutes
                    .zip(args.idle_floor)
                    .map(|(minutes, floor)| IdlePolicyView {
                        minutes,
                        utilization_floor_percent: floor,
                    }),
                idempotency_key: args.idempotency_key,
            };
            let made: AllocationView = client.post("/api/v1/allocations", &body).await?;
            show(format, &made, columns::ALLOCATION)
        }
        AllocCmd::List => {
            let page: Page<AllocationView> = client.get("/api/v1/allocations").await?;
            list(format, &page, columns::ALLOCATION)
        }
        AllocCmd::Show { id } => {
            let a: AllocationView = client.get(&format!("/api/v1/allocations/{id}")).await?;
            show(format, &a, columns::ALLOCATION)
        }
        AllocCmd::Release { id } => {
            let a: AllocationView = client
                .call(
                    Method::DELETE,
                    &format!("/api/v1/allocations/{id}"),
                    None::<&()>,
                )
                .await?;
            show(format, &a, columns::ALLOCATION)
        }
        AllocCmd::ForceRelease { id, reason } => {
            let a: AllocationView = client
                .post(
                    &format!("/api/v1/allocations/{id}/force-release"),
                    &ForceReleaseRequest { reason },
                )
                .await?;
            show(format, &a, columns::ALLOCATION)
        }
        AllocCmd::Logs {
            id,
            lines,
            follow: true,
        } => {
            client
                .follow_log_lines(
                    &format!("/api/v1/allocations/{id}/logs/follow?lines={lines}"),
                    str::to_owned,
                )
                .await
        }
        AllocCmd::Logs { id, lines, .. } => {
            let logs: AllocationLogsView = client
                .get(&format!("/api/v1/allocations/{id}/logs?lines={lines}"))
                .await?;
            match format {
                Format::Json => super::output::json(&logs)?,
                Format::Table => {
                    for line in &logs.lines {
                        println!("{line}");
                    }
                }
            }
            Ok(())
        }
        AllocCmd::Terminal { id } => {
            let code = super::terminal::run(&client, id).await?;
            if code != 0 {
                // Like ssh: the remote shell's status is this command's.
                std::process::exit(code);
            }
            Ok(())
        }
        AllocCmd::Budget {
            set_minor,
            currency,
            remove,
        } => {
            if remove {
                client.delete("/api/v1/allocation-budget").await?;
                println!("allocation budget removed");
                return Ok(());
            }
            let view: AllocationBudgetView = match set_minor {
                Some(limit) => {
                    client
                        .call(
                            Method::PUT,
                            "/api/v1/allocation-budget",
                            Some(&AllocationBudgetInput {
                                monthly_limit_minor: limit,
                                currency,
                            }),
                        )
                        .await?
                }
                None => client.get("/api/v1/allocation-budget").await?,
            };
            show(format, &view, columns::ALLOCATION_BUDGET)
        }
        AllocCmd::Skus => {
            let page: Page<SkuView> = client.get("/api/v1/skus").await?;
            list(format, &page, columns::SKU)
        }
    }
}

#[derive(Debug, Args)]
pub struct CapacityArgs {
    pub host: Uuid,
    /// Declares the host's capacity (platform administrators); without it,
    /// shows the capacity, reservations and what is free.
    #[arg(long)]
    pub cores: Option<u32>,
    #[arg(long, requires = "cores")]
    pub memory_mib: Option<u64>,
    #[arg(long, requires = "cores", default_value_t = 0)]
    pub disk_mib: u64,
    /// A GPU: `INDEX:MODEL:MEMORY_MIB[:mig]` (repeat for more), e.g.
    /// `0:NVIDIA H200:144384:mig`.
    #[arg(long = "gpu", requires = "cores")]
    pub gpus: Vec<String>,
}

fn parse_gpu(spec: &str) -> Result<GpuCapacityView> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (index, model, memory, mig) = match parts.as_slice() {
        [i, m, mem] => (i, m, mem, false),
        [i, m, mem, "mig"] => (i, m, mem, true),
        _ => bail!("--gpu `{spec}`: expected INDEX:MODEL:MEMORY_MIB[:mig]"),
    };
    Ok(GpuCapacityView {
        index: index
            .parse()
            .map_err(|_| anyhow!("--gpu `{spec}`: the index is not a number"))?,
        model: (*model).to_owned(),
        memory_mib: memory
            .parse()
            .map_err(|_| anyhow!("--gpu `{spec}`: the memory is not a number of MiB"))?,
        mig,
    })
}

pub async fn capacity(opts: &ConnectOpts, format: Format, args: CapacityArgs) -> Result<()> {
    let mut client = Client::new(opts)?;
    let path = format!("/api/v1/hosts/{}/capacity", args.host);
    let view: HostCapacityView = match args.cores {
        None => client.get(&path).await?,
        Some(cores) => {
            let Some(memory_mib) = args.memory_mib else {
                bail!("--memory-mib is required with --cores");
            };
            let gpus = args
                .gpus
                .iter()
                .map(|g| parse_gpu(g))
                .collect::<Result<Vec<_>>>()?;
            let body = CapacityInput {
                cores,
                memory_mib,
                disk_mib: args.disk_mib,
                gpus,
            };
            client.call(Method::PUT, &path, Some(&body)).await?
        }
    };
    show(format, &view, columns::CAPACITY)
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// `allocation.create`, `allocation.release`, `host.capacity.declare`, …
    #[arg(long)]
    pub action: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    #[arg(long)]
    pub resource_type: Option<String>,
    #[arg(long)]
    pub resource_id: Option<String>,
    #[arg(long)]
    pub request_id: Option<String>,
    /// Rows at or after this RFC 3339 instant.
    #[arg(long)]
    pub since: Option<String>,
    /// Platform administrators: another organization's rows.
    #[arg(long)]
    pub org: Option<Uuid>,
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

pub async fn audit(opts: &ConnectOpts, format: Format, args: AuditArgs) -> Result<()> {
    let mut client = Client::new(opts)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("action", args.action),
        ("actor", args.actor),
        ("resource_type", args.resource_type),
        ("resource_id", args.resource_id),
        ("request_id", args.request_id),
        ("since", args.since),
        ("org_id", args.org.map(|o| o.to_string())),
    ] {
        if let Some(v) = v {
            query.append_pair(k, &v);
        }
    }
    query.append_pair("limit", &args.limit.to_string());
    let page: Page<AuditView> = client
        .get(&format!("/api/v1/audit?{}", query.finish()))
        .await?;
    list(format, &page, columns::AUDIT)
}
