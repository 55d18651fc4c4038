//! Storage end to end on the real binary (`hood up`, objects under
//! `$HOOD_HOME/storage`):
//!
//! * namespaces and objects through the CLI: a 12 MB file up and down
//!   byte for byte, a range, listing by prefix, replace and delete; the
//!   byte quota enforced exactly at its limit (also for a chunked upload
//!   that announces no length, which leaves no bytes behind); presigned
//!   URLs for one object and method that expire; public namespaces read
//!   anonymously, private ones and other organizations' not found;
//!   deletion of a namespace removes every byte; one audit row per
//!   namespace change;
//! * SIGKILL while an upload streams and while a namespace is being
//!   deleted: after a restart, no byte is left that no object accounts
//!   for, and the namespace is gone.
//! * service accounts: a key reaches only what its grants name;
//! * cluster mode: two `hood serve` replicas on PostgreSQL with the bytes
//!   in a real S3 server (moto): written through one, read through the
//!   other, a service account deleted on one refused on both at once, a
//!   namespace deleted with every byte in the bucket.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::http::{second_org, Api};
use common::{hood_cli, hood_up, read_admin_key, temp_home, HoodProcess, Rng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every file under `dir` (the storage object store's bytes).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..len).map(|_| rng.below(256) as u8).collect()
}

fn cli(env: &[(&str, String)], args: &[&str]) -> String {
    let (ok, out, err) = hood_cli(args, env, None);
    assert!(ok, "hood {args:?}: {out} {err}");
    out
}

fn cli_json(env: &[(&str, String)], args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&cli(env, &all)).expect("JSON output")
}

