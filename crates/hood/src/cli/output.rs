//! CLI output: aligned tables by default, JSON with `-o json`.
//!
//! Answers arrive as the API's view types; a table's columns are typed
//! accessors into the view, so a renamed field fails to compile instead of
//! printing `-`. JSON output is the view as the server serialized it.

use anyhow::{Context, Result};
use hood_api::views::Page;
use serde::Serialize;
use std::fmt::Display;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// One table column of a view: its header and how a row shows it.
pub struct Column<T> {
    pub header: &'static str,
    pub cell: fn(&T) -> String,
}

impl<T> Column<T> {
    pub const fn new(header: &'static str, cell: fn(&T) -> String) -> Self {
        Self { header, cell }
    }
}

/// Prints one value: as JSON, or as a one-row table of `columns`.
pub fn show<T: Serialize>(format: Format, value: &T, columns: &[Column<T>]) -> Result<()> {
    match format {
        Format::Json => json(value),
        Format::Table => {
            print!("{}", table(std::slice::from_ref(value), columns));
            Ok(())
        }
    }
}

/// Prints a page: as JSON (`{"items": [...]}`), or as a table with a row
/// per item (just the header when the page is empty).
pub fn list<T: Serialize>(format: Format, page: &Page<T>, columns: &[Column<T>]) -> Result<()> {
    match format {
        Format::Json => json(page),
        Format::Table => {
            print!("{}", table(&page.items, columns));
            Ok(())
        }
    }
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("rendering the answer as JSON")?;
    println!("{text}");
    Ok(())
}

/// A cell for an optional value: `-` when absent.
pub fn or_dash<T: Display>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "-".to_owned(), T::to_string)
}

/// A cell for a list: its entries comma-separated.
pub fn joined(list: &[String]) -> String {
    list.join(",")
}

/// Renders rows as an aligned text table with the columns' headers.
pub fn table<T>(rows: &[T], columns: &[Column<T>]) -> String {
    let header: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| (c.cell)(r)).collect())
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            body.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
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
    use crate::cli::columns;
    use hood_api::routes::nodes::NodeView;
    use uuid::Uuid;

    struct Org {
        slug: String,
    }
    struct Row {
        id: String,
        org: Option<Org>,
    }
    const ROW_COLUMNS: &[Column<Row>] = &[
        Column::new("ID", |r| r.id.clone()),
        Column::new("SLUG", |r| or_dash(&r.org.as_ref().map(|o| &o.slug))),
    ];

    #[test]
    fn table_aligns_and_handles_missing_fields() {
        let rows = [
            Row {
                id: "a".into(),
                org: Some(Org {
                    slug: "acme".into(),
                }),
            },
            Row {
                id: "bbbb".into(),
                org: None,
            },
        ];
        let t = table(&rows, ROW_COLUMNS);
        assert_eq!(t, "ID    SLUG\na     acme\nbbbb  -\n");
    }

    #[test]
    fn an_empty_list_is_its_header() {
        assert_eq!(table::<Row>(&[], ROW_COLUMNS), "ID  SLUG\n");
    }

    fn node(name: &str, endpoint: Option<&str>) -> NodeView {
        NodeView {
            id: Uuid::nil(),
            org_id: Uuid::nil(),
            name: name.into(),
            chain: "ethereum-anvil".into(),
            node_type: "dev".into(),
            provider: "local".into(),
            region: "local".into(),
            state: "healthy".into(),
            sync_status: "synced".into(),
            app_health: "ok".into(),
            host_id: None,
            rpc_endpoint: endpoint.map(str::to_owned),
            head_height: Some(7),
            binary_version: None,
            failure_reason: None,
            labels: if endpoint.is_some() {
                [
                    ("region".into(), "eu".into()),
                    ("tier".into(), "main".into()),
                ]
                .into()
            } else {
                Default::default()
            },
            created_at: "2025-01-01T00:00:00Z".into(),
            updated_at: "2025-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_view_renders_through_its_typed_columns() {
        let nodes = [
            node("devnet-1", Some("http://127.0.0.1:8545")),
            node("n2", None),
        ];
        let t = table(&nodes, columns::NODE);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "ID",
                "NAME",
                "CHAIN",
                "NODE_TYPE",
                "STATE",
                "SYNC_STATUS",
                "RPC_ENDPOINT",
                "LABELS",
                "CREATED_AT"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "00000000-0000-0000-0000-000000000000",
                "devnet-1",
                "ethereum-anvil",
                "dev",
                "healthy",
                "synced",
                "http://127.0.0.1:8545",
                "region=eu,tier=main",
                "2025-01-01T00:00:00Z"
            ]
        );
        assert!(lines[2].contains(" - "), "no endpoint shows as -: {t}");
        // Columns line up: every row's CREATED_AT starts where its header does.
        let at = lines[0].find("CREATED_AT").expect("header");
        assert!(lines[1..].iter().all(|l| l[at..].starts_with("2025")));
    }

    #[test]
    fn cells_of_options_and_lists() {
        assert_eq!(or_dash(&None::<i64>), "-");
        assert_eq!(or_dash(&Some(42)), "42");
        assert_eq!(joined(&["read".into(), "operate".into()]), "read,operate");
        assert_eq!(joined(&[]), "");
    }

    #[test]
    fn a_page_serializes_as_the_server_sent_it() {
        let page = Page {
            items: vec![node("devnet-1", None)],
        };
        let value = serde_json::to_value(&page).expect("serializable");
        assert_eq!(value["items"][0]["name"], "devnet-1");
        assert_eq!(value["items"][0]["rpc_endpoint"], serde_json::Value::Null);
        assert_eq!(value["items"][0]["head_height"], 7);
        // And reads back as the same view.
        let back: Page<NodeView> = serde_json::from_value(value).expect("round trip");
        assert_eq!(back.items[0].name, "devnet-1");
    }
}
