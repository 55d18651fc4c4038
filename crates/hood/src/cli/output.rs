//! CLI output: aligned tables by default, JSON with `-o json`.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Prints `value` (an object or a `{items: [...]}` page) as JSON or as a
/// table of the given columns (dotted paths into each object).
pub fn print(format: Format, value: &Value, columns: &[&str]) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Format::Table => {
            let rows: Vec<&Value> = match value.get("items").and_then(Value::as_array) {
                Some(items) => items.iter().collect(),
                None => vec![value],
            };
            print!("{}", table(&rows, columns));
        }
    }
}

fn cell(v: &Value, path: &str) -> String {
    let mut cur = v;
    for part in path.split('.') {
        match cur.get(part) {
            Some(next) => cur = next,
            None => return "-".into(),
        }
    }
    match cur {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Renders rows as an aligned text table with an upper-case header.
pub fn table(rows: &[&Value], columns: &[&str]) -> String {
    let header: Vec<String> = columns
        .iter()
        .map(|c| c.rsplit('.').next().unwrap_or(c).to_uppercase())
        .collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(r, c)).collect())
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            body.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in std::iter::once(&header).chain(body.iter()) {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_handles_missing_fields() {
        let rows = [
            serde_json::json!({"id": "a", "org": {"slug": "acme"}}),
            serde_json::json!({"id": "bbbb"}),
        ];
        let refs: Vec<&Value> = rows.iter().collect();
        let t = table(&refs, &["id", "org.slug"]);
        assert_eq!(t, "ID    SLUG\na     acme\nbbbb  -\n");
    }
}
