//! The CA in the store: created once, sealed under the master key, and the
//! same CA for every replica that starts at the same time — on SQLite and
//! on PostgreSQL (`HOOD_TEST_POSTGRES_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hood_domain::{HostId, Timestamp};
use hood_gateway::load_or_create_ca;
use hood_identity::master_key::MasterKey;
use hood_pki::{HostKey, PeerIdentity, CA_SEAL_AAD};
use hood_store::Store;
use std::sync::Arc;
use std::time::Duration;

const NOW: Timestamp = Timestamp(1_760_000_000_000);

async fn replicas_racing_end_with_one_ca(url: &str) {
    let first: Arc<dyn Store> = hood_store::connect(url).await.unwrap();
    first.migrate().await.unwrap();
    let master = MasterKey::generate();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let store = hood_store::connect(url).await.unwrap();
        let master = master.clone();
        tasks.push(tokio::spawn(async move {
            load_or_create_ca(&*store, &master, NOW)
                .await
                .unwrap()
                .cert_pem()
                .to_owned()
        }));
    }
    let mut pems = Vec::new();
    for t in tasks {
        pems.push(t.await.unwrap());
    }
    pems.dedup();
    assert_eq!(pems.len(), 1, "every replica uses the same CA");

    // The stored key is sealed: not PEM in clear, and bound to its purpose.
    let record = first.get_ca().await.unwrap().unwrap();
    assert_eq!(record.cert_pem, pems[0]);
    assert!(!String::from_utf8_lossy(&record.sealed_key).contains("PRIVATE KEY"));
    assert!(master.open(&record.sealed_key, b"other").is_err());
    assert!(master.open(&record.sealed_key, CA_SEAL_AAD).is_ok());
    // Another master key cannot open it.
    assert!(load_or_create_ca(&*first, &MasterKey::generate(), NOW)
        .await
        .is_err());

    // A reloaded CA signs certificates its original would: same issuer.
    let ca = load_or_create_ca(&*first, &master, NOW).await.unwrap();
    let host = HostId::from_uuid(uuid::Uuid::now_v7());
    let csr = HostKey::generate().unwrap().csr_pem("h").unwrap();
    let issued = ca
        .sign_host_csr(host, &csr, Duration::from_secs(60), NOW)
        .unwrap();
    assert_eq!(
        PeerIdentity::from_pem(&issued.cert_pem).unwrap().host_id,
        host
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_replicas_racing_end_with_one_ca() {
    let dir = tempfile::tempdir().unwrap();
    replicas_racing_end_with_one_ca(&hood_testkit::sqlite_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_replicas_racing_end_with_one_ca() {
    let Some(db) = hood_testkit::PgDatabase::create("pki::replicas_racing_end_with_one_ca").await
    else {
        return;
    };
    replicas_racing_end_with_one_ca(&db.url).await;
}
