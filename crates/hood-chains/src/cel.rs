//! Lexical checks of CEL expressions.
//!
//! Policies are evaluated later by the health role; here we only need to know
//! that an expression is non-empty, lexically sound (strings terminated,
//! brackets balanced) and which top-level variables and global functions it
//! uses, so a policy that names a collector that does not exist fails lint.
//! This is deliberately a lexer, not a parser: it is exact for identifiers
//! and cheap to keep correct.

use std::collections::BTreeSet;

/// Global functions an expression may call: CEL's standard ones plus Hood's
/// `hex_to_int(string) -> int` for 0x-prefixed JSON-RPC quantities.
pub const KNOWN_FUNCTIONS: &[&str] = &[
    "has",
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "duration",
    "timestamp",
    "matches",
    "hex_to_int",
];

/// Identifiers that are not variables: literals, the `in` operator and type
/// names usable in `type(x) == int`.
const NON_VARIABLES: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

/// Comprehension macros whose first argument binds a loop variable.
const MACROS: &[&str] = &["all", "exists", "exists_one", "map", "filter"];

/// What an expression refers to.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Analysis {
    /// Top-level variables (`syncing` in `syncing.result == false`).
    pub(crate) variables: BTreeSet<String>,
    /// Global function calls (`hex_to_int` in `hex_to_int(x.result)`).
    pub(crate) functions: BTreeSet<String>,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Dot,
    Comma,
    Open(char),
    Close(char),
    Other,
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // String prefixes: r"..", b'..', rb"..", ...
            let is_prefix = word.len() <= 2 && word.chars().all(|ch| "rRbB".contains(ch));
            if is_prefix && matches!(chars.get(i), Some('"') | Some('\'')) {
                let raw = word.contains(['r', 'R']);
                i = skip_string(&chars, i, raw)?;
                toks.push(Tok::Other);
            } else {
                toks.push(Tok::Ident(word));
            }
        } else if c.is_ascii_digit() {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || (chars[i] == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
            {
                i += 1;
            }
            toks.push(Tok::Other);
        } else if c == '"' || c == '\'' {
            i = skip_string(&chars, i, false)?;
            toks.push(Tok::Other);
        } else {
            toks.push(match c {
                '.' => Tok::Dot,
                ',' => Tok::Comma,
                '(' | '[' | '{' => Tok::Open(c),
                ')' | ']' | '}' => Tok::Close(c),
                _ => Tok::Other,
            });
            i += 1;
        }
    }
    Ok(toks)
}

/// Skips a string literal starting at `i` (the opening quote); returns the
/// index after it.
fn skip_string(chars: &[char], i: usize, raw: bool) -> Result<usize, String> {
    let q = chars[i];
    let triple = chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q);
    let mut j = if triple { i + 3 } else { i + 1 };
    while j < chars.len() {
        let c = chars[j];
        if c == '\\' && !raw {
            j += 2;
            continue;
        }
        if !triple && c == '\n' {
            break;
        }
        if c == q {
            if !triple {
                return Ok(j + 1);
            }
            if chars.get(j + 1) == Some(&q) && chars.get(j + 2) == Some(&q) {
                return Ok(j + 3);
            }
        }
        j += 1;
    }
    Err("unterminated string literal".to_string())
}

/// Analyses an expression; `Err` carries every lexical problem found.
pub(crate) fn analyze(src: &str) -> Result<Analysis, Vec<String>> {
    if src.trim().is_empty() {
        return Err(vec!["expression is empty".to_string()]);
    }
    let toks = lex(src).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut stack = Vec::new();
    for t in &toks {
        match t {
            Tok::Open(c) => stack.push(*c),
            Tok::Close(c) => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(want) {
                    errors.push(format!("unbalanced `{c}`"));
                    break;
                }
            }
            _ => {}
        }
    }
    if errors.is_empty() {
        if let Some(c) = stack.last() {
            errors.push(format!("unclosed `{c}`"));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let ident = |k: usize| match toks.get(k) {
        Some(Tok::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    let mut bound = BTreeSet::new();
    let mut out = Analysis::default();
    for (k, t) in toks.iter().enumerate() {
        let Tok::Ident(name) = t else { continue };
        let after_dot = k > 0 && toks[k - 1] == Tok::Dot;
        let called = toks.get(k + 1) == Some(&Tok::Open('('));
        if after_dot {
            if called && MACROS.contains(&name.as_str()) && toks.get(k + 3) == Some(&Tok::Comma) {
                if let Some(v) = ident(k + 2) {
                    bound.insert(v.to_string());
                }
            }
        } else if called {
            out.functions.insert(name.clone());
        } else if !NON_VARIABLES.contains(&name.as_str()) {
            out.variables.insert(name.clone());
        }
    }
    out.variables.retain(|v| !bound.contains(v));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(src: &str) -> Vec<String> {
        analyze(src)
            .map(|a| a.variables.into_iter().collect())
            .unwrap_or_default()
    }

    #[test]
    fn finds_top_level_variables_only() {
        assert_eq!(vars("syncing.result == false"), vec!["syncing"]);
        assert_eq!(
            vars("hex_to_int(head.result) - sync.head > 3 && has(x.y)"),
            vec!["head", "sync", "x"]
        );
        assert_eq!(vars("'peers' in m && m.peers < 3"), vec!["m"]);
        assert_eq!(vars("r\"a b\" == s && type(v) == int"), vec!["s", "v"]);
    }

    #[test]
    fn macro_variables_are_bound() {
        assert_eq!(
            vars("peers.result.all(p, p.inbound) && q.exists(x, x > 1)"),
            vec!["peers", "q"]
        );
    }

    #[test]
    fn functions_are_reported() {
        let a = analyze("hex_to_int(a.result) > size(b)").unwrap_or_default();
        assert_eq!(
            a.functions.into_iter().collect::<Vec<_>>(),
            vec!["hex_to_int", "size"]
        );
    }

    #[test]
    fn lexical_errors() {
        assert!(analyze("").is_err());
        assert!(analyze("  ").is_err());
        assert!(analyze("a.b == 'x").is_err());
        assert!(analyze("(a > 1").is_err());
        assert!(analyze("a > 1)").is_err());
        assert!(analyze("a[0] > 1.5 && b == \"\"\"x\ny\"\"\"").is_ok());
    }
}
