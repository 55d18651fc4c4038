//! `hood bench …` run as the real binary: the health benchmark on a small
//! SQLite fleet, and plain errors on bad input.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::hood_cli;

/// The number after `prefix` on the line that starts with `line`.
fn number_after(out: &str, line: &str, prefix: &str) -> usize {
    let l = out
        .lines()
        .find(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("no `{line}` line in:\n{out}"));
    let rest = &l[l
        .find(prefix)
        .unwrap_or_else(|| panic!("no `{prefix}` in {l}"))
        + prefix.len()..];
    rest.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{prefix}` in {l}"))
}

#[test]
fn bench_health_evaluates_a_small_sqlite_fleet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/b.db", dir.path().display());
    let started = std::time::Instant::now();
    let (ok, out, err) = hood_cli(
        &[
            "bench",
            "health",
            "--database-url",
            &url,
            "--nodes",
            "200",
            "--cycles",
            "2",
        ],
        &[],
        None,
    );
    assert!(ok, "hood bench health failed:\n{out}\n{err}");
    assert!(out.contains("\nratio: "), "ratio line:\n{out}");
    assert!(out.contains("\ninterval: "), "interval line:\n{out}");
    assert_eq!(number_after(&out, "evaluated:", "evaluated:"), 200, "{out}");
    // 2 nodes (1 %) sit on a silent host: the first cycle moves them.
    let transitions = number_after(&out, "first cycle:", "first cycle:");
    assert!(transitions > 0, "stale nodes made transitions:\n{out}");
    assert!(transitions < 200, "only the stale nodes changed:\n{out}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn bench_health_refuses_bad_input_plainly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/b.db", dir.path().display());
    for (args, says) in [
        (
            vec!["bench", "health", "--database-url", &url, "--nodes", "0"],
            "--nodes must be at least 1",
        ),
        (
            vec![
                "bench",
                "health",
                "--database-url",
                "mysql://u:secret@h/db",
                "--nodes",
                "10",
            ],
            "unsupported --database-url",
        ),
    ] {
        let (ok, _, err) = hood_cli(&args, &[], None);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "no panic: {err}");
        assert!(!err.contains("secret"), "password redacted: {err}");
    }
}

/// `hood bench edge` end to end on a small load: all three targets answer,
/// the ratios are printed and metering kept every answered call.
#[test]
fn bench_edge_compares_the_edge_with_nginx_and_direct() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(nginx) = nginx else {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx must be installed in CI (.ci/run installs it)"
        );
        eprintln!("\n*** SKIPPED bench edge: nginx is not installed ***");
        return;
    };
    let (ok, out, err) = hood_cli(
        &[
            "bench",
            "edge",
            "--requests",
            "400",
            "--concurrency",
            "4",
            "--nginx",
            nginx,
        ],
        &[("HOOD_LOG", "error".to_owned())],
        None,
    );
    assert!(ok, "bench edge failed:\n{out}\n{err}");
    for target in ["direct", "nginx", "hood edge"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(target))
            .unwrap_or_else(|| panic!("no `{target}` row in:\n{out}"));
        let failed: usize = line
            .split_whitespace()
            .nth(if target == "hood edge" { 3 } else { 2 })
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(failed, 0, "{line}");
    }
    assert!(out.contains("ratio hood/nginx: throughput"), "{out}");
    assert!(out.contains("ratio hood/direct: throughput"), "{out}");
    // 400 measured + 500 warm-up, each metered once.
    let metering = out.lines().find(|l| l.starts_with("metering:")).unwrap();
    assert_eq!(
        number_after(&out, "metering:", "metering: "),
        900,
        "{metering}"
    );
    assert_eq!(
        number_after(&out, "metering:", "written, "),
        900,
        "{metering}"
    );
}

#[test]
fn bench_edge_refuses_bad_input() {
    let (ok, _, err) = hood_cli(&["bench", "edge", "--requests", "0"], &[], None);
    assert!(!ok);
    assert!(err.contains("at least 1"), "{err}");
}
