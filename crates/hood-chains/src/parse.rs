//! YAML → typed model, turning serde errors into [`LintProblem`]s that name
//! the field (`node_types.full.resources.memory_gbb`) and carry line/column.

use serde::de::DeserializeOwned;

use crate::lint::{join, LintProblem, LintReport};

/// Parses `contents` of `file` into `T`, reporting at most one problem
/// (serde stops at the first error in a file; other files still get linted).
pub(crate) fn parse<T: DeserializeOwned>(
    report: &mut LintReport,
    file: &str,
    contents: &str,
) -> Option<T> {
    if contents.trim().is_empty() {
        report.push(file, "", "file is empty");
        return None;
    }
    // An untyped pass first: it rejects duplicate mapping keys, which a typed
    // pass into a BTreeMap would silently resolve to the last value.
    if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(contents) {
        report.problems.push(problem(file, &e));
        return None;
    }
    match serde_yaml::from_str::<T>(contents) {
        Ok(v) => Some(v),
        Err(e) => {
            report.problems.push(problem(file, &e));
            None
        }
    }
}

/// Converts a serde_yaml error. Its text is `"<path>: <message> at line L
/// column C"`, where the path is absent at the document root.
pub(crate) fn problem(file: &str, e: &serde_yaml::Error) -> LintProblem {
    let text = e.to_string();
    let (path, msg) = split_path(&text);
    let mut field = path.to_string();
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(name) = delimited(msg, marker, '`') {
            field = join(&field, name);
            break;
        }
    }
    if let Some(key) = delimited(msg, "duplicate entry with key \"", '"') {
        field = join(&field, key);
    }
    let mut message = msg.to_string();
    if let Some(loc) = e.location() {
        if !message.contains(" line ") {
            message.push_str(&format!(" at line {} column {}", loc.line(), loc.column()));
        }
    }
    LintProblem::new(file, field, message)
}

/// Splits a leading serde_yaml path (`a.b[0].c: `) off a message.
fn split_path(text: &str) -> (&str, &str) {
    if let Some(idx) = text.find(": ") {
        let head = &text[..idx];
        let looks_like_path = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.[]?".contains(c));
        if looks_like_path {
            return (head, &text[idx + 2..]);
        }
    }
    ("", text)
}

/// The text between `start` and the next `end` character in `msg`.
fn delimited<'a>(msg: &'a str, start: &str, end: char) -> Option<&'a str> {
    let from = msg.find(start)? + start.len();
    let len = msg[from..].find(end)?;
    Some(&msg[from..from + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths_only_when_they_look_like_paths() {
        assert_eq!(
            split_path("a.b[0]: invalid type: x"),
            ("a.b[0]", "invalid type: x")
        );
        assert_eq!(split_path("invalid type: x"), ("", "invalid type: x"));
        assert_eq!(split_path("missing field `x`"), ("", "missing field `x`"));
    }
}
