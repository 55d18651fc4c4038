//! The ledger end to end on a real `hood up`: batches through the API with
//! per-item results and decimal-string amounts, tenancy (another
//! organization sees only its own account, 404 otherwise), a proof fetched
//! with the CLI and checked offline with only the public key (and refused
//! once the transfer is altered), consistency between two signed
//! checkpoints, PyNaCl checking a checkpoint's Ed25519 signature, and
//! `hood ledger verify` passing on the embedded database and failing,
//! naming the transfer, after an amount is edited behind Hood's back.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::http::{Api, PASSWORD};
use common::{hood_cli, hood_up, read_admin_key, temp_home};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn cli_ok(args: &[&str], env: &[(&str, String)]) -> String {
    let (ok, out, err) = hood_cli(args, env, None);
    assert!(ok, "hood {args:?} failed: {out} {err}");
    out
}

fn cli_fails(args: &[&str], env: &[(&str, String)]) -> String {
    let (ok, out, err) = hood_cli(args, env, None);
    assert!(!ok, "hood {args:?} should fail: {out}");
    assert!(!err.contains("panicked"), "no panic: {err}");
    err
}

fn results(r: &common::http::Resp) -> Vec<String> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["result"].as_str().unwrap().to_owned())
        .collect()
}

const CASH: &str = "00000000-0000-4000-8000-00000000ca54";
const REVENUE: &str = "00000000-0000-4000-8000-0000000be7e0";
const GLOBEX: &str = "00000000-0000-4000-8000-00000000610b";

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_end_to_end_through_the_api_and_the_cli() {
    let (dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let api = Api::new(hood.url("api"));
    let admin = read_admin_key(&home);

    // The default ledgers.
    let r = api.get("/api/v1/ledger/ledgers", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["items"][0]["asset"], "USD");
    assert_eq!(r.body["items"][0]["scale"], 6);

    // Another organization, its admin, and its prepaid account.
    let r = api
        .post(
            "/api/v1/orgs",
            &admin,
            json!({"slug": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let globex_org = r.body["id"].as_str().unwrap().to_owned();
    let bob = api
        .user(&admin, &globex_org, "bob@globex.test", "admin")
        .await;
    let r = api
        .post(
            "/api/v1/ledger/accounts",
            &admin,
            json!({"items": [
                {"id": CASH, "ledger": 1, "code": 1},
                {"id": REVENUE, "ledger": 1, "code": 3},
                {"id": GLOBEX, "ledger": 1, "code": 4, "flags": 2, "org_id": globex_org},
            ]}),
        )
        .await;
    assert_eq!(results(&r), ["ok", "ok", "ok"]);
    // A customer cannot write the ledger.
    let r = api
        .post(
            "/api/v1/ledger/accounts",
            &bob,
            json!({"items": [{"id": CASH, "ledger": 1, "code": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // Top up 5 USD (micro-dollars), spend 1.25, try to overspend.
    let t = |n: u32| format!("00000000-0000-4000-9000-{n:012}");
    let r = api
        .post(
            "/api/v1/ledger/transfers",
            &admin,
            json!({"items": [
                {"id": t(1), "debit_account_id": CASH, "credit_account_id": GLOBEX, "amount": "5000000", "ledger": 1, "code": 1, "user_data_128": "340282366920938463463374607431768211455"},
                {"id": t(2), "debit_account_id": GLOBEX, "credit_account_id": REVENUE, "amount": "1250000", "ledger": 1, "code": 2},
                {"id": t(3), "debit_account_id": GLOBEX, "credit_account_id": REVENUE, "amount": "9000000", "ledger": 1, "code": 2},
            ]}),
        )
        .await;
    assert_eq!(results(&r), ["ok", "ok", "exceeds_credits"]);
    // The same transfer again: exists; a float or a negative: refused whole.
    let r = api
        .post(
            "/api/v1/ledger/transfers",
            &admin,
            json!({"items": [{"id": t(1), "debit_account_id": CASH, "credit_account_id": GLOBEX, "amount": "5000000", "ledger": 1, "code": 1, "user_data_128": "340282366920938463463374607431768211455"}]}),
        )
        .await;
    assert_eq!(results(&r), ["exists"]);
    for bad in ["1.5", "-1", "", "99999999999999999999999"] {
        let r = api
            .post(
                "/api/v1/ledger/transfers",
                &admin,
                json!({"items": [{"id": t(9), "debit_account_id": CASH, "credit_account_id": GLOBEX, "amount": bad, "ledger": 1, "code": 1}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text);
    }

    // Tenancy: bob sees his account and its transfers, nothing else.
    let r = api.get("/api/v1/ledger/accounts", &bob).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["id"], GLOBEX);
    assert_eq!(items[0]["credits_posted"], "5000000");
    assert_eq!(items[0]["debits_posted"], "1250000");
    let r = api
        .get(&format!("/api/v1/ledger/accounts/{CASH}"), &bob)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = api
        .get(&format!("/api/v1/ledger/transfers?account_id={CASH}"), &bob)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = api.get("/api/v1/ledger/transfers", &bob).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2, "{}", r.text);
    assert_eq!(
        r.body["items"][0]["user_data_128"],
        "340282366920938463463374607431768211455"
    );

    // The CLI sends batch files: an item recorded before answers `exists`
    // (success); a refused item makes it exit non-zero, naming the result.
    let admin_env = vec![
        ("HOOD_SERVER", hood.url("api")),
        ("HOOD_HOME", home.display().to_string()),
        (
            "HOOD_CONFIG",
            dir.path().join("cli.json").display().to_string(),
        ),
        ("HOOD_TOKEN", admin.clone()),
    ];
    let batch = dir.path().join("batch.json");
    std::fs::write(
        &batch,
        json!({"items": [{"id": t(1), "debit_account_id": CASH, "credit_account_id": GLOBEX, "amount": "5000000", "ledger": 1, "code": 1, "user_data_128": "340282366920938463463374607431768211455"}]}).to_string(),
    )
    .unwrap();
    let out = cli_ok(
        &[
            "ledger",
            "create-transfers",
            "--file",
            batch.to_str().unwrap(),
        ],
        &admin_env,
    );
    assert!(out.contains("exists"), "{out}");
    std::fs::write(
        &batch,
        json!({"items": [{"id": t(5), "debit_account_id": GLOBEX, "credit_account_id": REVENUE, "amount": "99999999999", "ledger": 1, "code": 2}]}).to_string(),
    )
    .unwrap();
    let (ok, out, err) = hood_cli(
        &[
            "ledger",
            "create-transfers",
            "--file",
            batch.to_str().unwrap(),
        ],
        &admin_env,
        None,
    );
    assert!(!ok && out.contains("exceeds_credits"), "{out} {err}");
    assert!(err.contains("1 of 1 items refused"), "{err}");

    // A signed checkpoint, then another after one more transfer.
    let first = api
        .post("/api/v1/ledger/checkpoints", &admin, json!({}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let r = api
        .post(
            "/api/v1/ledger/transfers",
            &admin,
            json!({"items": [{"id": t(4), "debit_account_id": GLOBEX, "credit_account_id": REVENUE, "amount": "10", "ledger": 1, "code": 2}]}),
        )
        .await;
    assert_eq!(results(&r), ["ok"]);
    let second = api
        .post("/api/v1/ledger/checkpoints", &admin, json!({}))
        .await;
    let (a, b) = (
        first.body["tree_size"].as_u64().unwrap(),
        second.body["tree_size"].as_u64().unwrap(),
    );
    assert_eq!((a, b), (5, 6));
    let r = api
        .get(&format!("/api/v1/ledger/consistency?from={a}&to={b}"), &bob)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let hash = |v: &Value| -> [u8; 32] {
        hex::decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let proof: Vec<[u8; 32]> = r.body["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(hash)
        .collect();
    hood_tlog::verify_consistency(
        a,
        b,
        &hash(&first.body["root_hash"]),
        &hash(&second.body["root_hash"]),
        &proof,
    )
    .unwrap();
    let r = api
        .get("/api/v1/ledger/consistency?from=6&to=60", &bob)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    // Bob fetches his transfer's proof with the CLI and checks it offline.
    let env = vec![
        ("HOOD_SERVER", hood.url("api")),
        ("HOOD_HOME", home.display().to_string()),
        (
            "HOOD_CONFIG",
            dir.path().join("cli.json").display().to_string(),
        ),
        ("HOOD_TOKEN", bob.clone()),
    ];
    let vkey = cli_ok(&["ledger", "public-key"], &env).trim().to_owned();
    assert!(vkey.starts_with("hood.local/ledger+"), "{vkey}");
    let proof_file = dir.path().join("proof.json");
    cli_ok(
        &[
            "ledger",
            "proof",
            &t(2),
            "--out",
            proof_file.to_str().unwrap(),
        ],
        &env,
    );
    let offline: Vec<(&str, String)> = Vec::new();
    let out = cli_ok(
        &[
            "ledger",
            "verify-proof",
            "--proof",
            proof_file.to_str().unwrap(),
            "--public-key",
            &vkey,
        ],
        &offline,
    );
    assert!(out.starts_with("ok: transfer"), "{out}");
    // Altered (one more micro-dollar), the proof no longer verifies.
    let text = std::fs::read_to_string(&proof_file).unwrap();
    let altered = dir.path().join("altered.json");
    std::fs::write(&altered, text.replace("\"1250000\"", "\"1250001\"")).unwrap();
    let err = cli_fails(
        &[
            "ledger",
            "verify-proof",
            "--proof",
            altered.to_str().unwrap(),
            "--public-key",
            &vkey,
        ],
        &offline,
    );
    assert!(err.contains("is not leaf"), "{err}");
    // Bob may not prove the platform's transfers he cannot see.
    let r = api
        .get(&format!("/api/v1/ledger/transfers/{}/proof", t(404)), &bob)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // PyNaCl (libsodium) checks the checkpoint's Ed25519 signature.
    if let Some(python) = hood_testkit::pynacl_python("ledger PyNaCl check") {
        let note = second.body["signed_note"].as_str().unwrap();
        let (text, sigs) = note.split_at(note.rfind("\n\n").unwrap() + 1);
        let sig_line = sigs.trim_start_matches('\n').lines().next().unwrap();
        let blob = sig_line.rsplit(' ').next().unwrap();
        let blob = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .unwrap();
        let key = base64::engine::general_purpose::STANDARD
            .decode(vkey.splitn(3, '+').nth(2).unwrap())
            .unwrap();
        let script = "import sys, nacl.signing\n\
            key, sig, msg = (bytes.fromhex(a) for a in sys.argv[1:4])\n\
            nacl.signing.VerifyKey(key).verify(msg, sig)\n\
            print('verified')\n";
        let run = |msg: &[u8]| {
            std::process::Command::new(&python)
                .args([
                    "-c",
                    script,
                    &hex::encode(&key[1..]),
                    &hex::encode(&blob[4..]),
                    &hex::encode(msg),
                ])
                .output()
                .unwrap()
        };
        let ok = run(text.as_bytes());
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let forged = run(text.replace("\n6\n", "\n7\n").as_bytes());
        assert!(
            !forged.status.success(),
            "a changed size fails in PyNaCl too"
        );
    }

    // Stopped, the embedded database audits clean; an edited amount fails
    // the audit, naming the transfer.
    let exports = home.join("artifacts/ledger/exports");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !exports.join("public-key").is_file() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    hood.stop("-TERM");
    let local = vec![("HOOD_HOME", home.display().to_string())];
    let out = cli_ok(&["ledger", "verify"], &local);
    assert!(
        out.starts_with("ok: 6 leaves (3 accounts, 3 transfers)"),
        "{out}"
    );
    // The upkeep exported the day before `hood up` started (nothing was
    // logged then): its directory audits clean with the public key.
    let out = cli_ok(
        &[
            "ledger",
            "verify",
            "--export",
            exports.to_str().unwrap(),
            "--public-key",
            &vkey,
        ],
        &local,
    );
    assert!(out.starts_with("ok: 0 leaves"), "{out}");
    let db = format!("sqlite://{}", home.join("hood.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query("UPDATE ledger_transfers SET amount = 1 WHERE id = ?")
        .bind(t(4))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = cli_fails(&["ledger", "verify", "--database-url", &db], &offline);
    assert!(err.contains(&format!("transfer {}", t(4))), "{err}");
    let _ = PASSWORD;
}
