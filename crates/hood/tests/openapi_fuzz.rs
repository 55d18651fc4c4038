//! The API document tells the whole truth: schemathesis generates valid and
//! invalid requests from `/openapi.json` of a real `hood up` and checks every
//! answer against the document (status, media type, body schema) and that
//! invalid input is refused.
//!
//! The run is bounded (examples per operation, fixed seed) so CI time stays
//! a couple of minutes and a failure reproduces with the same seed.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::{read_admin_key, temp_home, HoodProcess, KillUnder, UP_ARGS, UP_LABELS};
use std::process::Command;

/// What every answer is checked for.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,negative_data_rejection";

/// Generated cases per operation and phase: enough to cover every
/// parameter's boundaries and types (the coverage phase adds its own
/// cases), few enough for about two and a half minutes (some 10,000
/// requests) on a CI machine.
const MAX_EXAMPLES: &str = "100";

/// Fixed, so a failure seen in CI reproduces locally.
const SEED: &str = "20250131";

/// Operations left out of the fuzz run, each covered by ordinary tests.
const EXCLUDED_OPERATIONS: &[&str] = &[
    // Revoking an API key: the run could revoke the very key it
    // authenticates with (its id is in `GET /api-keys`) and every later
    // answer would be a 401. Covered in `tests/common/suite.rs`.
    "revoke_api_key",
    // Sends a real notification to whatever address a channel names: the
    // run must not send traffic off this machine. Covered against a local
    // receiver in `tests/health_api.rs`.
    "test_channel",
];

/// The operation ids of the document `api` serves.
async fn operation_ids(api: &str) -> Vec<String> {
    let doc: serde_json::Value = reqwest::get(format!("{api}/openapi.json"))
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("the document is JSON");
    let mut ids = Vec::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for op in item.as_object().expect("path item").values() {
            ids.extend(op["operationId"].as_str().map(str::to_owned));
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_as_its_openapi_document_says() {
    let Some(st) = hood_testkit::schemathesis_bin("the_api_answers_as_its_openapi_document_says")
    else {
        return;
    };
    let (dir, home) = temp_home();
    // Generated node creates start agents under the home: reap them.
    let _reaper = KillUnder(home.clone());
    // The server's log (refused pushes, invalid input…) goes to a file,
    // shown only when the run fails.
    let log = dir.path().join("hood.log");
    // Payments configured against a local fake of Stripe's API, so the
    // checkout and webhook operations answer as they do in production.
    let stripe = hood_payments::fake::FakeStripe::start()
        .await
        .expect("fake Stripe");
    let hood = HoodProcess::start_logged(
        UP_ARGS,
        &[
            ("HOOD_HOME", home.display().to_string()),
            (
                "HOOD_STRIPE_SECRET_KEY",
                hood_payments::fake::TEST_SECRET_KEY.to_owned(),
            ),
            ("HOOD_STRIPE_API_BASE", stripe.base_url().to_owned()),
            ("HOOD_STRIPE_WEBHOOK_SECRET", "whsec_fuzz".to_owned()),
        ],
        UP_LABELS,
        Some(&log),
    );
    let api = hood.url("api");
    let key = read_admin_key(&home);
    // An exclusion that names no operation would silently let the run
    // revoke its own key.
    let ids = operation_ids(&api).await;
    for op in EXCLUDED_OPERATIONS {
        assert!(
            ids.iter().any(|id| id == op),
            "no operation `{op}` to exclude"
        );
    }

    let mut cmd = Command::new(st);
    cmd.current_dir(dir.path())
        .args(["run", &format!("{api}/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        // Nothing learnt from earlier runs: every run is the same run.
        .args(["--generation-database", "none"])
        .arg("--no-color");
    for op in EXCLUDED_OPERATIONS {
        cmd.args(["--exclude-operation-id", op]);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("schemathesis thread")
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(50).collect();
        panic!(
            "schemathesis found answers the document does not describe:\n{stdout}\n{stderr}\n\
             last lines of the server's log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    // The run really tested the API (not, say, an empty document).
    let tested = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    assert!(tested >= 50, "only {tested} operations tested:\n{stdout}");
    drop(hood);
}
