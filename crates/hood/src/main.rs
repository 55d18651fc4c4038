//! `hood`: the control plane server (`up`, `serve`, `migrate`) and its CLI.
//! Thin by design: parse arguments, set up logging, call into the crates.

mod agent;
mod backups;
mod bench;
mod billing;
mod bus;
mod cli;
mod console;
mod edge;
mod fleet;
mod health;
mod ledger;
mod listen;
mod server;
mod storage;

use anyhow::Result;
use clap::{Parser, Subcommand};
use cli::client::ConnectOpts;
use cli::output::Format;
use hood_api::HttpRole;
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "hood",
    version,
    about = "Hood: a self-hostable control plane for managed infrastructure nodes"
)]
struct Cli {
    #[command(flatten)]
    connect: ConnectOpts,
    /// Output format of CLI commands.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoleArg {
    Api,
    Auth,
    /// The saga worker running node workflows (several replicas share the work).
    Orchestrator,
    /// gRPC over mutual TLS for host agents.
    AgentGateway,
    /// Health evaluation, incidents, notifications, migrations, uptime, cleanup
    /// (leader-elected; several replicas stand by for each other).
    Health,
    /// The public JSON-RPC edge (HOOD_EDGE_ADDR, default 8545); replicas
    /// share keys, revocations and usage through the bus.
    Edge,
    /// Period close, invoices and ledger postings (leader-elected; several
    /// replicas stand by for each other).
    Billing,
    /// The S3-compatible endpoint (HOOD_S3_ADDR, default 9000) over the
    /// storage object store (HOOD_STORAGE_URL).
    Storage,
}

impl RoleArg {
    /// The HTTP API this role serves, if it has one.
    fn http_role(self) -> Option<HttpRole> {
        match self {
            RoleArg::Api => Some(HttpRole::Api),
            RoleArg::Auth => Some(HttpRole::Auth),
            RoleArg::Orchestrator
            | RoleArg::AgentGateway
            | RoleArg::Health
            | RoleArg::Edge
            | RoleArg::Billing
            | RoleArg::Storage => None,
        }
    }
}

