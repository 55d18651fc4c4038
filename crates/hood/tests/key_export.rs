//! Key export end to end on `hood up`: a managed anvil node's key
//! material, sealed to an X25519 key made by PyNaCl (libsodium, a library
//! no one here wrote), opens in PyNaCl to exactly what the store holds;
//! the CLI's `hood keys generate` / `hood node export-keys` / `hood keys
//! open` do the same; a non-admin is refused; every export is in the
//! node's events.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::{get_json, wait_for};
use common::{hood_cli, hood_up, push_anvil, read_admin_key, temp_home, KillUnder};
use hood_domain::NodeId;
use hood_identity::envelope::{open_data_key, open_node_material};
use hood_identity::master_key::MasterKey;
use serde_json::{json, Value};
use std::time::Duration;

/// PyNaCl: `generate` prints a key pair (base64 secret, public); `open
/// SECRET SEALED` prints the opened box as hex.
const PYNACL: &str = r#"
import base64, sys
from nacl.public import PrivateKey, SealedBox
if sys.argv[1] == "generate":
    k = PrivateKey.generate()
    print(base64.b64encode(bytes(k)).decode(), base64.b64encode(bytes(k.public_key)).decode())
else:
    k = PrivateKey(base64.b64decode(sys.argv[2]))
    print(SealedBox(k).decrypt(base64.b64decode(sys.argv[3])).hex())
"#;

fn pynacl(python: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(PYNACL)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_keys_open_in_pynacl_to_the_stored_material() {
    let Some(anvil) = hood_testkit::anvil_bin("key_export") else {
        return;
    };
    let Some(python) = hood_testkit::pynacl_python("key_export") else {
        return;
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &[("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into())]);
    let api = hood.url("api");
    let admin = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", admin.clone())];
    push_anvil(&anvil, &env);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{api}/api/v1/nodes"))
        .bearer_auth(&admin)
        .json(&json!({"chain": "ethereum-anvil", "name": "keyed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let created: Value = r.json().await.unwrap();
    let node_id = created["node"]["id"].as_str().unwrap().to_owned();
    let node_url = format!("{api}/api/v1/nodes/{node_id}");
    wait_for("healthy", Duration::from_secs(60), async || {
        let n = get_json(&http, &node_url, &admin).await;
        assert_ne!(n["state"], "failed", "{n}");
        (n["state"] == "healthy").then_some(n)
    })
    .await;

    // What the store holds, opened with the installation's master key.
    let store: std::sync::Arc<dyn hood_store::Store> =
        hood_store::connect(&format!("sqlite://{}", home.join("hood.db").display()))
            .await
            .unwrap();
    let id: NodeId = node_id.parse().unwrap();
    let record = store.get_node_keys(id).await.unwrap().unwrap();
    let (master, _) = MasterKey::load_or_create(&home.join("master.key")).unwrap();
    let dek = open_data_key(&master, &node_id, &record.sealed_data_key).unwrap();
    let stored = hex::encode(open_node_material(&dek, &node_id, &record.ciphertext).unwrap());

    // PyNaCl makes the key pair and opens the export.
    let pair = pynacl(&python, &["generate"]);
    let (secret, public) = pair.split_once(' ').unwrap();
    let export_url = format!("{node_url}/key-export");
    let r = http
        .post(&export_url)
        .bearer_auth(&admin)
        .json(&json!({"public_key": public}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let export: Value = r.json().await.unwrap();
    assert_eq!(export["fingerprint"], record.fingerprint.as_str());
    let opened = pynacl(
        &python,
        &["open", secret, export["sealed"].as_str().unwrap()],
    );
    assert_eq!(opened, stored, "PyNaCl opens exactly the stored material");

    // Bad keys are refused with a problem naming the field.
    for bad in ["", "not base64!", "AAAA"] {
        let r = http
            .post(&export_url)
            .bearer_auth(&admin)
            .json(&json!({"public_key": bad}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad:?}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(
            problem["invalid-params"][0]["name"], "public_key",
            "{problem}"
        );
    }

    // An operator's key may not export.
    let (ok, out, err) = hood_cli(
        &["-o", "json", "key", "create", "ops", "--role", "operator"],
        &env,
        None,
    );
    assert!(ok, "{out} {err}");
    let operator: Value = serde_json::from_str(&out).unwrap();
    let r = http
        .post(&export_url)
        .bearer_auth(operator["token"].as_str().unwrap())
        .json(&json!({"public_key": public}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The CLI end to end: generate, export, open.
    let secret_file = dir.path().join("me.key");
    let public_file = dir.path().join("me.pub");
    let cli = |args: &[&str]| {
        let (ok, out, err) = hood_cli(args, &env, None);
        assert!(ok, "hood {args:?}: {out} {err}");
        out
    };
    cli(&[
        "keys",
        "generate",
        "--secret-key",
        secret_file.to_str().unwrap(),
        "--public-key",
        public_file.to_str().unwrap(),
    ]);
    let export_file = dir.path().join("export.json");
    let out = cli(&[
        "-o",
        "json",
        "node",
        "export-keys",
        &node_id,
        "--public-key",
        public_file.to_str().unwrap(),
    ]);
    std::fs::write(&export_file, &out).unwrap();
    let opened = cli(&[
        "keys",
        "open",
        "--secret-key",
        secret_file.to_str().unwrap(),
        "--sealed",
        export_file.to_str().unwrap(),
    ]);
    assert_eq!(opened.trim(), stored);
    // Another secret key does not open it: a plain message, exit non-zero.
    let (ok, _, err) = hood_cli(
        &[
            "keys",
            "open",
            "--secret-key",
            dir.path().join("missing.key").to_str().unwrap(),
            "--sealed",
            export_file.to_str().unwrap(),
        ],
        &env,
        None,
    );
    assert!(!ok && err.contains("missing.key"), "{err}");

    // Both exports are in the node's history.
    let events = get_json(&http, &format!("{node_url}/events?limit=1000"), &admin).await;
    let exports = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "key_export")
        .count();
    assert_eq!(exports, 2, "{events}");
    hood.stop("-TERM");
}
