//! Node labels and label selectors: how an operator names a slice of the
//! fleet (`region=eu`, `tier!=canary`) for a rollout or a listing.
//!
//! The selector grammar is the familiar equality/set-based one: terms
//! joined by commas, all of which must hold:
//!
//! - `key=value` (or `key==value`), `key!=value`
//! - `key in (a, b)`, `key notin (a, b)`
//! - `key` (the label is set), `!key` (it is not)
//!
//! A `!=` or `notin` term also matches a node without the label, as an
//! operator reading "not in the canary tier" expects.

use std::collections::BTreeMap;
use std::fmt;

/// A node's labels, ordered by key (stable output, stable digests).
pub type Labels = BTreeMap<String, String>;

/// Longest key or value.
pub const MAX_LEN: usize = 63;
/// Most labels on one node.
pub const MAX_LABELS: usize = 64;

/// A label key: lowercase letters, digits, `-`, `_`, `.` and `/`,
/// starting and ending with a letter or digit.
pub fn validate_key(key: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./".contains(c);
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if key.is_empty() || key.len() > MAX_LEN {
        return Err(format!(
            "label key `{key}` must be 1 to {MAX_LEN} characters"
        ));
    }
    if !key.chars().all(ok_char) || !edge(key.chars().next()) || !edge(key.chars().last()) {
        return Err(format!(
            "label key `{key}` may hold only lowercase letters, digits, `-`, `_`, `.` and `/`, \
             and must start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// A label value: empty, or letters, digits, `-`, `_` and `.`.
pub fn validate_value(key: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_LEN {
        return Err(format!(
            "label `{key}`: value longer than {MAX_LEN} characters"
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "label `{key}`: value `{value}` may hold only letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

/// Every key and value valid, and not too many.
pub fn validate(labels: &Labels) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels per node"));
    }
    for (k, v) in labels {
        validate_key(k)?;
        validate_value(k, v)?;
    }
    Ok(())
}

/// One term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Self::Equals(k, v) => labels.get(k) == Some(v),
            Self::NotEquals(k, v) => labels.get(k) != Some(v),
            Self::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            Self::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
            Self::Exists(k) => labels.contains_key(k),
            Self::Absent(k) => !labels.contains_key(k),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Equals(k, v) => write!(f, "{k}={v}"),
            Self::NotEquals(k, v) => write!(f, "{k}!={v}"),
            Self::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            Self::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
            Self::Exists(k) => write!(f, "{k}"),
            Self::Absent(k) => write!(f, "!{k}"),
        }
    }
}

/// A parsed selector: every requirement must hold. The empty selector
/// matches every node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses `region=eu,tier!=canary,zone in (a,b),!drain`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(s)? {
            let term = term.trim();
            if term.is_empty() {
                return Err(format!("selector `{s}` has an empty term"));
            }
            requirements.push(parse_term(term)?);
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0u32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("selector `{s}`: `)` without `(`"))?;
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("selector `{s}`: `(` without `)`"));
    }
    if !s.trim().is_empty() {
        out.push(&s[start..]);
    }
    Ok(out)
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let key = |k: &str| -> Result<String, String> {
        let k = k.trim();
        validate_key(k)?;
        Ok(k.to_owned())
    };
    let value = |k: &str, v: &str| -> Result<String, String> {
        let v = v.trim();
        validate_value(k, v)?;
        Ok(v.to_owned())
    };
    if let Some((k, v)) = term.split_once("!=") {
        let k = key(k)?;
        let v = value(&k, v)?;
        return Ok(Requirement::NotEquals(k, v));
    }
    if let Some((k, v)) = term.split_once('=') {
        let k = key(k)?;
        let v = value(&k, v.strip_prefix('=').unwrap_or(v))?;
        return Ok(Requirement::Equals(k, v));
    }
    for (word, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((k, rest)) = term.split_once(word) {
            let k = key(k)?;
            let list = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("selector term `{term}`: the values go in parentheses"))?;
            let values = list
                .split(',')
                .map(|v| value(&k, v))
                .collect::<Result<Vec<_>, _>>()?;
            if values.iter().all(String::is_empty) {
                return Err(format!("selector term `{term}` lists no value"));
            }
            return Ok(if negated {
                Requirement::NotIn(k, values)
            } else {
                Requirement::In(k, values)
            });
        }
    }
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Requirement::Absent(key(k)?));
    }
    Ok(Requirement::Exists(key(term)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_kind_of_term_matches_as_written() {
        let eu_prod = labels(&[("region", "eu"), ("env", "prod")]);
        let us_canary = labels(&[("region", "us"), ("tier", "canary")]);
        let cases = [
            ("region=eu", true, false),
            ("region==us", false, true),
            ("region!=eu", false, true),
            ("tier!=canary", true, false),
            ("region in (eu, ap)", true, false),
            ("region notin (eu)", false, true),
            ("tier notin (canary)", true, false),
            ("tier", false, true),
            ("!tier", true, false),
            ("region=eu,env=prod", true, false),
            ("region in (eu,us),!tier", true, false),
            ("", true, true),
        ];
        for (s, a, b) in cases {
            let sel = Selector::parse(s).unwrap();
            assert_eq!(sel.matches(&eu_prod), a, "{s} on eu_prod");
            assert_eq!(sel.matches(&us_canary), b, "{s} on us_canary");
        }
    }

    #[test]
    fn a_selector_prints_what_parses_back_to_itself() {
        for s in ["region=eu", "a!=b,c in (x,y),d notin (z),e,!f", "k="] {
            let sel = Selector::parse(s).unwrap();
            assert_eq!(Selector::parse(&sel.to_string()).unwrap(), sel, "{s}");
        }
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        for (s, want) in [
            ("Region=eu", "label key `Region`"),
            ("region=e u", "value `e u`"),
            ("a=b,,c", "empty term"),
            ("a in x", "parentheses"),
            ("a in (b", "without `)`"),
            ("a in ()", "lists no value"),
            ("a)", "without `(`"),
        ] {
            let err = Selector::parse(s).unwrap_err();
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn labels_are_validated() {
        assert!(validate(&labels(&[("region", "eu"), ("hood.dev/role", "rpc")])).is_ok());
        assert!(validate(&labels(&[("-x", "a")])).is_err());
        assert!(validate(&labels(&[("x", &"v".repeat(64))])).is_err());
        let many: Labels = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate(&many).unwrap_err().contains("at most"));
    }
}
