//! Billing: the organization's subscriptions, its invoices (each with its
//! lines, the readings they came from and its payments) and its prepaid
//! credits with the balance's burn-down, all read from the API.

use crate::chart::balance_line;
use crate::layout::{
    empty_row, optional_when, page, sortable_head, state_badge, table_filter, trusted, when, Nav,
};
use crate::viewer::Session;
use crate::Console;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::invoice_page::money;
use hood_api::routes::credits::CreditsViewBody;
use hood_api::routes::invoicing::{InvoiceView, SubscriptionView};
use hood_api::views::Page;
use hood_domain::billing::Currency;
use hood_ledger::wire::TransferRecord;
use maud::{html, Markup};

/// TigerBeetle's flag bits that make a transfer not (yet) a balance change.
const PENDING: u16 = 2;
const VOID_PENDING: u16 = 8;

/// An amount of minor units in its currency's notation (`12.34 USD`).
pub(crate) fn amount(minor: u64, currency: &str) -> String {
    match currency.parse::<Currency>() {
        Ok(c) => money(minor, &c),
        Err(_) => format!("{minor} {currency}"),
    }
}

/// The balance after each posted transfer of `account`, oldest first
/// (holds are reservations, not changes).
fn balance_history(account: &str, transfers: &[TransferRecord]) -> Vec<(i64, i64)> {
    let mut balance: i64 = 0;
    let mut points = Vec::with_capacity(transfers.len());
    for t in transfers {
        if t.flags & (PENDING | VOID_PENDING) != 0 {
            continue;
        }
        let amount: i64 = t.amount.parse().unwrap_or(0);
        if t.credit_account_id.to_string() == account {
            balance += amount;
        } else if t.debit_account_id.to_string() == account {
            balance -= amount;
        }
        let at_ms = t.timestamp.parse::<i64>().unwrap_or(0) / 1_000_000;
        points.push((at_ms, balance));
    }
    points
}

fn credits_panel(c: &CreditsViewBody, history: &[(i64, i64)]) -> Markup {
    let unit = 10u64.pow(u32::from(c.ledger_scale.saturating_sub(2)));
    html! {
        section #credits aria-labelledby="credits-title" data-state=(c.state) {
            h2 #credits-title { "Prepaid credits" }
            p {
                (state_badge(&c.state)) " "
                strong data-testid="credits-available" { (amount(c.available_minor, &c.currency)) } " available"
                @if c.held_units >= unit.max(1) {
                    span.muted { " · " (amount(c.held_units / unit.max(1), &c.currency)) " held for the current " (c.window_seconds) " s" }
                }
            }
            @if let Some(reason) = &c.reason {
                p.flash.error role="alert" data-testid="credits-reason" { (reason) }
            }
            @if !c.low_balance_minor.is_empty() {
                p.small { "Warnings below: "
                    (c.low_balance_minor.iter().map(|t| amount(*t, &c.currency)).collect::<Vec<_>>().join(", ")) }
            }
            @if history.len() > 1 {
                (trusted(balance_line("Prepaid balance over time", history, "ledger units", "credits-burndown")))
            }
        }
    }
}

pub(crate) async fn overview(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let api = console.backend();
    let who = &session.caller;
    let (subscriptions, invoices, credits) = tokio::join!(
        api.get::<Vec<SubscriptionView>>(who, "/api/v1/subscriptions"),
        api.get::<Vec<InvoiceView>>(who, "/api/v1/invoices?limit=100"),
        api.get::<CreditsViewBody>(who, "/api/v1/credits"),
    );
    let subscriptions = match subscriptions {
        Ok(s) => s,
        Err(f) => return f.into_response(),
    };
    let invoices = invoices.unwrap_or_default();
    // An organization not on credits has none to show (the API's 404).
    let credits = credits.ok();
    let history = match &credits {
        Some(c) => api
            .get::<Page<TransferRecord>>(
                who,
                &format!(
                    "/api/v1/ledger/transfers?account_id={}&limit=1000",
                    c.ledger_account_id
                ),
            )
            .await
            .map(|p| balance_history(&c.ledger_account_id.to_string(), &p.items))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let content = html! {
        @if let Some(c) = &credits { (credits_panel(c, &history)) }
        h2 { "Subscriptions" }
        table #subscriptions.data {
            (sortable_head(&["Contract", "State", "Start", "Rate card", "Billed through", "Since"]))
            tbody {
                @for s in &subscriptions {
                    tr data-subscription=(s.id) {
                        td {
                            strong { (s.terms.kind) }
                            @if let Some(fee) = s.terms.fee_minor { " · " (amount(fee, &s.currency)) " per period" }
                            @for (meter, units) in &s.terms.included { br; span.small { (units) " " (meter) " included" } }
                        }
                        td { (state_badge(&s.state)) @if let Some(r) = &s.reason { br; span.small { (r) } } }
                        td { (s.start_date) }
                        td { (s.rate_card_version) }
                        td { (s.billed_through.as_deref().unwrap_or("—")) }
                        td { (when(&s.state_since)) }
                    }
                }
                @if subscriptions.is_empty() { (empty_row(6, "No subscription.")) }
            }
        }
        h2 { "Invoices" }
        (table_filter("invoices", "Filter invoices"))
        table #invoices.data data-sortable {
            (sortable_head(&["Number", "Period", "State", "Total", "Issued", "Paid"]))
            tbody {
                @for i in &invoices {
                    tr data-invoice=(i.id) {
                        td { a href=(format!("/console/invoices/{}", i.id)) { (i.number.as_deref().unwrap_or("draft")) } }
                        td { (i.period_start) " – " (i.period_end) }
                        td { (state_badge(&i.state)) }
                        td.num { (amount(i.total_minor, &i.currency)) }
                        td { (optional_when(i.issued_at.as_deref())) }
                        td { (optional_when(i.paid_at.as_deref())) }
                    }
                }
                @if invoices.is_empty() { (empty_row(6, "No invoices yet.")) }
            }
        }
    };
    page(&session, Nav::Billing, "Billing", None, content)
}

