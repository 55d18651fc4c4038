//! The only I/O in the crate: reading a chains directory into
//! `(relative path, contents)` pairs. Read failures become lint problems so
//! `lint_dir` still reports everything else.

use std::path::Path;

use crate::lint::LintReport;

/// Deeper than the layout ever goes; stops symlink loops.
const MAX_DEPTH: usize = 6;

/// Reads every `.yaml`/`.yml` file under `root`, skipping hidden entries.
pub(crate) fn read_tree(root: &Path) -> (Vec<(String, String)>, LintReport) {
    let mut files = Vec::new();
    let mut report = LintReport::default();
    if let Err(e) = std::fs::read_dir(root) {
        report.push(
            "",
            "",
            format!("cannot read chains directory {}: {e}", root.display()),
        );
        return (files, report);
    }
    walk(root, "", 0, &mut files, &mut report);
    files.sort();
    (files, report)
}

fn walk(
    dir: &Path,
    rel: &str,
    depth: usize,
    files: &mut Vec<(String, String)>,
    report: &mut LintReport,
) {
    let shown = if rel.is_empty() { "." } else { rel };
    if depth > MAX_DEPTH {
        report.push(shown, "", "directory nesting is too deep");
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            report.push(shown, "", format!("cannot read directory: {e}"));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                report.push(shown, "", format!("cannot read directory entry: {e}"));
                continue;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel_path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        // Follows symlinks, so a linked chain directory works.
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                report.push(rel_path, "", format!("cannot stat: {e}"));
                continue;
            }
        };
        if meta.is_dir() {
            walk(&path, &rel_path, depth + 1, files, report);
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            match std::fs::read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(s) => files.push((rel_path, s)),
                    Err(_) => report.push(rel_path, "", "file is not valid UTF-8"),
                },
                Err(e) => report.push(rel_path, "", format!("cannot read file: {e}")),
            }
        }
    }
}
