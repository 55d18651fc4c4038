//! The CLI against a real `hood up`: org → user → login → key flows, a
//! managed node from create to delete with its host, workflow, events, logs
//! and uptime, table and JSON output, plain errors with non-zero exits
//! (an answer the CLI cannot read included), offline chain lint.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::{hood_cli, hood_up, push_anvil, temp_home, KillUnder};
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
    let shown = admin.json(&["org", "show", &acme]);
    assert_eq!(shown["name"], "Acme Corp");

    // A user's whole life through the CLI: create, show, update, delete.
    let temp = admin.json(&[
        "user",
        "create",
        "temp@acme.test",
        "--org",
        &acme,
        "--name",
        "Temp",
    ]);
    let temp_id = temp["id"].as_str().expect("id").to_owned();
    assert_eq!(temp["role"], "viewer", "the default role");
    let table = admin.run(&["user", "show", &temp_id, "--org", &acme]);
    assert!(
        table.starts_with("ID") && table.contains("temp@acme.test") && table.contains("Temp"),
        "{table}"
    );
    let updated = admin.json(&[
        "user", "update", &temp_id, "--org", &acme, "--role", "operator", "--name", "Temp Ops",
    ]);
    assert_eq!(updated["role"], "operator");
    assert_eq!(updated["display_name"], "Temp Ops");
    assert_eq!(updated["email"], "temp@acme.test", "unchanged");
    let out = admin.run(&["user", "delete", &temp_id, "--org", &acme]);
    assert!(out.contains("deleted"), "{out}");
    let err = admin.fails(&["user", "show", &temp_id, "--org", &acme]);
    assert!(err.contains("not found") && err.contains("404"), "{err}");

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
    let shown = ops.json(&["key", "show", &key_id]);
    assert_eq!(shown["name"], "deployer");
    assert!(
        shown.get("token").is_none(),
        "the secret is shown once only"
    );
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
    let anvil = ops.json(&["chain", "show", "ethereum-anvil"]);
    assert_eq!(anvil["family"], "evm");
    assert!(anvil["node_types"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));

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

/// A managed node through the CLI alone: the artifact it needs, create
/// (followed until healthy), the operator's views of it, delete (followed
/// until terminated).
#[test]
fn cli_drives_a_node_from_create_to_delete() {
    let Some(anvil) = hood_testkit::anvil_bin("cli_drives_a_node_from_create_to_delete") else {
        return;
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &[]);
    let cli = Cli {
        env: vec![
            ("HOOD_SERVER", hood.url("api")),
            ("HOOD_HOME", home.display().to_string()),
            (
                "HOOD_CONFIG",
                dir.path().join("cli.json").display().to_string(),
            ),
        ],
    };
    push_anvil(&anvil, &cli.env);
    let artifacts = cli.json(&["artifact", "list"]);
    assert_eq!(artifacts["items"][0]["name"], "anvil-linux-amd64");
    let sha256 = artifacts["items"][0]["sha256"].as_str().expect("sha256");
    let shown = cli.run(&["artifact", "show", "anvil-linux-amd64", "1.5.1"]);
    assert!(
        shown.contains("CONTENT_TYPE") && shown.contains(sha256),
        "{shown}"
    );

    let node = cli.json(&[
        "node",
        "create",
        "--chain",
        "ethereum-anvil",
        "--name",
        "cli-1",
        "--timeout",
        "120",
    ]);
    assert_eq!(node["state"], "healthy", "{node}");
    let id = node["id"].as_str().expect("id").to_owned();
    let host_id = node["host_id"]
        .as_str()
        .expect("placed on a host")
        .to_owned();

    let table = cli.run(&["node", "list"]);
    let row = table
        .lines()
        .find(|l| l.contains("cli-1"))
        .unwrap_or_else(|| panic!("cli-1 listed: {table}"));
    assert!(
        row.contains(&id) && row.contains("healthy") && row.contains("http://"),
        "{table}"
    );
    let shown = cli.json(&["node", "show", &id]);
    assert_eq!(shown["sync_status"], "synced");
    let events = cli.json(&["node", "events", &id]);
    let transitions: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["to_state"].as_str())
        .collect();
    assert_eq!(transitions, ["provisioning", "syncing", "healthy"]);
    assert!(cli.run(&["node", "events", &id]).starts_with("SEQ"));
    let logs = cli.run(&["node", "logs", &id, "--lines", "20"]);
    assert!(
        !logs.is_empty() && logs.lines().all(|l| l.starts_with("anvil | ")),
        "{logs}"
    );
    let uptime = cli.run(&["node", "uptime", &id]);
    assert!(
        uptime.starts_with(&format!("node {id}: uptime over 24h: ")),
        "{uptime}"
    );

    let hosts = cli.json(&["host", "list"]);
    assert!(
        hosts["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|h| h["id"] == host_id.as_str()),
        "{hosts}"
    );
    let host = cli.run(&["host", "show", &host_id]);
    assert!(host.contains("ready") && host.contains("true"), "{host}");
    let workflow_id = format!("provision-node-{id}");
    let workflows = cli.json(&["workflow", "list", "--name", "provision-node"]);
    assert_eq!(workflows["items"][0]["id"], workflow_id.as_str());
    let workflow = cli.run(&["workflow", "show", &workflow_id]);
    assert!(
        workflow.contains("completed")
            && workflow.contains("INDEX")
            && workflow.contains("mark_healthy"),
        "{workflow}"
    );
    let err = cli.fails(&["workflow", "retry", &workflow_id]);
    assert!(err.contains(&workflow_id) && err.contains("409"), "{err}");

    let gone = cli.json(&["node", "delete", &id, "--timeout", "120"]);
    assert_eq!(gone["state"], "terminated", "{gone}");
    assert_eq!(cli.json(&["node", "show", &id])["state"], "terminated");
}

