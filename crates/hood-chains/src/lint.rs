//! Lint problems: every check in this crate reports into a [`LintReport`]
//! instead of failing fast, so `hood chain lint` can show an operator all the
//! mistakes in a catalog in one run.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem found in a chains directory.
///
/// `file` is relative to the chains root (`ethereum/profile.yaml`), `field` is
/// a dotted path into that file (`node_types.full.resources.memory_gb`,
/// `binaries[0].sha256`) or empty when the problem concerns the whole file
/// (YAML syntax errors, missing files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct LintProblem {
    /// Path of the offending file relative to the chains root, `/`-separated.
    pub file: String,
    /// Dotted path of the offending field, or `""` for whole-file problems.
    pub field: String,
    /// Human-readable explanation; YAML errors carry `line L column C`.
    pub message: String,
}

impl LintProblem {
    /// Builds a problem; a small helper so call sites stay one line.
    pub fn new(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for LintProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.field, self.message)
        }
    }
}

/// All problems found while loading or linting a chains directory.
///
/// Displayed as one `file: field: message` line per problem (the field is
/// omitted when empty), which is what `hood chain lint` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct LintReport {
    /// Problems in discovery order (files sorted by path, then checks).
    pub problems: Vec<LintProblem>,
}

fn render(problems: &[LintProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl LintReport {
    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.problems.len()
    }

    /// Problems reported against one file (path relative to the root).
    pub fn for_file<'a>(&'a self, file: &'a str) -> impl Iterator<Item = &'a LintProblem> + 'a {
        self.problems.iter().filter(move |p| p.file == file)
    }

    /// Whether some problem matches `file` and `field` exactly; handy in tests
    /// and for tooling that highlights fields.
    pub fn has(&self, file: &str, field: &str) -> bool {
        self.problems
            .iter()
            .any(|p| p.file == file && p.field == field)
    }

    pub(crate) fn push(
        &mut self,
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(LintProblem::new(file, field, message));
    }
}

/// A lint sink bound to one file, so checks only name the field.
pub(crate) struct FileLint<'a> {
    pub(crate) report: &'a mut LintReport,
    pub(crate) file: &'a str,
}

impl FileLint<'_> {
    pub(crate) fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.report.push(self.file, field, message);
    }
}

/// Joins a parent field path and a child segment (`a` + `b` → `a.b`).
pub(crate) fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// Appends a list index to a field path (`a` + 2 → `a[2]`).
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
