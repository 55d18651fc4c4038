//! An invoice as a printable HTML page: self-contained (one inline style,
//! no script, nothing fetched), every value escaped.

use hood_domain::billing::posting::minor_exponent;
use hood_domain::billing::{CreditNote, Currency, Invoice, LineSource, Payment};
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Minor units as a decimal amount of `currency` (`1234` USD → `12.34`):
/// integer arithmetic only.
pub fn money(minor: u64, currency: &Currency) -> String {
    let exp = u32::from(minor_exponent(currency));
    if exp == 0 {
        return format!("{minor} {currency}");
    }
    let unit = 10u64.pow(exp);
    format!(
        "{}.{:0width$} {currency}",
        minor / unit,
        minor % unit,
        width = exp as usize
    )
}

/// The page.
pub fn render(
    invoice: &Invoice,
    payments: &[Payment],
    credit_notes: &[CreditNote],
    org_name: Option<&str>,
) -> String {
    let number = invoice.number.as_deref().unwrap_or("draft");
    let mut html = String::new();
    // `write!` to a String cannot fail.
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Invoice {number}</title><style>\
         body{{font-family:sans-serif;max-width:50rem;margin:2rem auto;color:#111}}\
         table{{width:100%;border-collapse:collapse}}td,th{{padding:.3rem;border-bottom:1px solid #ccc;text-align:left}}\
         td.amount,th.amount{{text-align:right;font-variant-numeric:tabular-nums}}\
         @media print{{body{{margin:0}}}}</style></head><body>\
         <h1>Invoice {number}</h1>\
         <p>Billed to <strong>{org}</strong> · state <strong>{state}</strong></p>\
         <p>Period {start} to {end} (end exclusive) · rate card version {card}</p>\
         <table><thead><tr><th>Item</th><th class=\"amount\">Quantity</th><th class=\"amount\">Amount</th></tr></thead><tbody>",
        number = esc(number),
        org = esc(org_name.unwrap_or(&invoice.org_id.to_string())),
        state = invoice.state,
        start = invoice.period.start,
        end = invoice.period.end,
        card = invoice.rate_card_version,
    );
    for line in &invoice.lines {
        let (item, quantity) = match &line.source {
            LineSource::Fee => ("Contract fee".to_owned(), String::new()),
            LineSource::Usage {
                reading, priced, ..
            } => {
                let dims: Vec<String> = reading
                    .dimensions
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let included = if priced.included > 0 {
                    format!(" ({} included)", priced.included)
                } else {
                    String::new()
                };
                (
                    format!("{} {}", reading.meter, dims.join(", ")),
                    format!("{}{included}", reading.quantity),
                )
            }
            LineSource::Adjustment { period, .. } => (
                format!("Late usage, period {} to {}", period.start, period.end),
                String::new(),
            ),
            LineSource::Allocations {
                sku,
                price_per_minute_minor,
                seconds,
            } => (
                format!(
                    "Allocations of {sku} at {} a minute",
                    money(*price_per_minute_minor, &invoice.currency)
                ),
                format!("{seconds} s"),
            ),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"amount\">{}</td><td class=\"amount\">{}</td></tr>",
            esc(&item),
            esc(&quantity),
            money(line.amount_minor, &invoice.currency)
        );
    }
    let _ = write!(
        html,
        "</tbody><tfoot><tr><th colspan=\"2\">Total</th><th class=\"amount\">{}</th></tr></tfoot></table>",
        money(invoice.total_minor, &invoice.currency)
    );
    if let Some(reason) = &invoice.void_reason {
        let _ = write!(
            html,
            "<p><strong>Void</strong>: {}. Nothing is owed on this invoice.</p>",
            esc(reason)
        );
    }
    if !credit_notes.is_empty() {
        html.push_str("<h2>Credit notes</h2><ul>");
        let mut credited = 0u64;
        for n in credit_notes {
            credited += n.amount_minor;
            let _ = write!(
                html,
                "<li>{}: {} ({})</li>",
                esc(&n.number),
                money(n.amount_minor, &n.currency),
                esc(&n.reason)
            );
        }
        let _ = write!(
            html,
            "</ul><p>Amount due after credit notes: <strong>{}</strong></p>",
            money(
                hood_domain::billing::amount_due(invoice.total_minor, credited),
                &invoice.currency
            )
        );
    }
    if !payments.is_empty() {
        html.push_str("<h2>Payments</h2><ul>");
        for p in payments {
            let _ = write!(
                html,
                "<li>{} via {} (reference {}): {}</li>",
                money(p.amount_minor, &p.currency),
                esc(&p.provider),
                esc(&p.reference),
                p.state.as_str()
            );
        }
        html.push_str("</ul>");
    }
    html.push_str("</body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_and_html_is_escaped() {
        let usd: Currency = "USD".parse().unwrap();
        assert_eq!(money(123_456, &usd), "1234.56 USD");
        assert_eq!(money(5, &usd), "0.05 USD");
        assert_eq!(money(7, &"JPY".parse().unwrap()), "7 JPY");
        assert_eq!(esc("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }
}