/// A server whose answer does not fit the view the CLI expects: a plain
/// error naming the field, a non-zero exit, no panic.
#[test]
fn an_answer_the_cli_cannot_read_is_a_plain_error() {
    let server = AnswerServer::start(|path| match path {
        // `user` lacks most of its fields (a server of another version).
        "/api/v1/me" => {
            r#"{"user": {"email": "a@b.c"}, "org": {}, "credential": "api_key", "permissions": []}"#
        }
        // `id` is not a UUID.
        _ => r#"{"items": [{"id": 7}]}"#,
    });
    let cli = Cli {
        env: vec![
            ("HOOD_SERVER", server.url.clone()),
            ("HOOD_TOKEN", "hood_x_y".into()),
        ],
    };
    let err = cli.fails(&["whoami"]);
    assert!(
        err.contains("unexpected answer from the server: at `user`: missing field `id`"),
        "{err}"
    );
    assert!(err.contains("is the CLI older than the server?"), "{err}");
    let err = cli.fails(&["-o", "json", "node", "list"]);
    assert!(
        err.contains("unexpected answer from the server: at `items[0].id`"),
        "{err}"
    );
}

/// A one-thread HTTP server answering every request with `200` and the
/// JSON `answer` picks by path.
struct AnswerServer {
    url: String,
}

impl AnswerServer {
    fn start(answer: fn(&str) -> &'static str) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // Skip the headers; the CLI's GETs carry no body.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let body = answer(path);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url }
    }
}

/// Runs OpenSSH's `ssh-keygen` to make a key pair at `path` (no
/// passphrase); answers the public key's path.
fn ssh_keygen(path: &std::path::Path, args: &[&str]) -> std::path::PathBuf {
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-N", ""])
        .args(args)
        .arg("-f")
        .arg(path)
        .status()
        .expect("ssh-keygen (OpenSSH) runs");
    assert!(status.success());
    path.with_extension("pub")
}

/// The fingerprint `ssh-keygen -l` prints for a key file.
fn openssh_fingerprint(public: &std::path::Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public)
        .output()
        .expect("ssh-keygen -l");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

