#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The ledger's services on a real SQLite database: signed checkpoints and
//! proofs a customer checks offline, the full audit and what it catches
//! (an edited amount, a deleted transfer, two transfers reordered, an
//! edited balance), exports audited from a directory, and the upkeep.

use hood_domain::ledger::{AccountFlags, CreateTransferResult as TR, NewTransfer, TransferFlags};
use hood_identity::master_key::MasterKey;
use hood_ledger::export::Exporter;
use hood_ledger::upkeep::{upkeep_once, UpkeepConfig};
use hood_ledger::wire::InclusionProof;
use hood_ledger::{verify_export, verify_proof, verify_store, LedgerError, LedgerLog};
use hood_store::ledger::LedgerStore;
use hood_store::Store as _;
use hood_testkit::ledger::*;
use hood_tlog::{verify_consistency, Checkpoint, NoteVerifier};
use std::sync::Arc;

struct Fixture {
    _dir: tempfile::TempDir,
    url: String,
    store: Arc<dyn hood_store::Store>,
    log: LedgerLog,
    master: MasterKey,
}

/// Nanoseconds of the test's ledger clock (now, so holds expire in real
/// time only when a test asks).
fn now_ns() -> u64 {
    u64::try_from(hood_clock::now().millis()).unwrap() * 1_000_000
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = hood_testkit::sqlite_url(&dir);
    let store = hood_store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let master = MasterKey::generate();
    let ledger_store: Arc<dyn LedgerStore> = store.clone();
    let log = LedgerLog::open(ledger_store, &master, "hood.test/ledger")
        .await
        .unwrap();
    for l in ledgers() {
        store.ensure_ledger(&l, hood_clock::now()).await.unwrap();
    }
    let r = store
        .create_accounts(
            &[
                account(1, USD, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
                account(2, USD, 0),
                account(3, USD, 0),
            ],
            now_ns(),
        )
        .await
        .unwrap();
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
    Fixture {
        _dir: dir,
        url,
        store,
        log,
        master,
    }
}

async fn transfers(f: &Fixture, batch: &[NewTransfer]) {
    let r = f.store.create_transfers(batch, now_ns()).await.unwrap();
    assert!(r.iter().all(|r| *r == TR::Ok), "{r:?}");
}

/// A ledger with some history: a top-up, spending, a hold posted.
async fn busy(f: &Fixture) {
    transfers(f, &[transfer(1, 2, 1, 1_000)]).await;
    for i in 0..10 {
        transfers(f, &[transfer(10 + i, 1, 3, 7)]).await;
    }
    transfers(f, &[with(transfer(50, 1, 3, 100), TransferFlags::PENDING)]).await;
    transfers(
        f,
        &[settle(51, 50, TransferFlags::POST_PENDING_TRANSFER, 60)],
    )
    .await;
}

async fn sql(f: &Fixture, statement: &str) {
    let pool = sqlx::SqlitePool::connect(&f.url).await.unwrap();
    sqlx::raw_sql(statement).execute(&pool).await.unwrap();
    pool.close().await;
}

fn verification_error(r: Result<hood_ledger::VerifyReport, LedgerError>) -> String {
    match r {
        Err(LedgerError::Verification(m)) => m,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_proof_verifies_offline_with_only_the_public_key() {
    let f = fixture().await;
    busy(&f).await;
    let first = f.log.checkpoint().await.unwrap();
    transfers(&f, &[transfer(60, 1, 3, 5)]).await;
    let proof = f.log.transfer_proof(tid(60), None).await.unwrap();
    assert!(
        proof.tree_size > first.tree_size,
        "a new checkpoint holds it"
    );

    // The customer has the verifier key string and the proof's JSON.
    let vkey = f.log.verifier().to_string();
    let json = serde_json::to_string(&proof).unwrap();
    let theirs: InclusionProof = serde_json::from_str(&json).unwrap();
    let verifier = NoteVerifier::parse(&vkey).unwrap();
    let checkpoint = verify_proof(&theirs, &verifier).unwrap();
    assert_eq!(checkpoint.size, proof.tree_size);

    // An altered transfer (one more unit) fails against the same proof.
    let mut altered = theirs.clone();
    altered.transfer.amount = "6".into();
    let err = verify_proof(&altered, &verifier).unwrap_err().to_string();
    assert!(err.contains("is not leaf"), "{err}");
    // So does a checkpoint signed by another key.
    let other = hood_tlog::NoteSigner::from_seed("hood.test/ledger", &[1; 32]).unwrap();
    assert!(verify_proof(&theirs, &other.verifier()).is_err());

    // Consistency between the two checkpoints verifies with their roots.
    let c = f
        .log
        .consistency_proof(first.tree_size, proof.tree_size)
        .await
        .unwrap();
    let open = |note: &str| Checkpoint::open(note, &verifier).unwrap();
    let (a, b) = (open(&first.signed_note), open(&proof.checkpoint));
    let hashes: Vec<_> = c
        .proof
        .iter()
        .map(|h| hood_ledger::wire::parse_hash("proof", h).unwrap())
        .collect();
    verify_consistency(a.size, b.size, &a.root, &b.root, &hashes).unwrap();
    // A proof for sizes the log does not have is refused, not invented.
    assert!(f.log.consistency_proof(1, 10_000).await.is_err());
}

#[tokio::test]
async fn the_key_stays_sealed_under_its_master_key() {
    let f = fixture().await;
    let store: Arc<dyn LedgerStore> = f.store.clone();
    let again = LedgerLog::open(store.clone(), &f.master, "hood.test/ledger")
        .await
        .unwrap();
    assert_eq!(again.verifier(), f.log.verifier());
    let wrong = LedgerLog::open(store, &MasterKey::generate(), "hood.test/ledger").await;
    assert!(matches!(wrong, Err(LedgerError::Key(_))));
}

#[tokio::test]
async fn an_untouched_ledger_verifies() {
    let f = fixture().await;
    busy(&f).await;
    f.log.checkpoint().await.unwrap();
    transfers(&f, &[transfer(70, 1, 3, 1)]).await;
    f.log.checkpoint().await.unwrap();
    let report = verify_store(&*f.store, None).await.unwrap();
    assert_eq!(report.accounts, 3);
    assert_eq!(report.transfers, 14);
    assert_eq!(report.leaves, 17);
    assert_eq!(report.checkpoints, 2);
}

#[tokio::test]
async fn an_edited_amount_is_caught_and_named() {
    let f = fixture().await;
    busy(&f).await;
    sql(
        &f,
        &format!(
            "UPDATE ledger_transfers SET amount = 8 WHERE id = '{}'",
            tid(12)
        ),
    )
    .await;
    let m = verification_error(verify_store(&*f.store, None).await);
    assert!(m.contains(&format!("transfer {}", tid(12))), "{m}");
    assert!(m.contains("no longer hashes"), "{m}");
}

#[tokio::test]
async fn a_deleted_transfer_is_caught_and_named() {
    let f = fixture().await;
    busy(&f).await;
    sql(
        &f,
        &format!("DELETE FROM ledger_transfers WHERE id = '{}'", tid(13)),
    )
    .await;
    let m = verification_error(verify_store(&*f.store, None).await);
    assert!(m.contains(&tid(13).to_string()), "{m}");
    assert!(m.contains("no longer holds"), "{m}");
}

#[tokio::test]
async fn two_reordered_transfers_are_caught() {
    let f = fixture().await;
    busy(&f).await;
    f.log.checkpoint().await.unwrap();
    // Swap two transfers' places in the log, rows and leaves alike, so each
    // record still hashes to its leaf: only the order changed.
    let (a, b) = (tid(14), tid(15));
    sql(
        &f,
        &format!(
            "UPDATE ledger_transfers SET leaf_index = -1 WHERE id = '{a}';
             UPDATE ledger_transfers SET leaf_index = (SELECT leaf_index FROM ledger_leaves WHERE ref_id = '{a}') WHERE id = '{b}';
             UPDATE ledger_transfers SET leaf_index = (SELECT leaf_index FROM ledger_leaves WHERE ref_id = '{b}') WHERE id = '{a}';
             UPDATE ledger_leaves SET leaf_index = -1 WHERE ref_id = '{a}';
             UPDATE ledger_leaves SET leaf_index = (SELECT leaf_index FROM ledger_transfers WHERE id = '{b}') WHERE ref_id = '{b}' AND leaf_index >= 0;
             UPDATE ledger_leaves SET leaf_index = (SELECT leaf_index FROM ledger_transfers WHERE id = '{a}') WHERE ref_id = '{a}';"
        ),
    )
    .await;
    let m = verification_error(verify_store(&*f.store, None).await);
    assert!(m.contains("reordered"), "{m}");
}

#[tokio::test]
async fn an_edited_balance_is_caught_and_named() {
    let f = fixture().await;
    busy(&f).await;
    sql(
        &f,
        &format!(
            "UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = '{}'",
            aid(3)
        ),
    )
    .await;
    let m = verification_error(verify_store(&*f.store, None).await);
    assert!(
        m.contains(&format!("account {}: credits_posted", aid(3))),
        "{m}"
    );
}

#[tokio::test]
async fn a_forged_checkpoint_is_caught() {
    let f = fixture().await;
    busy(&f).await;
    let c = f.log.checkpoint().await.unwrap();
    // Re-signed by an intruder's key: the pinned public key refuses it.
    let intruder = hood_tlog::NoteSigner::from_seed("hood.test/ledger", &[9; 32]).unwrap();
    let forged = Checkpoint::open(&c.signed_note, &f.log.verifier())
        .unwrap()
        .sign(&intruder)
        .unwrap();
    sql(
        &f,
        &format!(
            "UPDATE ledger_checkpoints SET signed_note = '{}' WHERE tree_size = {}",
            forged.replace('\'', "''"),
            c.tree_size
        ),
    )
    .await;
    let m = verification_error(verify_store(&*f.store, Some(&f.log.verifier())).await);
    assert!(m.contains(&format!("checkpoint {}", c.tree_size)), "{m}");
}

#[tokio::test]
async fn daily_exports_verify_from_a_directory_and_catch_an_edit() {
    let f = fixture().await;
    busy(&f).await;
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn object_store::ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let exporter = Exporter::new(f.log.clone(), objects);
    // Tomorrow: today is a whole day behind us.
    let tomorrow = now_ns() + 86_400 * 1_000_000_000;
    let days = exporter.export_due(tomorrow).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].tree_size, 16);
    assert!(
        exporter.export_due(tomorrow).await.unwrap().is_empty(),
        "once a day"
    );
    let exports = dir.path().join("ledger/exports");
    let report = verify_export(&exports, &f.log.verifier()).unwrap();
    assert_eq!(report.leaves, 16);
    assert_eq!(report.transfers, 13);

    // One amount changed in the export file: caught, with file and line.
    let day = &days[0].day;
    let path = exports.join(day).join("leaves.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("\"amount\":\"7\"", "\"amount\":\"70\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    let m = verification_error(verify_export(&exports, &f.log.verifier()));
    assert!(m.contains(&format!("{day}/leaves.jsonl line")), "{m}");
}

#[tokio::test]
async fn the_upkeep_voids_expired_holds_and_signs_checkpoints() {
    let f = fixture().await;
    transfers(&f, &[transfer(1, 2, 1, 100)]).await;
    let hold = NewTransfer {
        timeout: 1,
        ..with(transfer(2, 1, 3, 40), TransferFlags::PENDING)
    };
    transfers(&f, &[hold]).await;
    let config = UpkeepConfig::default();
    let pass = upkeep_once(&f.log, None, &config).await.unwrap();
    assert_eq!(pass.expired, 0);
    assert!(
        pass.checkpoint.is_some(),
        "the first checkpoint is due at once"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let pass = upkeep_once(&f.log, None, &config).await.unwrap();
    assert_eq!(pass.expired, 1);
    assert_eq!(pass.checkpoint, None, "a day has not passed");
    let a = f.store.get_account(aid(1)).await.unwrap().unwrap();
    assert_eq!((a.debits_pending, a.debits_posted), (0, 0));
    verify_store(&*f.store, None).await.unwrap();
}
