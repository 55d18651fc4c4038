//! `hood billing …`, `hood subscription …`, `hood invoice …`: the price
//! book, contracts, period close, invoices and payments through the API.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{json, table, Format};
use anyhow::{Context, Result};
use clap::Subcommand;
use hood_api::routes::budgets::{BudgetInput, BudgetView};
use hood_api::routes::corrections::{CreditNoteInput, VoidInput};
use hood_api::routes::credits::{
    CreditsViewBody, EnableCreditsInput, RefundInput, RefundView, TopUpInput,
};
use hood_api::routes::invoicing::{
    CancelInput, ClosePeriodInput, CloseReportView, CreditNoteView, InvoiceView, PaymentInput,
    PaymentView, RateCardInput, RateCardView, ReconciliationView, SubscriptionInput,
    SubscriptionView, TermsInput,
};
use reqwest::Method;
use std::collections::BTreeMap;
use std::path::PathBuf;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum BillingCmd {
    /// Closes every period that has ended and has no invoice (platform
    /// admins; the billing role does this by itself). Safe to repeat.
    ClosePeriod {
        /// Close as of this instant (RFC 3339 or Unix ms) instead of now.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// The price book.
    #[command(subcommand)]
    RateCard(RateCardCmd),
    /// Invoices and provider payments against the ledger: what agrees and
    /// every difference with its reason (platform admins).
    Reconcile {
        /// Periods starting on or after this day (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// …and before this day.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RateCardCmd {
    /// Adds a version from a JSON file (`-`: standard input) shaped as the
    /// API takes it (`{"currency": "USD", "rules": [...]}`).
    Create {
        #[arg(long)]
        file: PathBuf,
    },
    /// Every version, newest first.
    List,
    Show {
        version: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionCmd {
    /// Puts an organization on a contract (platform admins).
    Create {
        /// fixed | metered | hybrid
        #[arg(long)]
        kind: String,
        /// The fee per period in minor units (fixed, hybrid).
        #[arg(long)]
        fee_minor: Option<u64>,
        /// Units the fee includes, `meter=units` (hybrid; repeatable).
        #[arg(long = "include", value_name = "METER=UNITS")]
        included: Vec<String>,
        #[arg(long, default_value = "USD")]
        currency: String,
        /// The contract's start, YYYY-MM-DD (periods are anchored to it).
        #[arg(long)]
        start_date: String,
        /// Default: your organization.
        #[arg(long)]
        org: Option<Uuid>,
        /// Default: the newest rate card.
        #[arg(long)]
        rate_card: Option<u32>,
        /// Grace after a failed payment, hours (default 72).
        #[arg(long)]
        grace_hours: Option<u32>,
        /// Monthly budget, minor units (alerts at 50, 80 and 100 %).
        #[arg(long)]
        budget_minor: Option<u64>,
        /// Refuse RPC once the budget is reached, until the next period.
        #[arg(long, requires = "budget_minor")]
        budget_hard_cap: bool,
        /// Wait for the first payment before the subscription is active.
        #[arg(long)]
        pending_payment: bool,
    },
    List,
    /// Shows a subscription's budget and how much of it the current period
    /// has used; with `--set-minor`, `--hard-cap` or `--remove`, changes it
    /// first.
    Budget {
        id: Uuid,
        /// The new monthly budget, minor units.
        #[arg(long, conflicts_with = "remove")]
        set_minor: Option<u64>,
        /// Refuse RPC once the budget is reached (with `--set-minor`).
        #[arg(long, requires = "set_minor")]
        hard_cap: bool,
        /// Removes the budget (and its cap).
        #[arg(long)]
        remove: bool,
    },
    Show {
        id: Uuid,
    },
    Cancel {
        id: Uuid,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum InvoiceCmd {
    /// Invoices, newest period first.
    List {
        #[arg(long)]
        subscription: Option<Uuid>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// One invoice: its lines, the readings they came from, payments.
    Show {
        id: Uuid,
        /// Print the printable HTML page instead.
        #[arg(long)]
        html: bool,
    },
    /// Records a payment received outside a provider (a bank transfer;
    /// platform admins). The same reference twice is one payment.
    Pay {
        id: Uuid,
        #[arg(long)]
        reference: String,
        /// Default: what is due (the total less credit notes).
        #[arg(long)]
        amount_minor: Option<u64>,
    },
    /// Voids an issued invoice nobody has paid or credited (platform
    /// admins); its number stays taken and its ledger transfer is reversed.
    Void {
        id: Uuid,
        #[arg(long)]
        reason: String,
    },
    /// Issues a credit note on an issued or paid invoice (platform admins):
    /// `CN-YYYY-NNNNNN`, never more than the invoice in all.
    Credit {
        id: Uuid,
        #[arg(long)]
        amount_minor: u64,
        #[arg(long)]
        reason: String,
        /// Your key for this request: repeated, it finds the note it made.
        #[arg(long)]
        request_key: Option<String>,
    },
    /// Credit notes, newest first.
    CreditNotes {
        #[arg(long)]
        invoice: Option<Uuid>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CreditsCmd {
    /// Balance, hold, and whether (and why) the organization is cut off.
    Show {
        /// Another organization's (platform admins).
        #[arg(long)]
        org: Option<Uuid>,
    },
    /// Runs an organization on prepaid credits (platform admins).
    Enable {
        #[arg(long)]
        org: Option<Uuid>,
        #[arg(long)]
        rate_card: Option<u32>,
        /// Accrual window, seconds (default 60).
        #[arg(long)]
        window_seconds: Option<i64>,
        /// Warn below this balance, minor units (repeatable).
        #[arg(long = "low-balance")]
        low_balance_minor: Vec<u64>,
    },
    /// Records a top-up paid outside a provider (platform admins). The same
    /// reference twice is one top-up.
    TopUp {
        #[arg(long)]
        org: Option<Uuid>,
        #[arg(long)]
        amount_minor: u64,
        #[arg(long)]
        reference: String,
    },
    /// Gives spent money back to an organization's credits with a reason
    /// (platform admins): a ledger transfer and an audit row. The same
    /// reference twice is one refund.
    Refund {
        #[arg(long)]
        org: Option<Uuid>,
        #[arg(long)]
        amount_minor: u64,
        #[arg(long)]
        reference: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
}

pub async fn credits(opts: &ConnectOpts, format: Format, cmd: CreditsCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    let view: CreditsViewBody = match cmd {
        CreditsCmd::Show { org } => {
            let path = match org {
                Some(o) => format!("/api/v1/credits?org_id={o}"),
                None => "/api/v1/credits".to_owned(),
            };
            client.get(&path).await?
        }
        CreditsCmd::Enable {
            org,
            rate_card,
            window_seconds,
            low_balance_minor,
        } => {
            client
                .post(
                    "/api/v1/credits",
                    &EnableCreditsInput {
                        org_id: org,
                        rate_card_version: rate_card,
                        window_seconds,
                        low_balance_minor,
                    },
                )
                .await?
        }
        CreditsCmd::TopUp {
            org,
            amount_minor,
            reference,
        } => {
            let p: PaymentView = client
                .post(
                    "/api/v1/credits/top-ups",
                    &TopUpInput {
                        org_id: org,
                        amount_minor,
                        reference,
                    },
                )
                .await?;
            return print_rows(format, &[p], columns::PAYMENT);
        }
        CreditsCmd::Refund {
            org,
            amount_minor,
            reference,
            reason,
        } => {
            let r: RefundView = client
                .post(
                    "/api/v1/credits/refunds",
                    &RefundInput {
                        org_id: org,
                        amount_minor,
                        reference,
                        reason,
                    },
                )
                .await?;
            return print_rows(format, &[r], columns::REFUND);
        }
    };
    print_rows(format, &[view], columns::CREDITS)
}

fn read_json<T: serde::de::DeserializeOwned>(file: &std::path::Path) -> Result<T> {
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a rate card as the API takes it", file.display()))
}

fn print_rows<T: serde::Serialize>(
    format: Format,
    rows: &[T],
    cols: &[super::output::Column<T>],
) -> Result<()> {
    match format {
        Format::Json => json(&rows),
        Format::Table => {
            print!("{}", table(rows, cols));
            Ok(())
        }
    }
}

pub async fn billing(opts: &ConnectOpts, format: Format, cmd: BillingCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        BillingCmd::ClosePeriod { as_of } => {
            let report: CloseReportView = client
                .post("/api/v1/billing/close-period", &ClosePeriodInput { as_of })
                .await?;
            match format {
                Format::Json => json(&report)?,
                Format::Table => {
                    print!("{}", table(&report.issued, columns::INVOICE));
                    println!(
                        "issued {}, already invoiced {}, failed {}",
                        report.issued.len(),
                        report.existing,
                        report.failed.len()
                    );
                    for f in &report.failed {
                        println!("failed: subscription {}: {}", f.subscription_id, f.reason);
                    }
                }
            }
            if report.failed.is_empty() {
                Ok(())
            } else {
                anyhow::bail!(
                    "{} subscription(s) could not be closed",
                    report.failed.len()
                )
            }
        }
        BillingCmd::Reconcile { from, to } => {
            let mut q = Vec::new();
            q.extend(from.map(|f| format!("from={f}")));
            q.extend(to.map(|t| format!("to={t}")));
            let r: ReconciliationView = client
                .get(&format!("/api/v1/billing/reconciliation?{}", q.join("&")))
                .await?;
            match format {
                Format::Json => json(&r),
                Format::Table => {
                    println!(
                        "{} invoices ({} minor units), {} payments ({}): {} matched, {} in {} items",
                        r.invoices,
                        r.invoiced_minor,
                        r.payments,
                        r.paid_minor,
                        r.matched_minor,
                        r.itemized_minor,
                        r.items.len()
                    );
                    print!("{}", table(&r.items, columns::RECONCILIATION_ITEM));
                    Ok(())
                }
            }
        }
        BillingCmd::RateCard(RateCardCmd::Create { file }) => {
            let input: RateCardInput = read_json(&file)?;
            let card: RateCardView = client.post("/api/v1/billing/rate-cards", &input).await?;
            print_rows(format, &[card], columns::RATE_CARD)
        }
        BillingCmd::RateCard(RateCardCmd::List) => {
            let cards: Vec<RateCardView> = client.get("/api/v1/billing/rate-cards").await?;
            print_rows(format, &cards, columns::RATE_CARD)
        }
        BillingCmd::RateCard(RateCardCmd::Show { version }) => {
            let card: RateCardView = client
                .get(&format!("/api/v1/billing/rate-cards/{version}"))
                .await?;
            json(&card)
        }
    }
}

pub async fn subscription(opts: &ConnectOpts, format: Format, cmd: SubscriptionCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        SubscriptionCmd::Create {
            kind,
            fee_minor,
            included,
            currency,
            start_date,
            org,
            rate_card,
            grace_hours,
            budget_minor,
            budget_hard_cap,
            pending_payment,
        } => {
            let mut units = BTreeMap::new();
            for pair in included {
                let (meter, n) = pair
                    .split_once('=')
                    .with_context(|| format!("--include {pair}: want METER=UNITS"))?;
                let n: u64 = n
                    .parse()
                    .with_context(|| format!("--include {pair}: UNITS is not a whole number"))?;
                units.insert(meter.to_owned(), n);
            }
            let input = SubscriptionInput {
                org_id: org,
                terms: TermsInput {
                    kind,
                    fee_minor,
                    included: units,
                },
                currency,
                start_date,
                rate_card_version: rate_card,
                grace_hours,
                budget_minor,
                budget_hard_cap,
                pending_payment,
            };
            let sub: SubscriptionView = client.post("/api/v1/subscriptions", &input).await?;
            print_rows(format, &[sub], columns::SUBSCRIPTION)
        }
        SubscriptionCmd::List => {
            let subs: Vec<SubscriptionView> = client.get("/api/v1/subscriptions").await?;
            print_rows(format, &subs, columns::SUBSCRIPTION)
        }
        SubscriptionCmd::Budget {
            id,
            set_minor,
            hard_cap,
            remove,
        } => {
            let path = format!("/api/v1/subscriptions/{id}/budget");
            let view: BudgetView = if set_minor.is_some() || remove {
                let input = BudgetInput {
                    budget_minor: set_minor,
                    hard_cap,
                };
                client.call(Method::PUT, &path, Some(&input)).await?
            } else {
                client.get(&path).await?
            };
            print_rows(format, &[view], columns::BUDGET)
        }
        SubscriptionCmd::Show { id } => {
            let sub: SubscriptionView = client.get(&format!("/api/v1/subscriptions/{id}")).await?;
            print_rows(format, &[sub], columns::SUBSCRIPTION)
        }
        SubscriptionCmd::Cancel { id, reason } => {
            let sub: SubscriptionView = client
                .post(
                    &format!("/api/v1/subscriptions/{id}/cancel"),
                    &CancelInput { reason },
                )
                .await?;
            print_rows(format, &[sub], columns::SUBSCRIPTION)
        }
    }
}

pub async fn invoice(opts: &ConnectOpts, format: Format, cmd: InvoiceCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        InvoiceCmd::List {
            subscription,
            limit,
        } => {
            let mut path = format!("/api/v1/invoices?limit={limit}");
            if let Some(s) = subscription {
                path.push_str(&format!("&subscription_id={s}"));
            }
            let invoices: Vec<InvoiceView> = client.get(&path).await?;
            print_rows(format, &invoices, columns::INVOICE)
        }
        InvoiceCmd::Show { id, html: true } => {
            let page = client
                .send(
                    Method::GET,
                    &format!("/api/v1/invoices/{id}/print"),
                    None::<&()>,
                )
                .await?;
            print!("{}", String::from_utf8_lossy(&page));
            Ok(())
        }
        InvoiceCmd::Show { id, html: false } => {
            let inv: InvoiceView = client.get(&format!("/api/v1/invoices/{id}")).await?;
            match format {
                Format::Json => json(&inv),
                Format::Table => {
                    print!("{}", table(std::slice::from_ref(&inv), columns::INVOICE));
                    println!();
                    print!("{}", table(&inv.lines, columns::INVOICE_LINE));
                    if !inv.payments.is_empty() {
                        println!();
                        print!("{}", table(&inv.payments, columns::PAYMENT));
                    }
                    if let Some(notes) = inv.credit_notes.as_ref().filter(|n| !n.is_empty()) {
                        println!();
                        print!("{}", table(notes, columns::CREDIT_NOTE));
                    }
                    Ok(())
                }
            }
        }
        InvoiceCmd::Void { id, reason } => {
            let inv: InvoiceView = client
                .post(
                    &format!("/api/v1/invoices/{id}/void"),
                    &VoidInput { reason },
                )
                .await?;
            print_rows(format, &[inv], columns::INVOICE)
        }
        InvoiceCmd::Credit {
            id,
            amount_minor,
            reason,
            request_key,
        } => {
            let note: CreditNoteView = client
                .post(
                    &format!("/api/v1/invoices/{id}/credit-notes"),
                    &CreditNoteInput {
                        amount_minor,
                        reason,
                        request_key,
                    },
                )
                .await?;
            print_rows(format, &[note], columns::CREDIT_NOTE)
        }
        InvoiceCmd::CreditNotes { invoice } => {
            let path = match invoice {
                Some(i) => format!("/api/v1/credit-notes?invoice_id={i}"),
                None => "/api/v1/credit-notes".to_owned(),
            };
            let notes: Vec<CreditNoteView> = client.get(&path).await?;
            print_rows(format, &notes, columns::CREDIT_NOTE)
        }
        InvoiceCmd::Pay {
            id,
            reference,
            amount_minor,
        } => {
            let p: PaymentView = client
                .post(
                    &format!("/api/v1/invoices/{id}/payments"),
                    &PaymentInput {
                        reference,
                        amount_minor,
                    },
                )
                .await?;
            print_rows(format, &[p], columns::PAYMENT)
        }
    }
}