#[test]
fn ssh_keys_made_by_openssh_are_kept_per_user() {
    let (dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let server = hood.url("api");
    let as_config = |name: &str| Cli {
        env: vec![
            ("HOOD_SERVER", server.clone()),
            ("HOOD_HOME", home.display().to_string()),
            ("HOOD_CONFIG", dir.path().join(name).display().to_string()),
        ],
    };
    let admin = as_config("admin.json");
    let org = admin.json(&["org", "create", "keys", "--name", "Keys"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (email, role) in [("alice@keys.test", "admin"), ("bob@keys.test", "operator")] {
        admin.run_stdin(
            &[
                "user",
                "create",
                email,
                "--org",
                &org,
                "--role",
                role,
                "--password-stdin",
            ],
            "a long enough password\n",
        );
    }
    let login = |email: &str| {
        let cli = as_config(&format!("{email}.json"));
        cli.run_stdin(
            &["login", "--email", email, "--password-stdin"],
            "a long enough password\n",
        );
        cli
    };
    let (alice, bob) = (login("alice@keys.test"), login("bob@keys.test"));

    // Keys made by OpenSSH, added from a file and from standard input.
    let ed25519 = ssh_keygen(
        &dir.path().join("id_ed25519"),
        &["-t", "ed25519", "-C", "alice@laptop"],
    );
    let ecdsa = ssh_keygen(&dir.path().join("id_ecdsa"), &["-t", "ecdsa", "-C", ""]);
    let added = alice.json(&["ssh-key", "add", ed25519.to_str().unwrap()]);
    assert_eq!(added["name"], "alice@laptop", "named by its comment");
    assert_eq!(added["algorithm"], "ssh-ed25519");
    assert_eq!(added["fingerprint"], openssh_fingerprint(&ed25519).as_str());
    let line = std::fs::read_to_string(&ed25519).unwrap();
    assert_eq!(
        added["public_key"].as_str().unwrap(),
        line.trim().trim_end_matches(" alice@laptop")
    );
    let piped = alice.run_stdin(
        &["-o", "json", "ssh-key", "add", "-", "--name", "ci runner"],
        &std::fs::read_to_string(&ecdsa).unwrap(),
    );
    let piped: Value = serde_json::from_str(&piped).unwrap();
    assert_eq!(piped["name"], "ci runner");
    assert_eq!(piped["fingerprint"], openssh_fingerprint(&ecdsa).as_str());
    let table = alice.run(&["ssh-key", "list"]);
    assert!(
        table.starts_with("ID") && table.contains("FINGERPRINT") && table.contains("ci runner"),
        "{table}"
    );
    let listed = alice.json(&["ssh-key", "list"]);
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice@laptop", "ci runner"], "oldest first");

    // Bad input: plain messages, non-zero exits, nothing stored.
    let err = alice.fails(&["ssh-key", "add", ed25519.to_str().unwrap()]);
    assert!(err.contains("already hold") && err.contains("409"), "{err}");
    let weak = ssh_keygen(
        &dir.path().join("id_rsa_weak"),
        &["-t", "rsa", "-b", "1024"],
    );
    let err = alice.fails(&["ssh-key", "add", weak.to_str().unwrap()]);
    assert!(err.contains("too short"), "{err}");
    let private = dir.path().join("id_ed25519");
    let err = alice.fails(&["ssh-key", "add", private.to_str().unwrap()]);
    assert!(err.contains("private key"), "{err}");
    let err = alice.fails(&[
        "ssh-key",
        "add",
        dir.path().join("missing.pub").to_str().unwrap(),
    ]);
    assert!(err.contains("missing.pub"), "{err}");
    assert_eq!(
        alice.json(&["ssh-key", "list"])["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Another user sees none of them and removes none; the same key may be
    // theirs too.
    assert!(bob.json(&["ssh-key", "list"])["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let id = added["id"].as_str().unwrap();
    let err = bob.fails(&["ssh-key", "remove", id]);
    assert!(err.contains("404"), "{err}");
    bob.json(&["ssh-key", "add", ed25519.to_str().unwrap()]);

    // A service account's key holds no SSH keys.
    let account = alice.json(&[
        "service-account",
        "create",
        "robot",
        "--grant",
        "storage.keys.namespaces.logs=read",
    ]);
    let token = alice.json(&["service-account", "key", account["id"].as_str().unwrap()])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let robot = Cli {
        env: vec![("HOOD_SERVER", server.clone()), ("HOOD_TOKEN", token)],
    };
    let err = robot.fails(&["ssh-key", "list"]);
    assert!(err.contains("403"), "{err}");

    // Removed: gone from the list; each change has its audit row.
    let out = alice.run(&["ssh-key", "remove", id]);
    assert!(out.contains("removed"), "{out}");
    assert_eq!(
        alice.json(&["ssh-key", "list"])["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let audit = admin.json(&["audit", "--org", &org, "--resource-type", "ssh_key"]);
    let mut actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "ssh_key.add",
            "ssh_key.add",
            "ssh_key.add",
            "ssh_key.remove"
        ]
    );
}
