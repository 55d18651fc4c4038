//! The CLI against a real `hood up`: org → user → login → key flows, table
//! and JSON output, plain errors with non-zero exits, offline chain lint.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::{hood_cli, hood_up, temp_home};
use serde_json::Value;

struct Cli {
    env: Vec<(&'static str, String)>,
}

impl Cli {
    fn run(&self, args: &[&str]) -> String {
        let (ok, out, err) = hood_cli(args, &self.env, None);
        assert!(ok, "hood {args:?} failed: {err}");
        out
    }
    fn run_stdin(&self, args: &[&str], stdin: &str) -> String {
        let (ok, out, err) = hood_cli(args, &self.env, Some(stdin));
        assert!(ok, "hood {args:?} failed: {err}");
        out
    }
    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-o", "json"];
        full.extend_from_slice(args);
        serde_json::from_str(&self.run(&full)).expect("json output")
    }
    fn fails(&self, args: &[&str]) -> String {
        let (ok, _, err) = hood_cli(args, &self.env, None);
        assert!(!ok, "hood {args:?} should fail");
        assert!(!err.contains("panicked"), "no panic: {err}");
        err
    }
}

#[test]
fn cli_drives_identity_flows_end_to_end() {
    let (dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let server = hood.url("api");
    let config = dir.path().join("cli.json");
    let base = vec![
        ("HOOD_SERVER", server.clone()),
        ("HOOD_HOME", home.display().to_string()),
        ("HOOD_CONFIG", config.display().to_string()),
    ];
    // Without a login, the CLI uses the admin key of the local `hood up`.
    let admin = Cli { env: base.clone() };
    let me = admin.json(&["whoami"]);
    assert_eq!(me["user"]["email"], "admin@hood.local");

    let table = admin.run(&["org", "create", "acme", "--name", "Acme Corp"]);
    assert!(
        table.starts_with("ID") && table.contains("acme"),
        "table output: {table}"
    );
    let orgs = admin.json(&["org", "list"]);
    let acme = orgs["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|o| o["slug"] == "acme")
        .expect("acme listed")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    admin.run_stdin(
        &[
            "user",
            "create",
            "ops@acme.test",
            "--org",
            &acme,
            "--role",
            "admin",
            "--password-stdin",
        ],
        "a long enough password\n",
    );
    let users = admin.json(&["user", "list", "--org", &acme]);
    assert_eq!(users["items"][0]["email"], "ops@acme.test");

    // Bad input: a plain message and a non-zero exit.
    let err = admin.fails(&["org", "create", "Not A Slug"]);
    assert!(err.contains("slug"), "{err}");
    let err = admin.fails(&["user", "create", "x@acme.test", "--org", "nope"]);
    assert!(err.contains("not a valid id"), "{err}");

    // Log in as the new user; the session is saved and used from then on.
    let ops = Cli { env: base.clone() };
    let out = ops.run_stdin(
        &["login", "--email", "ops@acme.test", "--password-stdin"],
        "a long enough password\n",
    );
    assert!(out.contains("logged in"), "{out}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&config).expect("config"))
        .expect("config json");
    assert!(saved["refresh_token"].is_string());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "session file is private");
    }
    let me = ops.json(&["whoami"]);
    assert_eq!(me["user"]["email"], "ops@acme.test");
    assert_eq!(me["credential"], "session");

    let created = ops.json(&[
        "key",
        "create",
        "deployer",
        "--role",
        "operator",
        "--expires-in-days",
        "30",
    ]);
    let token = created["token"].as_str().expect("token").to_owned();
    let key_id = created["key"]["id"].as_str().expect("id").to_owned();
    let with_key = Cli {
        env: vec![
            ("HOOD_SERVER", server.clone()),
            ("HOOD_TOKEN", token.clone()),
            ("HOOD_CONFIG", config.display().to_string()),
        ],
    };
    assert_eq!(with_key.json(&["whoami"])["credential"], "api_key");
    let keys = ops.json(&["key", "list"]);
    assert!(keys["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|k| k["id"] == key_id.as_str()));
    assert!(
        !ops.run(&["key", "list"]).contains(&token),
        "secret never listed"
    );
    ops.run(&["key", "revoke", &key_id]);
    let err = with_key.fails(&["whoami"]);
    assert!(err.contains("revoked"), "{err}");

    let chains = ops.run(&["chain", "list"]);
    assert!(chains.contains("ethereum-anvil"), "{chains}");

    ops.run(&["logout"]);
    assert!(!config.exists(), "logout removes the saved session");

    // Unreachable server: plain error, non-zero exit.
    let nowhere = Cli {
        env: vec![
            ("HOOD_SERVER", "http://127.0.0.1:9".into()),
            ("HOOD_TOKEN", "hood_x_y".into()),
        ],
    };
    let err = nowhere.fails(&["whoami"]);
    assert!(err.contains("cannot reach Hood"), "{err}");
}

#[test]
fn chain_lint_names_file_and_field_of_a_broken_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chains = dir.path().join("chains");
    // Start from the shipped definitions, then break one field.
    copy_dir(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../chains")),
        &chains,
    );
    let cli = Cli { env: vec![] };
    let out = cli.run(&["chain", "lint", chains.to_str().expect("path")]);
    assert!(out.contains("valid"), "{out}");

    let profile = chains.join("ethereum-anvil/profile.yaml");
    let text = std::fs::read_to_string(&profile).expect("profile");
    std::fs::write(&profile, format!("{text}\nunexpected_field: 1\n")).expect("write");
    let err = cli.fails(&["chain", "lint", chains.to_str().expect("path")]);
    assert!(
        err.contains("ethereum-anvil/profile.yaml"),
        "names the file: {err}"
    );
    assert!(err.contains("unexpected_field"), "names the field: {err}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
