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
