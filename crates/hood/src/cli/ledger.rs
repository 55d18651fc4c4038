//! `hood ledger …`: accounts, transfers and checkpoints through the API;
//! the full audit of a database or of exports, and one proof checked
//! offline with only the public key.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{json, list, show, Format};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use hood_api::routes::ledger::{
    BatchResults, CheckpointView, CreateAccountsRequest, CreateTransfersRequest, PublicKeyView,
};
use hood_api::views::Page;
use hood_ledger::wire::{AccountRecord, InclusionProof, TransferRecord};
use hood_store::Store as _;
use hood_tlog::NoteVerifier;
use std::path::PathBuf;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum LedgerCmd {
    /// Accounts and their balances (your organization's; all for platform admins).
    Accounts {
        /// Only this ledger (1 USD, 2 CU by default).
        #[arg(long)]
        ledger: Option<u32>,
        /// Only accounts created after this timestamp (ns): paging.
        #[arg(long)]
        after: Option<u64>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Transfers, oldest first.
    Transfers {
        /// Only transfers debiting or crediting this account.
        #[arg(long)]
        account: Option<Uuid>,
        /// Only transfers recorded after this timestamp (ns): paging.
        #[arg(long)]
        after: Option<u64>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Creates accounts from a JSON batch file (`{"items": [...]}` as the API
    /// takes it; platform admins). Prints each item's result; exits non-zero
    /// if any item was refused.
    CreateAccounts {
        /// The batch (`-` reads standard input).
        #[arg(long)]
        file: PathBuf,
    },
    /// Creates transfers from a JSON batch file (`{"items": [...]}`,
    /// amounts as decimal strings; platform admins). Prints each item's
    /// result; exits non-zero if any item was refused.
    CreateTransfers {
        /// The batch (`-` reads standard input).
        #[arg(long)]
        file: PathBuf,
    },
    /// The newest signed checkpoint (`--sign`: sign one of the log as it is now).
    Checkpoint {
        #[arg(long)]
        sign: bool,
    },
    /// The checkpoint signing key (C2SP verifier key): pin it for verify-proof.
    PublicKey,
    /// A transfer's inclusion proof (JSON), to check with verify-proof.
    Proof {
        transfer_id: Uuid,
        /// Against the checkpoint of this size (default: the newest holding it).
        #[arg(long)]
        tree_size: Option<u64>,
        /// Write the proof here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Audits the whole ledger: leaf hashes, the tree, checkpoint signatures
    /// and consistency, balances against transfers. Exits non-zero naming the
    /// first row that fails.
    Verify {
        /// The database (default: the embedded one under $HOOD_HOME).
        #[arg(long, conflicts_with = "export")]
        database_url: Option<String>,
        /// A directory of daily exports (a copy of `ledger/exports/`).
        #[arg(long)]
        export: Option<PathBuf>,
        /// Pin the verifier key (string, or @file); default: the store's own
        /// key, or the export's `public-key` file.
        #[arg(long)]
        public_key: Option<String>,
        #[arg(long, env = "HOOD_HOME", default_value = ".hood")]
        home: PathBuf,
    },
    /// Checks one transfer's inclusion proof against its signed checkpoint,
    /// offline, with only the public key.
    VerifyProof {
        /// The proof (from `hood ledger proof` or the API).
        #[arg(long)]
        proof: PathBuf,
        /// The verifier key (string, or @file).
        #[arg(long)]
        public_key: String,
    },
}

/// A verifier key given inline or as `@file`.
fn verifier(arg: &str) -> Result<NoteVerifier> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the public key from {path}"))?,
        None => arg.to_owned(),
    };
    NoteVerifier::parse(text.trim()).context("the public key")
}

pub async fn run(opts: &ConnectOpts, format: Format, cmd: LedgerCmd) -> Result<()> {
    match cmd {
        LedgerCmd::Verify {
            database_url,
            export,
            public_key,
            home,
        } => return verify(database_url, export, public_key, home, format).await,
        LedgerCmd::VerifyProof { proof, public_key } => {
            let text = std::fs::read_to_string(&proof)
                .with_context(|| format!("reading {}", proof.display()))?;
            let proof: InclusionProof = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an inclusion proof", proof.display()))?;
            let checkpoint = hood_ledger::verify_proof(&proof, &verifier(&public_key)?)?;
            println!(
                "ok: transfer {} is leaf {} of the log `{}` of {} leaves signed by this key",
                proof.transfer.id, proof.leaf_index, checkpoint.origin, checkpoint.size
            );
            return Ok(());
        }
        _ => {}
    }
    let mut client = Client::new(opts)?;
    match cmd {
        LedgerCmd::Accounts {
            ledger,
            after,
            limit,
        } => {
            let mut q = vec![format!("limit={limit}")];
            q.extend(ledger.map(|l| format!("ledger={l}")));
            q.extend(after.map(|a| format!("after={a}")));
            let page: Page<AccountRecord> = client
                .get(&format!("/api/v1/ledger/accounts?{}", q.join("&")))
                .await?;
            list(format, &page, columns::LEDGER_ACCOUNT)
        }
        LedgerCmd::Transfers {
            account,
            after,
            limit,
        } => {
            let mut q = vec![format!("limit={limit}")];
            q.extend(account.map(|a| format!("account_id={a}")));
            q.extend(after.map(|a| format!("after={a}")));
            let page: Page<TransferRecord> = client
                .get(&format!("/api/v1/ledger/transfers?{}", q.join("&")))
                .await?;
            list(format, &page, columns::LEDGER_TRANSFER)
        }
        LedgerCmd::CreateAccounts { file } => {
            let batch: CreateAccountsRequest = read_batch(&file)?;
            let answer: BatchResults = client.post("/api/v1/ledger/accounts", &batch).await?;
            batch_outcome(format, &answer)
        }
        LedgerCmd::CreateTransfers { file } => {
            let batch: CreateTransfersRequest = read_batch(&file)?;
            let answer: BatchResults = client.post("/api/v1/ledger/transfers", &batch).await?;
            batch_outcome(format, &answer)
        }
        LedgerCmd::Checkpoint { sign } => {
            let checkpoint: CheckpointView = if sign {
                client
                    .post("/api/v1/ledger/checkpoints", &serde_json::json!({}))
                    .await?
            } else {
                let page: Page<CheckpointView> =
                    client.get("/api/v1/ledger/checkpoints?limit=1").await?;
                match page.items.into_iter().next() {
                    Some(c) => c,
                    None => bail!("no checkpoint yet: `hood ledger checkpoint --sign` signs one"),
                }
            };
            match format {
                Format::Json => json(&checkpoint),
                Format::Table => {
                    show(format, &checkpoint, columns::LEDGER_CHECKPOINT)?;
                    print!("\n{}", checkpoint.signed_note);
                    Ok(())
                }
            }
        }
        LedgerCmd::PublicKey => {
            let key: PublicKeyView = client.get("/api/v1/ledger/public-key").await?;
            match format {
                Format::Json => json(&key),
                Format::Table => {
                    println!("{}", key.verifier_key);
                    Ok(())
                }
            }
        }
        LedgerCmd::Proof {
            transfer_id,
            tree_size,
            out,
        } => {
            let path = match tree_size {
                Some(n) => format!("/api/v1/ledger/transfers/{transfer_id}/proof?tree_size={n}"),
                None => format!("/api/v1/ledger/transfers/{transfer_id}/proof"),
            };
            let proof: InclusionProof = client.get(&path).await?;
            match out {
                Some(file) => {
                    let text = serde_json::to_string_pretty(&proof)?;
                    std::fs::write(&file, text + "\n")
                        .with_context(|| format!("writing {}", file.display()))?;
                    println!(
                        "proof of leaf {} in a log of {} leaves written to {}",
                        proof.leaf_index,
                        proof.tree_size,
                        file.display()
                    );
                    Ok(())
                }
                None => json(&proof),
            }
        }
        LedgerCmd::Verify { .. } | LedgerCmd::VerifyProof { .. } => Ok(()),
    }
}

/// A batch file as the API takes it (`-`: standard input).
fn read_batch<T: serde::de::DeserializeOwned>(file: &std::path::Path) -> Result<T> {
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the batch from stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a batch: want {{\"items\": [...]}} with the API's fields",
            file.display()
        )
    })
}

/// Prints each item's result; an error if any item was refused (`exists`
/// counts as done: the same item was recorded before).
fn batch_outcome(format: Format, answer: &BatchResults) -> Result<()> {
    match format {
        Format::Json => json(answer)?,
        Format::Table => print!(
            "{}",
            super::output::table(&answer.results, columns::LEDGER_RESULT)
        ),
    }
    let refused = answer
        .results
        .iter()
        .filter(|r| r.result != "ok" && r.result != "exists")
        .count();
    if refused > 0 {
        bail!("{refused} of {} items refused", answer.results.len());
    }
    Ok(())
}

async fn verify(
    database_url: Option<String>,
    export: Option<PathBuf>,
    public_key: Option<String>,
    home: PathBuf,
    format: Format,
) -> Result<()> {
    let pinned = public_key.as_deref().map(verifier).transpose()?;
    let report = match export {
        Some(dir) => {
            let verifier = match pinned {
                Some(v) => v,
                None => {
                    let file = dir.join(hood_ledger::verify::EXPORT_PUBLIC_KEY);
                    verifier(&format!("@{}", file.display())).with_context(|| {
                        format!("no --public-key, and no {} to read it from", file.display())
                    })?
                }
            };
            hood_ledger::verify_export(&dir, &verifier)?
        }
        None => {
            let url = match database_url {
                Some(u) => u,
                None => {
                    let db = home.join("hood.db");
                    if !db.is_file() {
                        bail!(
                            "no database at {} (set --database-url or HOOD_HOME)",
                            db.display()
                        );
                    }
                    format!("sqlite://{}", db.display())
                }
            };
            let store = hood_store::connect(&url)
                .await
                .with_context(|| format!("connecting to {}", hood_store::redact_url(&url)))?;
            store
                .check_schema()
                .await
                .context("checking the database schema")?;
            hood_ledger::verify_store(&*store, pinned.as_ref()).await?
        }
    };
    match format {
        Format::Json => json(&serde_json::json!({
            "ok": true,
            "leaves": report.leaves,
            "accounts": report.accounts,
            "transfers": report.transfers,
            "checkpoints": report.checkpoints,
            "root": hex::encode(report.root),
        })),
        Format::Table => {
            println!(
                "ok: {} leaves ({} accounts, {} transfers), {} checkpoints, root {}",
                report.leaves,
                report.accounts,
                report.transfers,
                report.checkpoints,
                hex::encode(report.root)
            );
            Ok(())
        }
    }
}