/// Where `hood serve` listens for HTTP: `--listen` when given; otherwise
/// the design's port of the HTTP API it serves (api 8080, auth alone 8081),
/// so one api and one auth process on a machine do not collide; and
/// nowhere for roles without an HTTP API (their own ports: agent-gateway
/// 9090, edge 8545), so orchestrator and health replicas need no address.
fn serve_listen(roles: &[RoleArg], listen: Option<SocketAddr>) -> Option<SocketAddr> {
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    listen.or_else(|| {
        if roles.contains(&RoleArg::Api) {
            Some(loopback(8080))
        } else if roles.contains(&RoleArg::Auth) {
            Some(loopback(8081))
        } else {
            None
        }
    })
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every role in one process (embedded: SQLite under $HOOD_HOME).
    Up {
        #[command(flatten)]
        opts: server::ServerOpts,
        #[arg(long, env = "HOOD_API_ADDR", default_value = "127.0.0.1:8080")]
        api_addr: SocketAddr,
        #[arg(long, env = "HOOD_AUTH_ADDR", default_value = "127.0.0.1:8081")]
        auth_addr: SocketAddr,
        /// Agent gateway (gRPC over mutual TLS) listen address.
        #[arg(long, env = "HOOD_GATEWAY_ADDR", default_value = "127.0.0.1:9090")]
        gateway_addr: SocketAddr,
        /// The SSH gateway into containers (`ssh {container}@HOST -p PORT`).
        /// Default 127.0.0.1:2222, skipped with a warning when that is
        /// taken; an address given here must be free.
        #[arg(long, env = "HOOD_SSH_ADDR")]
        ssh_addr: Option<SocketAddr>,
        #[command(flatten)]
        health: health::HealthArgs,
        #[command(flatten)]
        edge: edge::EdgeArgs,
    },
    /// Runs the given roles against PostgreSQL (cluster mode).
    Serve {
        #[command(flatten)]
        opts: server::ServerOpts,
        /// Roles to serve (repeat or comma-separate).
        #[arg(long = "role", value_enum, value_delimiter = ',', required = true)]
        roles: Vec<RoleArg>,
        /// HTTP listen address. Default: 127.0.0.1:8080 with the api role,
        /// 127.0.0.1:8081 for auth without api. Roles without an HTTP API
        /// (agent-gateway, orchestrator, health, edge) open no HTTP listener
        /// unless given one here, for /healthz, /readyz and /metrics.
        /// Several replicas on one machine each need their own address.
        #[arg(long, env = "HOOD_LISTEN")]
        listen: Option<SocketAddr>,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[command(flatten)]
        fleet: server::FleetArgs,
        #[command(flatten)]
        health: health::HealthArgs,
        #[command(flatten)]
        edge: edge::EdgeArgs,
    },
    /// Applies database migrations (a separate step in cluster mode).
    Migrate {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Runs the on-host agent (started by host providers).
    Agent(agent::AgentOpts),
    /// Signs in with e-mail and password (password from HOOD_PASSWORD or stdin).
    Login {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Ends the saved session.
    Logout,
    /// Shows who you are.
    Whoami,
    /// Organizations.
    #[command(subcommand)]
    Org(cli::OrgCmd),
    /// Users of an organization.
    #[command(subcommand)]
    User(cli::UserCmd),
    /// API keys.
    #[command(subcommand)]
    Key(cli::KeyCmd),
    /// Chain profiles.
    #[command(subcommand)]
    Chain(cli::ChainCmd),
    /// Managed nodes.
    #[command(subcommand)]
    Node(cli::health::NodeCommand),
    /// Incidents raised by the health role.
    #[command(subcommand)]
    Incident(cli::health::IncidentCmd),
    /// Notification channels (webhook, Slack, Telegram, email).
    #[command(subcommand)]
    Channel(cli::health::ChannelCmd),
    /// RPC keys for the edge (plans, chain and method scopes, IP and origin allow-lists).
    #[command(subcommand)]
    RpcKey(cli::edge::RpcKeyCmd),
    /// RPC usage in hourly or daily buckets.
    Usage(cli::edge::UsageArgs),
    /// Benchmarks (each against an anchor measured in the same run).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Hosts the control plane runs nodes on.
    #[command(subcommand)]
    Host(cli::fleet::HostCmd),
    /// Allocations: slices of hosts rented by SKU (CPU, MIG slices, whole GPUs).
    #[command(subcommand)]
    Alloc(cli::alloc::AllocCmd),
    /// The audit log: one row per mutation (who, what, before and after).
    Audit(cli::alloc::AuditArgs),
    /// Storage: namespaces (buckets) and their objects.
    #[command(subcommand)]
    Storage(cli::storage::StorageCmd),
    /// Service accounts: keys that reach only what their grants name.
    #[command(subcommand)]
    ServiceAccount(cli::service_account::ServiceAccountCmd),
    /// Your notification feed (node, incident and allocation changes).
    #[command(subcommand)]
    Notification(cli::notification::NotificationCmd),
    /// Your SSH public keys (for Hood's SSH gateway).
    #[command(subcommand)]
    SshKey(cli::ssh_key::SshKeyCmd),
    /// Containers: a named image run as an allocation of a SKU.
    #[command(subcommand)]
    Container(cli::container::ContainerCmd),
    /// Durable workflows (provision, terminate, …) and operator actions.
    #[command(subcommand)]
    Workflow(cli::fleet::WorkflowCmd),
    /// Artifacts (node binaries) in the control plane's store.
    #[command(subcommand)]
    Artifact(cli::artifact::ArtifactCmd),
    /// The ledger: accounts, transfers, signed checkpoints, proofs, the audit.
    #[command(subcommand)]
    Ledger(cli::ledger::LedgerCmd),
    /// Billing: period close and the price book.
    #[command(subcommand)]
    Billing(cli::billing::BillingCmd),
    /// Subscriptions: organizations' contracts.
    #[command(subcommand)]
    Subscription(cli::billing::SubscriptionCmd),
    /// Invoices and their payments.
    #[command(subcommand)]
    Invoice(cli::billing::InvoiceCmd),
    /// Prepaid credits: balance, cut-off, top-ups.
    #[command(subcommand)]
    Credits(cli::billing::CreditsCmd),
    /// Rollouts: a chain's nodes upgraded in health-gated batches, reverted
    /// automatically when the failure budget is spent.
    #[command(subcommand)]
    Rollout(cli::rollout::RolloutCmd),
    /// X25519 key pairs for key export, and opening what was sealed to them
    /// (local: nothing is sent).
    #[command(subcommand)]
    Keys(cli::keys::KeysCmd),
}

fn init_logging(server: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if server { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("HOOD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("HOOD_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> Result<()> {
    let c = &cli.connect;
    let f = cli.output;
    match cli.command {
        Command::Up {
            opts,
            api_addr,
            auth_addr,
            gateway_addr,
            ssh_addr,
            health,
            edge,
        } => {
            server::up(
                opts,
                server::UpAddrs {
                    api: api_addr,
                    auth: auth_addr,
                    gateway: gateway_addr,
                    ssh: ssh_addr,
                },
                health,
                edge,
            )
            .await
        }
        Command::Serve {
            opts,
            roles,
            listen,
            database_url,
            mut fleet,
            health,
            edge,
        } => {
            fleet.edge = roles.contains(&RoleArg::Edge);
            fleet.orchestrator = roles.contains(&RoleArg::Orchestrator);
            fleet.agent_gateway = roles.contains(&RoleArg::AgentGateway);
            fleet.health = roles.contains(&RoleArg::Health);
            fleet.billing = roles.contains(&RoleArg::Billing);
            fleet.storage = roles.contains(&RoleArg::Storage);
            let listen = serve_listen(&roles, listen);
            let roles: Vec<HttpRole> = roles.iter().filter_map(|r| r.http_role()).collect();
            server::serve(opts, roles, listen, &database_url, fleet, health, edge).await
        }
        Command::Migrate { database_url } => server::migrate(&database_url).await,
        Command::Agent(opts) => agent::run(opts).await,
        Command::Login {
            email,
            password_stdin,
        } => cli::login(c, email, password_stdin).await,
        Command::Logout => cli::logout(c).await,
        Command::Whoami => cli::whoami(c, f).await,
        Command::Org(cmd) => cli::org(c, f, cmd).await,
        Command::User(cmd) => cli::user(c, f, cmd).await,
        Command::Key(cmd) => cli::key(c, f, cmd).await,
        Command::Chain(cmd) => cli::chain(c, f, cmd).await,
        Command::Node(cmd) => cli::health::node(c, f, cmd).await,
        Command::Incident(cmd) => cli::health::incident(c, f, cmd).await,
        Command::Channel(cmd) => cli::health::channel(c, f, cmd).await,
        Command::RpcKey(cmd) => cli::edge::rpc_key(c, f, cmd).await,
        Command::Usage(args) => cli::edge::usage(c, f, args).await,
        Command::Artifact(cmd) => cli::artifact::run(c, f, cmd).await,
        Command::Host(cmd) => cli::fleet::host(c, f, cmd).await,
        Command::Alloc(cmd) => cli::alloc::run(c, f, cmd).await,
        Command::Storage(cmd) => cli::storage::run(c, f, cmd).await,
        Command::ServiceAccount(cmd) => cli::service_account::run(c, f, cmd).await,
        Command::SshKey(cmd) => cli::ssh_key::run(c, f, cmd).await,
        Command::Container(cmd) => cli::container::run(c, f, cmd).await,
        Command::Notification(cmd) => cli::notification::run(c, f, cmd).await,
        Command::Audit(args) => cli::alloc::audit(c, f, args).await,
        Command::Bench(cmd) => bench::run(c, cmd).await,
        Command::Workflow(cmd) => cli::fleet::workflow(c, f, cmd).await,
        Command::Ledger(cmd) => cli::ledger::run(c, f, cmd).await,
        Command::Billing(cmd) => cli::billing::billing(c, f, cmd).await,
        Command::Subscription(cmd) => cli::billing::subscription(c, f, cmd).await,
        Command::Invoice(cmd) => cli::billing::invoice(c, f, cmd).await,
        Command::Credits(cmd) => cli::billing::credits(c, f, cmd).await,
        Command::Keys(cmd) => cli::keys::run(cmd),
        Command::Rollout(cmd) => cli::rollout::run(c, f, cmd).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(
        cli.command,
        Command::Up { .. } | Command::Serve { .. } | Command::Migrate { .. } | Command::Agent(_)
    ));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::collections::BTreeSet;

    /// Every address one `hood serve` process binds: HTTP, gateway, edge.
    fn bound(args: &[&str]) -> Vec<SocketAddr> {
        let mut argv = vec!["hood", "serve", "--database-url", "postgres://x/y"];
        argv.extend_from_slice(args);
        let Command::Serve {
            roles,
            listen,
            fleet,
            edge,
            opts,
            ..
        } = Cli::try_parse_from(&argv).unwrap().command
        else {
            panic!("not serve")
        };
        let mut out: Vec<SocketAddr> = serve_listen(&roles, listen).into_iter().collect();
        if roles.contains(&RoleArg::AgentGateway) {
            out.push(fleet.gateway_listen);
        }
        if roles.contains(&RoleArg::Edge) {
            out.push(edge.edge_addr);
        }
        if roles.contains(&RoleArg::Storage) {
            out.push(opts.storage.s3_addr);
        }
        out
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_role_has_its_own_default_address() {
        assert_eq!(bound(&["--role", "api"]), vec![addr("127.0.0.1:8080")]);
        assert_eq!(bound(&["--role", "api,auth"]), vec![addr("127.0.0.1:8080")]);
        assert_eq!(bound(&["--role", "auth"]), vec![addr("127.0.0.1:8081")]);
        assert_eq!(
            bound(&["--role", "agent-gateway"]),
            vec![addr("127.0.0.1:9090")]
        );
        assert_eq!(bound(&["--role", "edge"]), vec![addr("127.0.0.1:8545")]);
        assert_eq!(bound(&["--role", "storage"]), vec![addr("127.0.0.1:9000")]);
        assert_eq!(
            bound(&["--role", "api,storage", "--s3-addr", "127.0.0.1:9001"]),
            vec![addr("127.0.0.1:8080"), addr("127.0.0.1:9001")]
        );
        assert_eq!(bound(&["--role", "orchestrator"]), vec![]);
        assert_eq!(bound(&["--role", "health"]), vec![]);
        assert_eq!(bound(&["--role", "orchestrator,health"]), vec![]);
    }

    #[test]
    fn the_readme_sequence_binds_no_address_twice() {
        // One replica of every role on its defaults, the second replicas
        // with the addresses the README gives them.
        let processes: &[&[&str]] = &[
            &["--role", "api,auth"],
            &["--role", "api,auth", "--listen", "127.0.0.1:8082"],
            &["--role", "agent-gateway"],
            &["--role", "orchestrator"],
            &["--role", "orchestrator"],
            &["--role", "health"],
            &["--role", "health"],
            &["--role", "edge"],
            &["--role", "edge", "--edge-addr", "127.0.0.1:8546"],
        ];
        let mut seen = BTreeSet::new();
        for args in processes {
            for a in bound(args) {
                assert!(seen.insert(a), "{a} bound twice ({args:?})");
            }
        }
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn an_explicit_listen_address_wins_and_gives_any_role_one() {
        assert_eq!(
            bound(&["--role", "api", "--listen", "127.0.0.1:9999"]),
            vec![addr("127.0.0.1:9999")]
        );
        assert_eq!(
            bound(&["--role", "orchestrator", "--listen", "127.0.0.1:9100"]),
            vec![addr("127.0.0.1:9100")]
        );
        assert_eq!(
            bound(&["--role", "edge", "--listen", "127.0.0.1:9101"]),
            vec![addr("127.0.0.1:9101"), addr("127.0.0.1:8545")]
        );
    }
}