pub(crate) async fn invoice(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    if uuid::Uuid::parse_str(&id).is_err() {
        return crate::layout::refused(StatusCode::NOT_FOUND, "There is no such invoice.");
    }
    let inv = match console
        .backend()
        .get::<InvoiceView>(&session.caller, &format!("/api/v1/invoices/{id}"))
        .await
    {
        Ok(i) => i,
        Err(f) => return super::failure_page(&f),
    };
    let title = format!("Invoice {}", inv.number.as_deref().unwrap_or("draft"));
    let content = html! {
        p {
            (state_badge(&inv.state)) " · period " (inv.period_start) " – " (inv.period_end)
            " · rate card " (inv.rate_card_version)
        }
        table #invoice-lines.data {
            thead { tr { th { "Item" } th.num { "Quantity" } th.num { "Included" } th.num { "Amount" } } }
            tbody {
                @for l in &inv.lines {
                    tr data-kind=(l.kind) {
                        td { (l.description) }
                        td.num { (l.quantity.map(|q| q.to_string()).unwrap_or_default()) }
                        td.num { (l.included.map(|q| q.to_string()).unwrap_or_default()) }
                        td.num { (amount(l.amount_minor, &inv.currency)) }
                    }
                }
            }
            tfoot { tr { th colspan="3" { "Total" } th.num data-testid="invoice-total" { (amount(inv.total_minor, &inv.currency)) } } }
        }
        h2 { "Readings" }
        table.data {
            thead { tr { th { "Meter" } th { "Dimensions" } th.num { "Quantity" } } }
            tbody {
                @for r in &inv.readings {
                    tr {
                        td { code { (r.meter) } }
                        td { (r.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")) }
                        td.num { (r.quantity) }
                    }
                }
                @if inv.readings.is_empty() { (empty_row(3, "No metered usage in this period.")) }
            }
        }
        @if let Some(reason) = &inv.void_reason {
            div.flash.error { p { strong { "Void: " } (reason) ". Nothing is owed on this invoice." } }
        }
        @if let Some(notes) = inv.credit_notes.as_ref().filter(|n| !n.is_empty()) {
            h2 { "Credit notes" }
            table #invoice-credit-notes.data {
                thead { tr { th { "Number" } th { "Reason" } th.num { "Amount" } th { "At" } } }
                tbody {
                    @for n in notes {
                        tr {
                            td { (n.number) }
                            td { (n.reason) }
                            td.num { (amount(n.amount_minor, &n.currency)) }
                            td { (when(&n.created_at)) }
                        }
                    }
                }
            }
        }
        @if let Some(due) = inv.amount_due_minor.filter(|d| *d != inv.total_minor) {
            p { "Amount due after credit notes: " strong data-testid="invoice-due" { (amount(due, &inv.currency)) } }
        }
        h2 { "Payments" }
        table #invoice-payments.data {
            thead { tr { th { "Provider" } th { "Reference" } th { "State" } th.num { "Amount" } th { "At" } } }
            tbody {
                @for p in &inv.payments {
                    tr {
                        td { (p.provider) }
                        td { code { (p.reference) } }
                        td { (state_badge(&p.state)) }
                        td.num { (amount(p.amount_minor, &p.currency)) }
                        td { (when(&p.created_at)) }
                    }
                }
                @if inv.payments.is_empty() { (empty_row(5, "No payment yet.")) }
            }
        }
        p { a href="/console/billing" { "All invoices" } }
    };
    page(&session, Nav::Billing, &title, None, content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hood_domain::{AccountId, TransferId};
    use uuid::Uuid;

    fn t(debit: u128, credit: u128, amount: u64, flags: u16, ms: i64) -> TransferRecord {
        TransferRecord {
            id: TransferId::from_uuid(Uuid::now_v7()),
            debit_account_id: AccountId::from_uuid(Uuid::from_u128(debit)),
            credit_account_id: AccountId::from_uuid(Uuid::from_u128(credit)),
            amount: amount.to_string(),
            pending_id: None,
            user_data_128: "0".into(),
            user_data_64: "0".into(),
            user_data_32: 0,
            timeout: 0,
            ledger: 1,
            code: 106,
            flags,
            timestamp: (ms * 1_000_000).to_string(),
        }
    }

    #[test]
    fn the_burn_down_follows_posted_transfers_only() {
        let me = Uuid::from_u128(7).to_string();
        let history = balance_history(
            &me,
            &[
                t(1, 7, 1_000, 0, 10),          // top-up
                t(7, 2, 300, PENDING, 20),      // a hold: no change yet
                t(7, 2, 200, 4, 30),            // the hold posted
                t(7, 2, 300, VOID_PENDING, 40), // a void: no change
                t(7, 2, 100, 16, 50),           // a balancing debit
            ],
        );
        assert_eq!(history, vec![(10, 1_000), (30, 800), (50, 700)]);
    }
}