/// Sends a raw HTTP/1.1 request whose body is `chunks` in chunked
/// transfer encoding (no Content-Length); answers the status and body.
fn chunked_put(api: &str, path: &str, token: &str, chunks: &[Vec<u8>]) -> (u16, String) {
    let addr = api.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    for chunk in chunks {
        // The server may refuse (and close) before the last chunk.
        if write!(s, "{:x}\r\n", chunk.len()).is_err()
            || s.write_all(chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

async fn namespace_id(api: &Api, key: &str, name: &str) -> String {
    let r = api
        .get(&format!("/api/v1/storage/namespaces/{name}"), key)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

/// Waits until `check` holds (the sweeper runs every two seconds).
async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_and_objects_through_the_cli_and_the_api() {
    let (dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let key = read_admin_key(&home);
    let base = hood.url("api");
    let api = Api::new(base.clone());
    let env = vec![("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())];
    let storage_dir = home.join("storage");

    // A namespace with room for exactly 20 MB.
    let quota: u64 = 20_000_000;
    let ns = cli_json(
        &env,
        &[
            "storage",
            "ns",
            "create",
            "logs",
            "--max-bytes",
            &quota.to_string(),
        ],
    );
    assert_eq!(ns["name"], "logs");
    assert_eq!(ns["visibility"], "private");
    assert_eq!(ns["quota"]["max_bytes"], quota);
    let (ok, _, err) = hood_cli(&["storage", "ns", "create", "logs"], &env, None);
    assert!(
        !ok && err.contains("already has a namespace named `logs`"),
        "{err}"
    );
    let (ok, _, err) = hood_cli(&["storage", "ns", "create", "Bad_Name"], &env, None);
    assert!(!ok && err.contains("lowercase"), "{err}");

    // 12 MB up and down, byte for byte (more than one upload part).
    let big = random_bytes(12_000_000, 7);
    let src = dir.path().join("big.bin");
    std::fs::write(&src, &big).unwrap();
    let put = cli_json(
        &env,
        &[
            "storage",
            "put",
            "logs",
            "2026/12/big file.bin",
            src.to_str().unwrap(),
        ],
    );
    assert_eq!(put["size"], big.len());
    assert_eq!(put["key"], "2026/12/big file.bin");
    let back = dir.path().join("back.bin");
    cli(
        &env,
        &[
            "storage",
            "get",
            "logs",
            "2026/12/big file.bin",
            back.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read(&back).unwrap() == big,
        "downloaded bytes differ"
    );
    // A range.
    let part = dir.path().join("part.bin");
    cli(
        &env,
        &[
            "storage",
            "get",
            "logs",
            "2026/12/big file.bin",
            part.to_str().unwrap(),
            "--range",
            "1000000-1000999",
        ],
    );
    assert!(std::fs::read(&part).unwrap() == big[1_000_000..1_001_000]);
    let r = api
        .http
        .get(format!(
            "{base}/api/v1/storage/namespaces/logs/objects/2026/12/big%20file.bin"
        ))
        .bearer_auth(&key)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    // Tenants' bytes are never run by a browser on Hood's origin.
    assert_eq!(r.headers()["content-security-policy"], "sandbox");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 11999990-11999999/{}", big.len()).as_str()
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &big[big.len() - 10..]);
    let r = api
        .http
        .get(format!(
            "{base}/api/v1/storage/namespaces/logs/objects/2026/12/big%20file.bin"
        ))
        .bearer_auth(&key)
        .header("range", "bytes=12000000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Listing by prefix, a page at a time.
    for name in ["2026/11/a.txt", "2026/11/b.txt", "2027/01/c.txt"] {
        let small = dir.path().join("small.txt");
        std::fs::write(&small, name).unwrap();
        cli(
            &env,
            &["storage", "put", "logs", name, small.to_str().unwrap()],
        );
    }
    let listed = cli_json(&env, &["storage", "ls", "logs", "--prefix", "2026/"]);
    let keys: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["2026/11/a.txt", "2026/11/b.txt", "2026/12/big file.bin"]
    );
    let r = api
        .get("/api/v1/storage/namespaces/logs/objects?limit=2", &key)
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["next_after"], "2026/11/b.txt");
    // One folder level at a time: the CLI's `PRE` lines, the API's pages.
    let folders = cli(
        &env,
        &[
            "storage",
            "ls",
            "logs",
            "--prefix",
            "2026/",
            "--delimiter",
            "/",
        ],
    );
    let pre: Vec<&str> = folders.lines().filter(|l| l.starts_with("PRE ")).collect();
    assert_eq!(pre, ["PRE 2026/11/", "PRE 2026/12/"], "{folders}");
    let r = api
        .get(
            "/api/v1/storage/namespaces/logs/objects?delimiter=/&limit=1",
            &key,
        )
        .await;
    assert_eq!(
        r.body["prefixes"],
        serde_json::json!(["2026/"]),
        "{}",
        r.body
    );
    assert_eq!(r.body["next_after"], "2026/");
    let r = api
        .get(
            "/api/v1/storage/namespaces/logs/objects?delimiter=/&after=2026/",
            &key,
        )
        .await;
    assert_eq!(
        r.body["prefixes"],
        serde_json::json!(["2027/"]),
        "{}",
        r.body
    );
    assert_eq!(r.body["items"], serde_json::json!([]));

    // The byte quota, exactly: what is left is refused by one byte more,
    // accepted to the byte.
    let used = api.get("/api/v1/storage/namespaces/logs", &key).await.body["usage"]["bytes"]
        .as_u64()
        .unwrap();
    let left = usize::try_from(quota - used).unwrap();
    let over = dir.path().join("over.bin");
    std::fs::write(&over, vec![1u8; left + 1]).unwrap();
    let (ok, _, err) = hood_cli(
        &["storage", "put", "logs", "over.bin", over.to_str().unwrap()],
        &env,
        None,
    );
    assert!(!ok && err.contains("byte quota"), "{err}");
    // Chunked, so the server cannot know the length before the bytes come:
    // it stops reading at the first byte beyond the room and keeps none.
    let files_before = files_under(&storage_dir);
    let chunks: Vec<Vec<u8>> = (0..=(left / 1_000_000))
        .map(|_| vec![2u8; 1_000_000])
        .collect();
    let (status, answer) = chunked_put(
        &base,
        "/api/v1/storage/namespaces/logs/objects/chunked.bin",
        &key,
        &chunks,
    );
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert_eq!(
        files_under(&storage_dir),
        files_before,
        "refused bytes left behind"
    );
    std::fs::write(&over, vec![1u8; left]).unwrap();
    cli(
        &env,
        &[
            "storage",
            "put",
            "logs",
            "exact.bin",
            over.to_str().unwrap(),
        ],
    );
    let ns = api.get("/api/v1/storage/namespaces/logs", &key).await;
    assert_eq!(ns.body["usage"]["bytes"], quota);

    // Presigned URLs: one object, one method, until they expire.
    let url = cli(
        &env,
        &[
            "storage",
            "presign",
            "logs",
            "2026/11/a.txt",
            "--expires-in",
            "600",
        ],
    );
    let url = url.trim();
    assert!(url.starts_with(&base), "{url}");
    let anonymous = reqwest::Client::new();
    let r = anonymous.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "2026/11/a.txt");
    let other_key = url.replace("2026/11/a.txt", "2026/11/b.txt");
    assert_eq!(
        anonymous.get(&other_key).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        anonymous.put(url).body("x").send().await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "a GET URL does not PUT"
    );
    let put_url = cli_json(
        &env,
        &[
            "storage",
            "presign",
            "logs",
            "2026/11/a.txt",
            "--method",
            "put",
            "--expires-in",
            "1",
        ],
    )["url"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = anonymous
        .put(format!("{base}{put_url}"))
        .body("late")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("expired"),
        "{problem}"
    );

    // Public namespaces are read anonymously; private ones are not found.
    let me = api.get("/api/v1/me", &key).await;
    let org = me.body["org"]["id"].as_str().unwrap().to_owned();
    cli(&env, &["storage", "ns", "create", "site", "--public"]);
    let page = dir.path().join("index.html");
    std::fs::write(&page, "<h1>hi</h1>").unwrap();
    cli(
        &env,
        &[
            "storage",
            "put",
            "site",
            "index.html",
            page.to_str().unwrap(),
        ],
    );
    let r = anonymous
        .get(format!(
            "{base}/api/v1/storage/public/{org}/site/index.html"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "<h1>hi</h1>");
    let r = anonymous
        .get(format!(
            "{base}/api/v1/storage/public/{org}/logs/2026/11/a.txt"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Another organization sees none of it.
    let bob = second_org(&api, &key).await;
    let r = api.get("/api/v1/storage/namespaces/logs", &bob).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .get(
            "/api/v1/storage/namespaces/logs/objects/2026/11/a.txt",
            &bob,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api.get("/api/v1/storage/namespaces", &bob).await;
    assert_eq!(r.body["items"], json!([]));

    // Delete an object, then the namespace: every byte goes.
    cli(&env, &["storage", "rm", "logs", "2026/11/b.txt"]);
    let (ok, _, err) = hood_cli(&["storage", "rm", "logs", "2026/11/b.txt"], &env, None);
    assert!(!ok && err.contains("not found"), "{err}");
    let logs_id = namespace_id(&api, &key, "logs").await;
    let deleting = cli_json(&env, &["storage", "ns", "delete", "logs"]);
    assert_eq!(deleting["state"], "deleting");
    let ns_dir = storage_dir.join("namespaces").join(&logs_id);
    eventually(
        "the namespace's bytes to go",
        Duration::from_secs(20),
        || files_under(&ns_dir).is_empty(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = api.get("/api/v1/storage/namespaces/logs", &key).await;
        if r.status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "namespace still there: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // One audit row per namespace change, carrying the request's id.
    let audit = api
        .get("/api/v1/audit?resource_type=storage_namespace", &key)
        .await;
    let mut actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["resource_id"] == logs_id.as_str())
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "storage.namespace.create",
            "storage.namespace.delete",
            "storage.namespace.purge"
        ]
    );

    // An upload refused before its body was read ends its connection: the
    // body still in flight must not be read as the next request. One whose
    // body was read keeps it.
    let addr = base.trim_start_matches("http://").to_owned();
    let exchange = |addr: String, head: String, body: &'static [u8]| {
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            conn.write_all(head.as_bytes()).unwrap();
            conn.write_all(body).unwrap();
            // Everything until the server closes (a timeout here means
            // it kept the connection open for more).
            let mut answer = Vec::new();
            let _ = conn.read_to_end(&mut answer);
            String::from_utf8_lossy(&answer).to_ascii_lowercase()
        })
    };
    let refused = exchange(
        addr.clone(),
        format!(
            "PUT /api/v1/storage/namespaces/nowhere/objects/late.bin HTTP/1.1\r\nHost: hood\r\n\
             Authorization: Bearer {key}\r\nContent-Length: 1\r\n\r\n"
        ),
        b"",
    )
    .await
    .unwrap();
    assert!(refused.starts_with("http/1.1 404"), "{refused}");
    assert!(refused.contains("connection: close"), "{refused}");
    cli(&env, &["storage", "ns", "create", "kept"]);
    // Stored, then a second request on the same connection is answered.
    let stored = exchange(
        addr,
        format!(
            "PUT /api/v1/storage/namespaces/kept/objects/one.bin HTTP/1.1\r\nHost: hood\r\n\
             Authorization: Bearer {key}\r\nContent-Length: 1\r\n\r\n"
        ),
        b"zGET /healthz HTTP/1.1\r\nHost: hood\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let (first, second) = stored
        .split_once("http/1.1 200")
        .unwrap_or_else(|| panic!("the connection carried a second request: {stored}"));
    assert!(first.starts_with("http/1.1 201"), "{stored}");
    assert!(!first.contains("connection: close"), "{stored}");
    assert!(second.contains("connection: close"), "{stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_upload_and_a_deletion_leaves_no_orphaned_bytes() {
    let (dir, home) = temp_home();
    // Uploads unfinished for a second count as abandoned.
    let envs = [("HOOD_STORAGE_UPLOAD_TIMEOUT", "1".to_owned())];
    let hood = hood_up(&home, &envs);
    let key = read_admin_key(&home);
    let base = hood.url("api");
    let api = Api::new(base.clone());
    let env = vec![("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())];
    let storage_dir = home.join("storage");

    cli(&env, &["storage", "ns", "create", "keep"]);
    cli(&env, &["storage", "ns", "create", "doomed"]);
    let file = dir.path().join("obj.bin");
    std::fs::write(&file, random_bytes(4096, 3)).unwrap();
    cli(
        &env,
        &["storage", "put", "keep", "kept.bin", file.to_str().unwrap()],
    );
    for i in 0..40 {
        cli(
            &env,
            &[
                "storage",
                "put",
                "doomed",
                &format!("o/{i:03}"),
                file.to_str().unwrap(),
            ],
        );
    }
    let kept_id = namespace_id(&api, &key, "keep").await;
    let doomed_id = namespace_id(&api, &key, "doomed").await;

    // An upload announcing 64 MB streams its first 10 MB, then the server
    // is killed; so is a namespace deletion just asked for.
    let addr = base.trim_start_matches("http://").to_owned();
    let mut upload = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        upload,
        "PUT /api/v1/storage/namespaces/keep/objects/huge.bin HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {key}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        64 * 1024 * 1024
    )
    .unwrap();
    let chunk = vec![9u8; 1024 * 1024];
    for _ in 0..10 {
        upload.write_all(&chunk).unwrap();
    }
    // The staging bytes reach the disk before the kill.
    let keep_dir = storage_dir.join("namespaces").join(&kept_id);
    eventually(
        "the upload's first bytes on disk",
        Duration::from_secs(20),
        || files_under(&keep_dir).len() > 1,
    )
    .await;
    let r = api.delete("/api/v1/storage/namespaces/doomed", &key).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let status = hood.stop("-KILL");
    assert!(!status.success());
    drop(upload);

    // Restarted: the abandoned upload's bytes and the deleted namespace go;
    // the kept object stays whole.
    let hood = hood_up(&home, &envs);
    let base = hood.url("api");
    let api = Api::new(base.clone());
    let env = vec![("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())];
    eventually(
        "the abandoned upload's bytes to go",
        Duration::from_secs(30),
        || files_under(&keep_dir).len() == 1,
    )
    .await;
    eventually(
        "the deleted namespace's bytes to go",
        Duration::from_secs(30),
        || files_under(&storage_dir.join("namespaces").join(&doomed_id)).is_empty(),
    )
    .await;
    let r = api.get("/api/v1/storage/namespaces/doomed", &key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let keep = api.get("/api/v1/storage/namespaces/keep", &key).await;
    assert_eq!(keep.body["usage"], json!({"bytes": 4096, "objects": 1}));
    let back = dir.path().join("back.bin");
    cli(
        &env,
        &["storage", "get", "keep", "kept.bin", back.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&file).unwrap());
    // The name is free again.
    cli(&env, &["storage", "ns", "create", "doomed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_reaches_only_what_its_grants_name() {
    let (dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let key = read_admin_key(&home);
    let base = hood.url("api");
    let api = Api::new(base.clone());
    let env = vec![("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())];
    let slug = api.get("/api/v1/me", &key).await.body["org"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();

    let file = dir.path().join("line.txt");
    std::fs::write(&file, "a log line").unwrap();
    for ns in ["logs", "secrets"] {
        cli(&env, &["storage", "ns", "create", ns]);
        cli(
            &env,
            &["storage", "put", ns, "a.txt", file.to_str().unwrap()],
        );
    }
    let grant = format!("storage.{slug}.namespaces.logs=read");
    let account = cli_json(
        &env,
        &["service-account", "create", "log-reader", "--grant", &grant],
    );
    let id = account["id"].as_str().unwrap().to_owned();
    assert_eq!(
        account["grants"],
        json!([{"scope": format!("storage.{slug}.namespaces.logs"), "actions": ["read"]}])
    );
    let created = cli_json(&env, &["service-account", "key", &id]);
    let token = created["token"].as_str().unwrap().to_owned();

    // It reads `logs`…
    let r = api
        .get("/api/v1/storage/namespaces/logs/objects/a.txt", &token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, "a log line");
    let r = api
        .get("/api/v1/storage/namespaces/logs/objects", &token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = api.get("/api/v1/storage/namespaces", &token).await;
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["logs"], "it sees only what it may read");
    // …and nothing else: not another namespace, not a write, not another
    // service.
    for path in [
        "/api/v1/storage/namespaces/secrets/objects/a.txt",
        "/api/v1/storage/namespaces/secrets",
        "/api/v1/service-accounts",
        "/api/v1/rpc-keys",
        "/api/v1/audit",
    ] {
        let r = api.get(path, &token).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
    }
    // Lists of other services show it nothing.
    for path in ["/api/v1/nodes", "/api/v1/allocations"] {
        let r = api.get(path, &token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert_eq!(r.body["items"], json!([]), "{path}");
    }
    // A compute grant admits it to allocations (here there is no host, so
    // the request gets as far as placement); without one it is refused.
    let sku = json!({"sku": "cpu.2c4g", "command": ["sleep", "1"]});
    let r = api.post("/api/v1/allocations", &token, sku.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let compute = cli_json(
        &env,
        &[
            "service-account",
            "create",
            "allocator",
            "--grant",
            &format!("compute.{slug}.allocations=create,read"),
        ],
    );
    let compute_key = cli_json(
        &env,
        &["service-account", "key", compute["id"].as_str().unwrap()],
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api.post("/api/v1/allocations", &compute_key, sku).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = api
        .get(
            "/api/v1/storage/namespaces/logs/objects/a.txt",
            &compute_key,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = api
        .http
        .put(format!(
            "{base}/api/v1/storage/namespaces/logs/objects/b.txt"
        ))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = api
        .delete("/api/v1/storage/namespaces/logs/objects/a.txt", &token)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Grants never exceed their writer's: a viewer cannot hand out writes,
    // and nobody can name another organization.
    let me = api.get("/api/v1/me", &key).await;
    let org_id = me.body["org"]["id"].as_str().unwrap().to_owned();
    let viewer = api.user(&key, &org_id, "viewer@acme.test", "viewer").await;
    let r = api
        .post(
            "/api/v1/service-accounts",
            &key,
            json!({"name": "elsewhere", "grants": [{"scope": "storage.globex", "actions": ["read"]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = api
        .post(
            "/api/v1/service-accounts",
            &viewer,
            json!({"name": "writer", "grants": [{"scope": format!("storage.{slug}"), "actions": ["create"]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = api
        .post(
            "/api/v1/service-accounts",
            &key,
            json!({"name": "bad", "grants": [{"scope": "storage", "actions": ["read"]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    // Widened, it writes at its next request; deleted, its key is dead at
    // once.
    let widened = format!("storage.{slug}.namespaces.logs=read,create");
    cli(
        &env,
        &["service-account", "grants", &id, "--grant", &widened],
    );
    let r = api
        .http
        .put(format!(
            "{base}/api/v1/storage/namespaces/logs/objects/b.txt"
        ))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    cli(&env, &["service-account", "delete", &id]);
    let r = api
        .get("/api/v1/storage/namespaces/logs/objects/a.txt", &token)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    // Every change to the account is on the record.
    let audit = api
        .get(&format!("/api/v1/audit?resource_id={id}"), &key)
        .await;
    let mut actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "service_account.create",
            "service_account.delete",
            "service_account.grants.update",
            "service_account.key.create"
        ]
    );
}

/// Every object path under `prefix` in the S3 server's bucket.
async fn s3_keys(objects: &dyn object_store::ObjectStore, prefix: &str) -> Vec<String> {
    use futures::StreamExt;
    let prefix = object_store::path::Path::from(prefix);
    objects
        .list(Some(&prefix))
        .map(|m| m.expect("list").location.to_string())
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cluster_replicas_share_namespaces_on_postgres_and_s3() {
    let Some(db) = hood_testkit::PgDatabase::create("storage_cluster").await else {
        return;
    };
    let Some(s3) = hood_testkit::s3::S3Server::start("storage_cluster") else {
        return;
    };
    // Credential changes reach the other replica's S3 endpoint over it.
    let Some(nats) = hood_testkit::NatsStream::unique("storage_cluster") else {
        return;
    };
    s3.create_bucket("hood-cluster");
    let master = hood_identity::master_key::MasterKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let artifacts = format!("file://{}", dir.path().join("artifacts").display());
    let storage_url = format!(
        "s3://hood-cluster/objects?endpoint={}&region={}",
        s3.endpoint(),
        hood_testkit::s3::REGION
    );
    let env = |home: &Path| {
        let mut env = nats.env();
        env.extend([
            ("DATABASE_URL", db.url.clone()),
            ("HOOD_MASTER_KEY", master.to_base64()),
            ("HOOD_HOME", home.display().to_string()),
            ("HOOD_ARTIFACT_STORE", artifacts.clone()),
            ("HOOD_STORAGE_URL", storage_url.clone()),
            (
                "AWS_ACCESS_KEY_ID",
                hood_testkit::s3::ACCESS_KEY_ID.to_owned(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                hood_testkit::s3::SECRET_ACCESS_KEY.to_owned(),
            ),
        ]);
        env
    };
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));
    let (ok, out, err) = hood_cli(&["migrate"], &env(&home_a), None);
    assert!(ok, "migrate: {out} {err}");
    // Both replicas serve the API and S3 (`storage`, HOOD_S3_ADDR ephemeral).
    let args = [
        "serve",
        "--role",
        "api,auth,storage",
        "--listen",
        "127.0.0.1:0",
    ];
    let a = common::HoodProcess::start(&args, &env(&home_a), &["serving", "s3"]);
    let b = common::HoodProcess::start(&args, &env(&home_b), &["serving", "s3"]);
    let key = read_admin_key(&home_a);
    let (url_a, url_b) = (a.url("serving"), b.url("serving"));
    let (api_a, api_b) = (Api::new(url_a.clone()), Api::new(url_b.clone()));
    let env_a = vec![("HOOD_SERVER", url_a.clone()), ("HOOD_TOKEN", key.clone())];
    let env_b = vec![("HOOD_SERVER", url_b.clone()), ("HOOD_TOKEN", key.clone())];

    // Written through one replica, read through the other, bytes in S3.
    cli(&env_a, &["storage", "ns", "create", "shared"]);
    let data = random_bytes(10_000_000, 11);
    let file = dir.path().join("data.bin");
    std::fs::write(&file, &data).unwrap();
    cli(
        &env_a,
        &[
            "storage",
            "put",
            "shared",
            "d/data.bin",
            file.to_str().unwrap(),
        ],
    );
    let back = dir.path().join("back.bin");
    cli(
        &env_b,
        &[
            "storage",
            "get",
            "shared",
            "d/data.bin",
            back.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read(&back).unwrap() == data,
        "bytes differ across replicas"
    );
    let part = dir.path().join("part.bin");
    cli(
        &env_b,
        &[
            "storage",
            "get",
            "shared",
            "d/data.bin",
            part.to_str().unwrap(),
            "--range",
            "-100",
        ],
    );
    assert!(std::fs::read(&part).unwrap() == data[data.len() - 100..]);
    let ns_id = namespace_id(&api_b, &key, "shared").await;
    let bucket = s3.bucket("hood-cluster");
    let ns_prefix = format!("objects/namespaces/{ns_id}");
    assert_eq!(
        s3_keys(&bucket, &ns_prefix).await.len(),
        1,
        "one blob in S3"
    );

    // A service account's API key, used on both replicas (each caches its
    // standing): its grants narrowed on one replica, restored, then the
    // account deleted on the other; each change holds on both within a
    // second, heard over the bus (a known key is otherwise reused for 30 s).
    let slug = api_a.get("/api/v1/me", &key).await.body["org"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();
    let shared_read = format!("storage.{slug}.namespaces.shared=read");
    let account = cli_json(
        &env_a,
        &[
            "service-account",
            "create",
            "reader",
            "--grant",
            &shared_read,
        ],
    );
    let id = account["id"].as_str().unwrap().to_owned();
    let token = cli_json(&env_a, &["service-account", "key", &id])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let listing = "/api/v1/storage/namespaces/shared/objects";
    for api in [&api_a, &api_b] {
        let r = api.get(listing, &token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // Each replica follows the bus (so a standing lives 30 s, and only an
    // event can end it within a second) and reads a key once, not per
    // request.
    for api in [&api_a, &api_b] {
        assert_eq!(api.metric("hood_credential_events_followed").await, 1.0);
        let reads = api.metric("hood_api_key_reads_total").await;
        for _ in 0..20 {
            assert_eq!(api.get(listing, &token).await.status, StatusCode::OK);
        }
        assert_eq!(
            api.metric("hood_api_key_reads_total").await,
            reads,
            "a cached key is not read again"
        );
    }
    cli(
        &env_a,
        &[
            "service-account",
            "grants",
            &id,
            "--grant",
            &format!("storage.{slug}.namespaces.other=read"),
        ],
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for api in [&api_a, &api_b] {
        let r = api.get(listing, &token).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "narrowed: {}", r.text);
    }
    cli(
        &env_a,
        &["service-account", "grants", &id, "--grant", &shared_read],
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for api in [&api_a, &api_b] {
        let r = api.get(listing, &token).await;
        assert_eq!(r.status, StatusCode::OK, "restored: {}", r.text);
    }
    cli(&env_b, &["service-account", "delete", &id]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for api in [&api_a, &api_b] {
        let r = api.get(listing, &token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "deleted: {}", r.text);
    }

    // An S3 key issued on one replica reads through the other's S3
    // endpoint. Its grants narrowed, then the key revoked, on one replica:
    // both endpoints hold each change within a second, heard over the bus
    // (a known key's standing is otherwise reused for 30 s).
    if let Some(venv) = hood_testkit::awscli_dir("storage_cluster (s3)") {
        let line = dir.path().join("hello.txt");
        std::fs::write(&line, "hello from replica a").unwrap();
        cli(
            &env_a,
            &[
                "storage",
                "put",
                "shared",
                "hello.txt",
                line.to_str().unwrap(),
            ],
        );
        let (account, id, secret) = issue_s3_key(
            &env_a,
            "s3-reader",
            &[format!("storage.{slug}.namespaces.shared=read")],
        );
        let s3_key_pair = (id.clone(), secret);
        let (code, value) = probe(
            &venv,
            &b.url("s3"),
            &s3_key_pair,
            &["get", "shared", "hello.txt"],
        );
        assert_eq!(
            (code.as_str(), value),
            ("ok", json!("hello from replica a"))
        );
        let (code, _) = probe(
            &venv,
            &a.url("s3"),
            &s3_key_pair,
            &["put", "shared", "x", "no"],
        );
        assert_eq!(code, "AccessDenied");
        cli(
            &env_a,
            &[
                "service-account",
                "grants",
                &account,
                "--grant",
                &format!("storage.{slug}.namespaces.other=read"),
            ],
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for endpoint in [a.url("s3"), b.url("s3")] {
            let (code, _) = probe(
                &venv,
                &endpoint,
                &s3_key_pair,
                &["get", "shared", "hello.txt"],
            );
            assert_eq!(code, "AccessDenied", "narrowed grants on {endpoint}");
        }
        cli(
            &env_a,
            &[
                "service-account",
                "grants",
                &account,
                "--grant",
                &format!("storage.{slug}.namespaces.shared=read"),
            ],
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (code, _) = probe(
            &venv,
            &b.url("s3"),
            &s3_key_pair,
            &["get", "shared", "hello.txt"],
        );
        assert_eq!(code, "ok", "restored grants");
        cli(
            &env_b,
            &["service-account", "s3-key", "revoke", &account, &id],
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for endpoint in [a.url("s3"), b.url("s3")] {
            let (code, _) = probe(
                &venv,
                &endpoint,
                &s3_key_pair,
                &["get", "shared", "hello.txt"],
            );
            assert_eq!(code, "InvalidAccessKeyId", "{endpoint}");
        }
    }

    // Deleted through one replica: both replicas' sweepers may work on it;
    // the namespace and every byte in S3 go.
    cli(&env_b, &["storage", "ns", "delete", "shared"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let gone = api_a
            .get("/api/v1/storage/namespaces/shared", &key)
            .await
            .status
            == StatusCode::NOT_FOUND;
        if gone && s3_keys(&bucket, &ns_prefix).await.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the namespace or its bytes stayed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

// ---------------------------------------------------------------------
// The S3 endpoint, driven by clients no one here wrote: boto3 and the
// `aws` CLI (PyPI, installed by scripts/test), configured only with the
// endpoint and an access key Hood issued.

/// The test scripts beside this file (`tests/s3/*.py`).
fn s3_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/s3")
        .join(name)
}

/// Issues an S3 key for a new service account with `grants`; (id, secret).
fn issue_s3_key(
    env: &[(&str, String)],
    account: &str,
    grants: &[String],
) -> (String, String, String) {
    let mut args = vec!["service-account", "create", account];
    for g in grants {
        args.extend(["--grant", g.as_str()]);
    }
    let created = cli_json(env, &args);
    let id = created["id"].as_str().unwrap().to_owned();
    let key = cli_json(env, &["service-account", "s3-key", "create", &id]);
    (
        id,
        key["key"]["access_key_id"].as_str().unwrap().to_owned(),
        key["secret_access_key"].as_str().unwrap().to_owned(),
    )
}

/// Runs one of the Python scripts; its last stdout line is JSON.
fn python(venv: &Path, script: &str, args: &[&str]) -> Value {
    let out = std::process::Command::new(venv.join("bin/python3"))
        .arg(s3_script(script))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script}: {e}: {stdout}"))
}

/// One S3 call through boto3 with the given key: (code, value).
fn probe(venv: &Path, endpoint: &str, key: &(String, String), op: &[&str]) -> (String, Value) {
    let mut args = vec![endpoint, key.0.as_str(), key.1.as_str()];
    args.extend_from_slice(op);
    let v = python(venv, "probe.py", &args);
    (v["code"].as_str().unwrap().to_owned(), v["value"].clone())
}

/// `aws` with only an endpoint and a key; (success, stdout, stderr).
fn aws(
    venv: &Path,
    endpoint: &str,
    key: &(String, String),
    args: &[&str],
) -> (bool, String, String) {
    let out = std::process::Command::new(venv.join("bin/aws"))
        .arg("--endpoint-url")
        .arg(endpoint)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &key.0)
        .env("AWS_SECRET_ACCESS_KEY", &key.1)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run aws");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

/// `hood up` with its S3 endpoint, the administrator's key, and the
/// organization's slug (what grants and anonymous bucket names use).
struct S3Setup {
    dir: tempfile::TempDir,
    hood: HoodProcess,
    admin: String,
    s3: String,
    api: Api,
    env: Vec<(&'static str, String)>,
    slug: String,
}

async fn s3_setup() -> S3Setup {
    let (dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let admin = read_admin_key(&home);
    let base = hood.url("api");
    let api = Api::new(base.clone());
    let slug = api.get("/api/v1/me", &admin).await.body["org"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();
    S3Setup {
        dir,
        s3: hood.url("s3"),
        env: vec![("HOOD_SERVER", base), ("HOOD_TOKEN", admin.clone())],
        hood,
        admin,
        api,
        slug,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_use_hoods_s3_endpoint() {
    let Some(venv) = hood_testkit::awscli_dir("boto3_and_the_aws_cli_use_hoods_s3_endpoint") else {
        return;
    };
    let S3Setup {
        dir,
        hood: _hood,
        admin,
        s3,
        api,
        env,
        slug,
    } = s3_setup().await;
    let all = format!("storage.{slug}.namespaces=create,read,update,delete");
    let (_, id, secret) = issue_s3_key(&env, "s3-admin", std::slice::from_ref(&all));
    let full = (id, secret);

    // 200 MB of random bytes, uploaded by multipart by both clients.
    let big = dir.path().join("big.bin");
    std::fs::write(&big, random_bytes(200 * 1000 * 1000, 17)).unwrap();

    let seen = python(
        &venv,
        "boto3_suite.py",
        &[&s3, &full.0, &full.1, dir.path().to_str().unwrap()],
    );
    assert_eq!(seen["buckets"], json!(["data"]), "{seen}");
    assert_eq!(seen["head_length"], 200_000_000, "{seen}");
    assert_eq!(seen["range_status"], 206, "{seen}");
    assert_eq!(
        seen["range_content_range"],
        "bytes 100000000-100001023/200000000"
    );
    for check in ["range_matches", "download_matches", "copy_matches"] {
        assert_eq!(seen[check], true, "{check}: {seen}");
    }
    assert_eq!(seen["listed_keys"], json!(["copy.bin"]), "{seen}");
    assert_eq!(seen["listed_prefixes"], json!(["dir/"]), "{seen}");
    assert_eq!(seen["copy_after_delete"], "404", "{seen}");
    assert_eq!(seen["delete_nonempty_bucket"], "BucketNotEmpty", "{seen}");
    assert_eq!(
        seen["etags_are_md5"],
        json!({"put": true, "head": true, "list": true, "multipart": true, "part": true}),
        "{seen}"
    );
    assert_eq!(seen["parts_listed"], json!([1, 2]), "{seen}");
    assert_eq!(seen["wrong_etag_completion"], "InvalidPart", "{seen}");
    assert_eq!(seen["small_part_completion"], "EntityTooSmall", "{seen}");
    assert_eq!(seen["aborted_upload_part"], "NoSuchUpload", "{seen}");
    assert_eq!(seen["aborted_object"], "404", "{seen}");
    assert_eq!(seen["aborted_object_get"], "NoSuchKey", "{seen}");
    assert_eq!(
        seen["uploads_listed"],
        json!({"uploads": [["aborted.bin", true], ["another.bin", true]], "truncated": false, "next": null}),
        "{seen}"
    );
    assert_eq!(
        seen["uploads_first_page"],
        json!({"uploads": [["aborted.bin", true]], "truncated": true, "next": "aborted.bin"}),
        "{seen}"
    );
    assert_eq!(
        seen["uploads_second_page"],
        json!({"uploads": [], "truncated": false, "next": null}),
        "a key marker lists the keys after it: {seen}"
    );
    assert_eq!(
        seen["uploads_prefixed"],
        json!({"uploads": [["aborted.bin", true]], "truncated": false, "next": null}),
        "{seen}"
    );
    assert_eq!(
        seen["uploads_after_abort"],
        json!({"uploads": [], "truncated": false, "next": null}),
        "{seen}"
    );
    assert_eq!(seen["missing_bucket"], "NoSuchBucket", "{seen}");
    assert_eq!(seen["missing_key"], "NoSuchKey", "{seen}");
    // What boto3 wrote is what Hood's own API serves.
    let usage = api.get("/api/v1/storage/namespaces/data", &admin).await;
    assert_eq!(
        usage.body["usage"],
        json!({"bytes": 200_000_000, "objects": 1}),
        "{}",
        usage.text
    );

    // The aws CLI: make a bucket, copy the file up (multipart), list it,
    // read a range, copy and delete server-side, download it whole.
    let run = |args: &[&str]| {
        let (ok, out, err) = aws(&venv, &s3, &full, args);
        assert!(ok, "aws {args:?}: {out}\n{err}");
        out
    };
    run(&["s3", "mb", "s3://cli"]);
    run(&["s3", "cp", big.to_str().unwrap(), "s3://cli/big.bin"]);
    let listed = run(&["s3", "ls", "s3://cli/"]);
    assert!(listed.contains("200000000 big.bin"), "{listed}");
    let part = dir.path().join("part.bin");
    run(&[
        "s3api",
        "get-object",
        "--bucket",
        "cli",
        "--key",
        "big.bin",
        "--range",
        "bytes=1000-1999",
        part.to_str().unwrap(),
    ]);
    let whole = std::fs::read(&big).unwrap();
    assert_eq!(std::fs::read(&part).unwrap(), whole[1000..2000]);
    run(&[
        "s3api",
        "copy-object",
        "--bucket",
        "cli",
        "--key",
        "copy.bin",
        "--copy-source",
        "cli/big.bin",
    ]);
    // Bucket to bucket: the CLI copies a large object part by part
    // (UploadPartCopy with source ranges).
    run(&["s3", "mb", "s3://cli-copy"]);
    run(&["s3", "cp", "s3://cli/big.bin", "s3://cli-copy/parts.bin"]);
    run(&["s3", "rm", "s3://cli/big.bin"]);
    let back = dir.path().join("back.bin");
    run(&["s3", "cp", "s3://cli/copy.bin", back.to_str().unwrap()]);
    assert_eq!(sha256_of(&back), sha256_of(&big));
    run(&[
        "s3",
        "cp",
        "s3://cli-copy/parts.bin",
        back.to_str().unwrap(),
    ]);
    assert_eq!(sha256_of(&back), sha256_of(&big));
    let listed = run(&["s3", "ls", "s3://cli/"]);
    assert!(
        !listed.contains("big.bin") && listed.contains("copy.bin"),
        "{listed}"
    );

    // A key whose scope is `storage.{org}.namespaces.logs: [read]` reads
    // `logs` and nothing else.
    cli(&env, &["storage", "ns", "create", "logs"]);
    let line = dir.path().join("line.txt");
    std::fs::write(&line, "a log line").unwrap();
    cli(
        &env,
        &["storage", "put", "logs", "a.txt", line.to_str().unwrap()],
    );
    let read_logs = format!("storage.{slug}.namespaces.logs=read");
    let (reader_account, id, secret) = issue_s3_key(&env, "log-reader", &[read_logs]);
    let reader = (id, secret);
    let (code, value) = probe(&venv, &s3, &reader, &["get", "logs", "a.txt"]);
    assert_eq!((code.as_str(), value), ("ok", json!("a log line")));
    let (code, value) = probe(&venv, &s3, &reader, &["list-buckets", "-"]);
    assert_eq!((code.as_str(), value), ("ok", json!(["logs"])));
    for op in [
        vec!["put", "logs", "b.txt", "no"],
        vec!["get", "data", "dir/big.bin"],
    ] {
        let (code, _) = probe(&venv, &s3, &reader, &op);
        assert_eq!(code, "AccessDenied", "{op:?}");
    }
    // A HEAD answer has no body to name the error in: its status does.
    let (code, _) = probe(&venv, &s3, &reader, &["head-bucket", "cli"]);
    assert_eq!(code, "403");
    // Another organization's namespace does not exist for this key.
    let globex = second_org(&api, &admin).await;
    let r = api
        .post(
            "/api/v1/storage/namespaces",
            &globex,
            json!({"name": "theirs"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (code, _) = probe(&venv, &s3, &full, &["get", "theirs", "a.txt"]);
    assert_eq!(code, "NoSuchBucket");

    // A quota holds exactly at its limit through S3 too.
    let r = api
        .post(
            "/api/v1/storage/namespaces",
            &admin,
            json!({"name": "tight", "max_bytes": 10, "max_objects": 100}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (code, _) = probe(&venv, &s3, &full, &["put", "tight", "a", "0123456789"]);
    assert_eq!(code, "ok");
    let (code, _) = probe(&venv, &s3, &full, &["put", "tight", "b", "x"]);
    assert_eq!(code, "EntityTooLarge");
    let tight = api.get("/api/v1/storage/namespaces/tight", &admin).await;
    assert_eq!(tight.body["usage"], json!({"bytes": 10, "objects": 1}));

    // A wrong secret is refused; a revoked key and a deleted account are
    // refused within a second.
    let (code, _) = probe(
        &venv,
        &s3,
        &(full.0.clone(), "not-the-secret".into()),
        &["list-buckets", "-"],
    );
    assert_eq!(code, "SignatureDoesNotMatch");
    let s3_admin_id = cli_json(&env, &["service-account", "list"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "s3-admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli(
        &env,
        &["service-account", "s3-key", "revoke", &s3_admin_id, &full.0],
    );
    cli(&env, &["service-account", "delete", &reader_account]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for key in [&full, &reader] {
        let (code, _) = probe(&venv, &s3, key, &["list-buckets", "-"]);
        assert_eq!(code, "InvalidAccessKeyId");
    }
    let keys = cli_json(&env, &["service-account", "s3-key", "list", &s3_admin_id]);
    assert!(keys["items"][0]["revoked_at"].is_string(), "{keys}");

    // Every S3 change left its audit row, with the key as the actor.
    let audit = api
        .get("/api/v1/audit?resource_type=storage_namespace", &admin)
        .await;
    assert!(
        audit.text.contains(&format!("s3-key:{}", full.0)),
        "{}",
        audit.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_multipart_upload_and_its_namespaces_deletion_leaves_no_bytes() {
    let Some(venv) = hood_testkit::awscli_dir(
        "sigkill_during_a_multipart_upload_and_its_namespaces_deletion_leaves_no_bytes",
    ) else {
        return;
    };
    let (_dir, home) = temp_home();
    // Uploads unfinished for a second count as abandoned.
    let envs = [("HOOD_STORAGE_UPLOAD_TIMEOUT", "1".to_owned())];
    let hood = hood_up(&home, &envs);
    let admin = read_admin_key(&home);
    let base = hood.url("api");
    let s3 = hood.url("s3");
    let api = Api::new(base.clone());
    let env = vec![("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", admin.clone())];
    let slug = api.get("/api/v1/me", &admin).await.body["org"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();
    let all = format!("storage.{slug}.namespaces=create,read,update,delete");
    let (_, id, secret) = issue_s3_key(&env, "uploader", &[all]);
    cli(&env, &["storage", "ns", "create", "uploads"]);
    let ns_dir = home
        .join("storage/namespaces")
        .join(namespace_id(&api, &admin, "uploads").await);

    // Part 1 stored, part 2 half streamed: then the server is killed.
    let mut streamer = std::process::Command::new(venv.join("bin/python3"))
        .arg(s3_script("stream_part.py"))
        .args([&s3, &id, &secret, "uploads", "big/object.bin"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(streamer.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let upload: Value = serde_json::from_str(&line).expect("upload id line");
    assert!(upload["upload_id"].is_string(), "{line}");
    eventually(
        "part 2's first bytes on disk",
        Duration::from_secs(20),
        || files_under(&ns_dir).len() >= 2,
    )
    .await;
    assert!(!hood.stop("-KILL").success());
    let _ = streamer.kill();
    let _ = streamer.wait();

    // Restarted: the half part goes, part 1 stays (the upload holds it).
    let hood = hood_up(&home, &envs);
    let api = Api::new(hood.url("api"));
    eventually(
        "the half-written part's bytes to go",
        Duration::from_secs(30),
        || files_under(&ns_dir).len() == 1,
    )
    .await;

    // Deleting the namespace with the upload open, killed at once: after
    // a restart the namespace and every byte are gone.
    let r = api
        .delete("/api/v1/storage/namespaces/uploads", &admin)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(!hood.stop("-KILL").success());
    let hood = hood_up(&home, &envs);
    let api = Api::new(hood.url("api"));
    eventually(
        "the namespace's bytes to go",
        Duration::from_secs(30),
        || files_under(&ns_dir).is_empty(),
    )
    .await;
    eventually_async_gone(&api, &admin).await;
}

/// Waits until the `uploads` namespace is gone (its deletion finished).
async fn eventually_async_gone(api: &Api, admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = api.get("/api/v1/storage/namespaces/uploads", admin).await;
        if r.status == StatusCode::NOT_FOUND {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the namespace is still there: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_go_in_parts_through_the_api_and_resume_where_they_stopped() {
    let (dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let key = read_admin_key(&home);
    let base = hood.url("api");
    let api = Api::new(base.clone());
    let env = vec![("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())];
    cli(&env, &["storage", "ns", "create", "media"]);
    let data = random_bytes(13 * 1024 * 1024 + 17, 23);
    let file = dir.path().join("video.bin");
    std::fs::write(&file, &data).unwrap();

    // Three parts of 5 MiB at most, composed into one object.
    let (ok, out, err) = hood_cli(
        &[
            "storage",
            "put",
            "media",
            "a/video.bin",
            file.to_str().unwrap(),
            "--part-mib",
            "5",
        ],
        &env,
        None,
    );
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("multipart upload"), "{err}");
    assert!(
        err.contains(&format!(
            "3 parts, {} of {} bytes sent",
            data.len(),
            data.len()
        )),
        "{err}"
    );
    let back = dir.path().join("back.bin");
    cli(
        &env,
        &[
            "storage",
            "get",
            "media",
            "a/video.bin",
            back.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read(&back).unwrap() == data,
        "composed bytes differ"
    );

    // An upload cut off after its first part resumes with only the rest.
    let uploads = format!("{base}/api/v1/storage/namespaces/media/uploads");
    let r = api
        .post(
            "/api/v1/storage/namespaces/media/uploads",
            &key,
            json!({"key": "b/video.bin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let first = &data[..5 * 1024 * 1024];
    let put = api
        .http
        .put(format!("{uploads}/{id}/parts/1"))
        .bearer_auth(&key)
        .body(first.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let part: Value = put.json().await.unwrap();
    assert_eq!(part["size"], 5 * 1024 * 1024);
    let held = api
        .get(
            &format!("/api/v1/storage/namespaces/media/uploads/{id}"),
            &key,
        )
        .await;
    assert_eq!(held.body["parts"][0]["number"], 1, "{}", held.text);
    // Uploads in progress are listed (the id `--resume` takes, should it
    // be lost), a page at a time, and one can be aborted.
    let other = api
        .post(
            "/api/v1/storage/namespaces/media/uploads",
            &key,
            json!({"key": "c/other.bin"}),
        )
        .await;
    let other = other.body["id"].as_str().unwrap().to_owned();
    let listed = cli_json(&env, &["storage", "uploads", "media"]);
    let ids: Vec<(&str, &str)> = listed["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|u| (u["key"].as_str().unwrap(), u["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [
            ("b/video.bin", id.as_str()),
            ("c/other.bin", other.as_str())
        ]
    );
    let first_page = api
        .get("/api/v1/storage/namespaces/media/uploads?limit=1", &key)
        .await;
    assert_eq!(
        first_page.body["items"][0]["id"],
        id.as_str(),
        "{}",
        first_page.text
    );
    assert_eq!(first_page.body["next_after_key"], "b/video.bin");
    let next = api
        .get(
            &format!(
                "/api/v1/storage/namespaces/media/uploads?limit=1&after_key=b%2Fvideo.bin&after_upload={id}"
            ),
            &key,
        )
        .await;
    assert_eq!(next.body["items"][0]["id"], other.as_str(), "{}", next.text);
    assert!(next.body["next_after_key"].is_null(), "{}", next.text);
    let bad = api
        .get(
            &format!("/api/v1/storage/namespaces/media/uploads?after_upload={id}"),
            &key,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    cli(&env, &["storage", "abort", "media", &other]);
    let listed = cli_json(&env, &["storage", "uploads", "media", "--prefix", "c/"]);
    assert_eq!(listed["items"], json!([]), "aborted: {listed}");
    let (ok, _, err) = hood_cli(&["storage", "abort", "media", "not-an-id"], &env, None);
    assert!(!ok && err.contains("not an upload id"), "{err}");
    let (ok, out, err) = hood_cli(
        &[
            "storage",
            "put",
            "media",
            "b/video.bin",
            file.to_str().unwrap(),
            "--part-mib",
            "5",
            "--resume",
            &id,
        ],
        &env,
        None,
    );
    assert!(ok, "{out}\n{err}");
    let rest = data.len() - first.len();
    assert!(
        err.contains(&format!(
            "3 parts, {rest} of {} bytes sent (the rest was already there)",
            data.len()
        )),
        "{err}"
    );
    cli(
        &env,
        &[
            "storage",
            "get",
            "media",
            "b/video.bin",
            back.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read(&back).unwrap() == data,
        "resumed bytes differ"
    );
    // Completed: the upload is gone; resuming it again is refused clearly.
    let gone = api
        .get(
            &format!("/api/v1/storage/namespaces/media/uploads/{id}"),
            &key,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let (ok, _, err) = hood_cli(
        &[
            "storage",
            "put",
            "media",
            "b/video.bin",
            file.to_str().unwrap(),
            "--resume",
            &id,
        ],
        &env,
        None,
    );
    assert!(!ok && err.contains("upload not found"), "{err}");

    // Bad input: a malformed id, part number 0, a completion out of order.
    let r = api
        .get("/api/v1/storage/namespaces/media/uploads/not-an-id", &key)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = api
        .post(
            "/api/v1/storage/namespaces/media/uploads",
            &key,
            json!({"key": "c"}),
        )
        .await;
    let c = r.body["id"].as_str().unwrap().to_owned();
    let zero = api
        .http
        .put(format!("{uploads}/{c}/parts/0"))
        .bearer_auth(&key)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(zero.status(), StatusCode::BAD_REQUEST);
    for n in [1, 2] {
        let r = api
            .http
            .put(format!("{uploads}/{c}/parts/{n}"))
            .bearer_auth(&key)
            .body("small")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = api
        .post(
            &format!("/api/v1/storage/namespaces/media/uploads/{c}/complete"),
            &key,
            json!({"parts": [{"number": 2}, {"number": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("ascend"), "{}", r.text);
    let r = api
        .delete(
            &format!("/api/v1/storage/namespaces/media/uploads/{c}"),
            &key,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // Only the two composed objects count, and only their bytes are kept.
    let ns = api.get("/api/v1/storage/namespaces/media", &key).await;
    assert_eq!(
        ns.body["usage"],
        json!({"bytes": 2 * data.len(), "objects": 2}),
        "{}",
        ns.text
    );
    let ns_dir = home
        .join("storage/namespaces")
        .join(ns.body["id"].as_str().unwrap());
    eventually(
        "only the objects' blobs on disk",
        Duration::from_secs(20),
        || files_under(&ns_dir).len() == 2,
    )
    .await;
}

/// Public namespaces read anonymously through S3 as bucket
/// `{org_slug}.{name}`, by boto3 unsigned and by a plain HTTP GET; private
/// or missing ones, unqualified names and anonymous writes are refused
/// alike (`AccessDenied`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_s3_reads_reach_only_public_namespaces() {
    let Some(venv) = hood_testkit::awscli_dir("anonymous_s3_reads_reach_only_public_namespaces")
    else {
        return;
    };
    let S3Setup {
        dir,
        hood: _hood,
        admin,
        s3,
        api,
        env,
        slug,
    } = s3_setup().await;
    cli(&env, &["storage", "ns", "create", "site", "--public"]);
    cli(&env, &["storage", "ns", "create", "vault"]);
    let page = dir.path().join("index.html");
    std::fs::write(&page, "<h1>hello</h1>").unwrap();
    for (ns, key) in [
        ("site", "index.html"),
        ("site", "css/a.css"),
        ("vault", "index.html"),
    ] {
        cli(&env, &["storage", "put", ns, key, page.to_str().unwrap()]);
    }
    let anonymous = ("-".to_owned(), "-".to_owned());
    let public = format!("{slug}.site");
    let (code, value) = probe(&venv, &s3, &anonymous, &["get", &public, "index.html"]);
    assert_eq!((code.as_str(), value), ("ok", json!("<h1>hello</h1>")));
    let (code, value) = probe(&venv, &s3, &anonymous, &["list", &public]);
    assert_eq!(
        (code.as_str(), value),
        ("ok", json!(["css/a.css", "index.html"]))
    );
    // Any HTTP client: no signature at all.
    let r = reqwest::get(format!("{s3}/{public}/css/a.css"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "<h1>hello</h1>");

    let private = format!("{slug}.vault");
    for op in [
        vec!["get", private.as_str(), "index.html"],
        vec!["list", private.as_str()],
        vec!["get", "no-such-org.site", "index.html"],
        vec!["get", "site", "index.html"],
        vec!["put", public.as_str(), "defaced.html", "x"],
    ] {
        let (code, _) = probe(&venv, &s3, &anonymous, &op);
        assert_eq!(code, "AccessDenied", "anonymous {op:?}");
    }
    let listed = api
        .get("/api/v1/storage/namespaces/site/objects", &admin)
        .await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        2,
        "an anonymous write stored nothing: {}",
        listed.body
    );

    // Refused before its body arrived, a request's connection ends: the
    // late body must not become the start of the next request (a 1-byte
    // part once prefixed the next HEAD's method and broke its signature).
    let addr = s3.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(
            b"PUT /anyone.site/late.bin HTTP/1.1\r\nHost: s3\r\nContent-Length: 1\r\n\r\n",
        )
        .unwrap();
        // Everything the server sends until it closes (a timeout here
        // would mean it kept the connection for the body).
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).unwrap();
        String::from_utf8_lossy(&answer).to_ascii_lowercase()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("http/1.1 403"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}
