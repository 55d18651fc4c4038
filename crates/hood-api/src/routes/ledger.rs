//! The ledger: accounts and transfers (TigerBeetle's fields and per-item
//! results), signed checkpoints, the public key, inclusion and consistency
//! proofs.
//!
//! Amounts, balances, 64/128-bit user data and timestamps travel as decimal
//! strings: they can pass a JSON number's safe range. Writes are for
//! platform administrators (and the billing role); an organization reads
//! its own accounts and the transfers touching them (404 for anything
//! else).

use crate::auth::Caller;
use crate::extract::{Json, PathId, Query};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use hood_app::{LedgerService, Viewer};
use hood_domain::identity::Permission;
use hood_domain::ledger::{AccountFlags, Ledger, NewAccount, NewTransfer, TransferFlags};
use hood_domain::validate::FieldError;
use hood_domain::{AccountId, OrgId, TransferId};
use hood_ledger::wire::{
    hex_hash, parse_decimal, AccountRecord, ConsistencyProof, InclusionProof, TransferRecord,
};
use hood_store::ledger::StoredCheckpoint;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ledger/ledgers", get(list_ledgers))
        .route(
            "/api/v1/ledger/accounts",
            get(list_accounts).post(create_accounts),
        )
        .route("/api/v1/ledger/accounts/{account_id}", get(get_account))
        .route(
            "/api/v1/ledger/transfers",
            get(list_transfers).post(create_transfers),
        )
        .route("/api/v1/ledger/transfers/{transfer_id}", get(get_transfer))
        .route(
            "/api/v1/ledger/transfers/{transfer_id}/proof",
            get(transfer_proof),
        )
        .route(
            "/api/v1/ledger/checkpoints",
            get(list_checkpoints).post(create_checkpoint),
        )
        .route("/api/v1/ledger/public-key", get(public_key))
        .route("/api/v1/ledger/consistency", get(consistency))
}

fn service(state: &AppState) -> ApiResult<&LedgerService> {
    state
        .ledger
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("the ledger does not run in this process".into()))
}

fn viewer(caller: &Caller) -> Viewer {
    if caller.platform_admin {
        Viewer::Platform
    } else {
        Viewer::Org(caller.org_id)
    }
}

/// The largest cursor, size or timestamp a query takes (the store's
/// integers are signed 64-bit).
const MAX_POSITION: u64 = i64::MAX as u64;

fn position(field: &'static str, v: Option<u64>) -> ApiResult<Option<u64>> {
    match v {
        Some(v) if v > MAX_POSITION => Err(ApiError::Validation(vec![FieldError::new(
            field,
            format!("at most {MAX_POSITION}"),
        )])),
        v => Ok(v),
    }
}

/// A page size within the documented 1 to 1,000 (default 100).
fn page_limit(v: Option<i64>) -> ApiResult<i64> {
    match v {
        None => Ok(hood_app::ledger::DEFAULT_PAGE),
        Some(n) if (1..=hood_app::ledger::MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::Validation(vec![FieldError::new(
            "limit",
            format!("between 1 and {}, not {n}", hood_app::ledger::MAX_PAGE),
        )])),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LedgerView {
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub id: u32,
    /// Asset code: `USD`, `CU`.
    pub asset: String,
    /// Decimal places of one minor unit.
    pub scale: u8,
}

impl From<&Ledger> for LedgerView {
    fn from(l: &Ledger) -> Self {
        Self {
            id: l.id,
            asset: l.asset.clone(),
            scale: l.scale,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/ledger/ledgers", tag = "ledger",
    responses((status = 200, body = Page<LedgerView>),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// The configured ledgers (one per asset, with its scale).
pub async fn list_ledgers(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<LedgerView>>> {
    caller.require(Permission::ReadBilling)?;
    let ledgers = service(&state)?.ledgers().await?;
    Ok(Json(Page {
        items: ledgers.iter().map(LedgerView::from).collect(),
    }))
}

// -- accounts --

/// One account to create. Omitted user data is 0.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountRequest {
    pub id: Uuid,
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub ledger: u32,
    #[schema(value_type = i32, minimum = 0, maximum = 65535)]
    pub code: u16,
    /// Account flag bits: 1 `linked`, 2 `debits_must_not_exceed_credits`,
    /// 4 `credits_must_not_exceed_debits`, 32 `closed`.
    #[serde(default)]
    #[schema(value_type = i32, minimum = 0, maximum = 65535)]
    pub flags: u16,
    /// The organization whose account it is (omit for a platform account).
    pub org_id: Option<Uuid>,
    /// Decimal string of a u128.
    #[schema(pattern = "^(0|[1-9][0-9]{0,37})$")]
    pub user_data_128: Option<String>,
    /// Decimal string of a u64.
    #[schema(pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub user_data_64: Option<String>,
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub user_data_32: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountsRequest {
    /// 1 to 8,190 accounts, applied in order (linked chains as one).
    pub items: Vec<NewAccountRequest>,
}

/// What became of one item of a batch.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemResult {
    /// Its position in the batch.
    pub index: usize,
    pub id: Uuid,
    /// `ok`, `exists`, or why it was refused (TigerBeetle's result names,
    /// e.g. `exceeds_credits`, `linked_event_failed`,
    /// `exists_with_different_amount`).
    pub result: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchResults {
    pub results: Vec<ItemResult>,
}

/// One result per item, in batch order.
fn batch_results<'r>(
    ids: impl Iterator<Item = Uuid>,
    results: impl Iterator<Item = &'r str>,
) -> BatchResults {
    BatchResults {
        results: ids
            .zip(results)
            .enumerate()
            .map(|(index, (id, result))| ItemResult {
                index,
                id,
                result: result.into(),
            })
            .collect(),
    }
}

/// An optional decimal field of item `item` (absent: 0); a bad one is
/// added to `errors`.
fn decimal_or_zero<T: std::str::FromStr + Default>(
    item: usize,
    field: &'static str,
    v: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> T {
    match v.map(|s| parse_decimal::<T>(field, s)) {
        None => T::default(),
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            errors.push(FieldError::new("items", format!("item {item}: {e}")));
            T::default()
        }
    }
}

#[utoipa::path(post, path = "/api/v1/ledger/accounts", tag = "ledger", request_body = CreateAccountsRequest,
    responses((status = 200, body = BatchResults, description = "One result per item, in order; the batch is one transaction"),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Creates accounts (platform only). Idempotent per id: the same account
/// again answers `exists`.
pub async fn create_accounts(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateAccountsRequest>,
) -> ApiResult<Json<BatchResults>> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let mut errors = Vec::new();
    let batch: Vec<NewAccount> = req
        .items
        .iter()
        .enumerate()
        .map(|(i, a)| NewAccount {
            id: AccountId::from_uuid(a.id),
            ledger: a.ledger,
            code: a.code,
            flags: AccountFlags(a.flags),
            org_id: a.org_id.map(OrgId::from_uuid),
            user_data_128: decimal_or_zero(
                i,
                "user_data_128",
                a.user_data_128.as_deref(),
                &mut errors,
            ),
            user_data_64: decimal_or_zero(
                i,
                "user_data_64",
                a.user_data_64.as_deref(),
                &mut errors,
            ),
            user_data_32: a.user_data_32.unwrap_or(0),
        })
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let results = service(&state)?.create_accounts(&batch).await?;
    Ok(Json(batch_results(
        batch.iter().map(|a| *a.id.as_uuid()),
        results.iter().map(|r| r.as_str()),
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountsQuery {
    /// Only accounts of this ledger.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub ledger: Option<u32>,
    /// Cursor: only accounts created after this timestamp (ns; the last
    /// item's `timestamp` of the previous page).
    #[param(maximum = 9223372036854775807_u64)]
    pub after: Option<u64>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/ledger/accounts", tag = "ledger", params(AccountsQuery),
    responses((status = 200, body = Page<AccountRecord>),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// Accounts, oldest first: the organization's own (every account for
/// platform administrators).
pub async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AccountsQuery>,
) -> ApiResult<Json<Page<AccountRecord>>> {
    caller.require(Permission::ReadBilling)?;
    let after = position("after", q.after)?;
    let accounts = service(&state)?
        .list_accounts(viewer(&caller), q.ledger, after, page_limit(q.limit)?)
        .await?;
    Ok(Json(Page {
        items: accounts.iter().map(AccountRecord::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/ledger/accounts/{account_id}", tag = "ledger",
    params(("account_id" = Uuid, Path)),
    responses((status = 200, body = AccountRecord),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// One account and its four balances.
pub async fn get_account(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AccountId>,
) -> ApiResult<Json<AccountRecord>> {
    caller.require(Permission::ReadBilling)?;
    let a = service(&state)?.get_account(viewer(&caller), id).await?;
    Ok(Json(AccountRecord::from(&a)))
}

// -- transfers --

/// One transfer to create. For posting or voiding a pending transfer, the
/// accounts, ledger and code may be omitted (they are the pending
/// transfer's); an `amount` of `"0"` posts, voids or balances all of it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransferRequest {
    /// Chosen by the client: the same id again is answered `exists`.
    pub id: Uuid,
    pub debit_account_id: Option<Uuid>,
    pub credit_account_id: Option<Uuid>,
    /// Minor units, as a decimal string (at most 9223372036854775807).
    #[schema(pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub amount: String,
    pub pending_id: Option<Uuid>,
    /// Decimal string of a u128 (e.g. an invoice number).
    #[schema(pattern = "^(0|[1-9][0-9]{0,37})$")]
    pub user_data_128: Option<String>,
    /// Decimal string of a u64.
    #[schema(pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub user_data_64: Option<String>,
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub user_data_32: Option<u32>,
    /// Seconds a pending transfer may wait before it expires (0: never).
    #[serde(default)]
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub timeout: u32,
    #[serde(default)]
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub ledger: u32,
    #[serde(default)]
    #[schema(value_type = i32, minimum = 0, maximum = 65535)]
    pub code: u16,
    /// Transfer flag bits: 1 `linked`, 2 `pending`, 4
    /// `post_pending_transfer`, 8 `void_pending_transfer`, 16
    /// `balancing_debit`, 32 `balancing_credit`, 64 `closing_debit`, 128
    /// `closing_credit`.
    #[serde(default)]
    #[schema(value_type = i32, minimum = 0, maximum = 65535)]
    pub flags: u16,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTransfersRequest {
    /// 1 to 8,190 transfers, applied in order (linked chains as one).
    pub items: Vec<NewTransferRequest>,
}

#[utoipa::path(post, path = "/api/v1/ledger/transfers", tag = "ledger", request_body = CreateTransfersRequest,
    responses((status = 200, body = BatchResults, description = "One result per item, in order; the batch is one transaction"),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Creates transfers (platform only), with TigerBeetle's rules: limits
/// hold, linked chains commit or fail as one, holds expire.
pub async fn create_transfers(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateTransfersRequest>,
) -> ApiResult<Json<BatchResults>> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let mut errors = Vec::new();
    let batch: Vec<NewTransfer> = req
        .items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let amount = match parse_decimal::<u64>("amount", &t.amount) {
                Ok(a) => a,
                Err(e) => {
                    errors.push(FieldError::new("items", format!("item {i}: {e}")));
                    0
                }
            };
            NewTransfer {
                id: TransferId::from_uuid(t.id),
                debit_account_id: t.debit_account_id.map(AccountId::from_uuid),
                credit_account_id: t.credit_account_id.map(AccountId::from_uuid),
                amount,
                pending_id: t.pending_id.map(TransferId::from_uuid),
                user_data_128: decimal_or_zero(
                    i,
                    "user_data_128",
                    t.user_data_128.as_deref(),
                    &mut errors,
                ),
                user_data_64: decimal_or_zero(
                    i,
                    "user_data_64",
                    t.user_data_64.as_deref(),
                    &mut errors,
                ),
                user_data_32: t.user_data_32.unwrap_or(0),
                timeout: t.timeout,
                ledger: t.ledger,
                code: t.code,
                flags: TransferFlags(t.flags),
            }
        })
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let results = service(&state)?.create_transfers(&batch).await?;
    Ok(Json(batch_results(
        batch.iter().map(|t| *t.id.as_uuid()),
        results.iter().map(|r| r.as_str()),
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TransfersQuery {
    /// Only transfers debiting or crediting this account.
    pub account_id: Option<Uuid>,
    /// Cursor: only transfers recorded after this timestamp (ns).
    #[param(maximum = 9223372036854775807_u64)]
    pub after: Option<u64>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/ledger/transfers", tag = "ledger", params(TransfersQuery),
    responses((status = 200, body = Page<TransferRecord>),
        (status = 404, description = "The account is not one the caller may see"),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// Transfers, oldest first: of one account, or all the caller may see.
pub async fn list_transfers(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TransfersQuery>,
) -> ApiResult<Json<Page<TransferRecord>>> {
    caller.require(Permission::ReadBilling)?;
    let after = position("after", q.after)?;
    let transfers = service(&state)?
        .list_transfers(
            viewer(&caller),
            q.account_id.map(AccountId::from_uuid),
            after,
            page_limit(q.limit)?,
        )
        .await?;
    Ok(Json(Page {
        items: transfers.iter().map(TransferRecord::from).collect(),
    }))
}

/// A transfer and, for a pending one, what became of it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    #[serde(flatten)]
    pub transfer: TransferRecord,
    /// Pending transfers only: `pending`, `posted`, `voided` or `expired`.
    pub pending_status: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/ledger/transfers/{transfer_id}", tag = "ledger",
    params(("transfer_id" = Uuid, Path)),
    responses((status = 200, body = TransferView),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["read_billing"])))]
pub async fn get_transfer(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TransferId>,
) -> ApiResult<Json<TransferView>> {
    caller.require(Permission::ReadBilling)?;
    let (t, status) = service(&state)?.get_transfer(viewer(&caller), id).await?;
    Ok(Json(TransferView {
        transfer: TransferRecord::from(&t),
        pending_status: status.map(|s| s.as_str().into()),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProofQuery {
    /// Prove against the checkpoint of this size (default: the newest
    /// checkpoint that holds the transfer, signed now if none does).
    #[param(maximum = 9223372036854775807_u64)]
    pub tree_size: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/ledger/transfers/{transfer_id}/proof", tag = "ledger",
    params(("transfer_id" = Uuid, Path), ProofQuery),
    responses((status = 200, body = InclusionProof, description = "Check it offline with `hood ledger verify-proof` and the public key"),
        (status = 409, description = "The checkpoint asked for was signed before the transfer"),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// The inclusion proof of a transfer in the signed log.
pub async fn transfer_proof(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TransferId>,
    Query(q): Query<ProofQuery>,
) -> ApiResult<Json<InclusionProof>> {
    caller.require(Permission::ReadBilling)?;
    let at = position("tree_size", q.tree_size)?;
    let proof = service(&state)?
        .transfer_proof(viewer(&caller), id, at)
        .await?;
    Ok(Json(proof))
}

// -- the log --

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckpointView {
    pub tree_size: u64,
    /// Hex root hash.
    pub root_hash: String,
    /// The C2SP signed note (tlog-checkpoint body and Ed25519 signature).
    pub signed_note: String,
    pub created_at: String,
}

impl From<&StoredCheckpoint> for CheckpointView {
    fn from(c: &StoredCheckpoint) -> Self {
        Self {
            tree_size: c.tree_size,
            root_hash: hex_hash(&c.root_hash),
            signed_note: c.signed_note.clone(),
            created_at: crate::clock::rfc3339(c.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsQuery {
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/ledger/checkpoints", tag = "ledger", params(CheckpointsQuery),
    responses((status = 200, body = Page<CheckpointView>),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// Signed checkpoints of the log, newest first.
pub async fn list_checkpoints(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<CheckpointsQuery>,
) -> ApiResult<Json<Page<CheckpointView>>> {
    caller.require(Permission::ReadBilling)?;
    let checkpoints = service(&state)?.checkpoints(page_limit(q.limit)?).await?;
    Ok(Json(Page {
        items: checkpoints.iter().map(CheckpointView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/ledger/checkpoints", tag = "ledger",
    responses((status = 201, body = CheckpointView, description = "The checkpoint of the log as it is now (the stored one if the log has not grown)"),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Signs a checkpoint now (platform only; the upkeep signs one daily).
pub async fn create_checkpoint(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let c = service(&state)?.checkpoint_now().await?;
    Ok((StatusCode::CREATED, Json(CheckpointView::from(&c))))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicKeyView {
    /// The log's origin: the first line of its checkpoints.
    pub origin: String,
    /// The C2SP verifier key: `<name>+<key hash>+<base64(0x01 ‖ key)>`.
    /// Pin it: `hood ledger verify-proof --public-key …`.
    pub verifier_key: String,
    /// `ed25519`.
    pub algorithm: String,
    /// The raw 32-byte public key, base64.
    pub public_key: String,
}

#[utoipa::path(get, path = "/api/v1/ledger/public-key", tag = "ledger",
    responses((status = 200, body = PublicKeyView),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// The key that signs checkpoints.
pub async fn public_key(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<PublicKeyView>> {
    caller.require(Permission::ReadBilling)?;
    let log = service(&state)?.log();
    let verifier = log.verifier();
    Ok(Json(PublicKeyView {
        origin: log.origin().to_owned(),
        verifier_key: verifier.to_string(),
        algorithm: "ed25519".into(),
        public_key: base64::engine::general_purpose::STANDARD.encode(verifier.public_key()),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The older tree size.
    #[param(maximum = 9223372036854775807_u64)]
    pub from: u64,
    /// The newer tree size (at most the log's).
    #[param(maximum = 9223372036854775807_u64)]
    pub to: u64,
}

#[utoipa::path(get, path = "/api/v1/ledger/consistency", tag = "ledger", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof),
        (status = 409, description = "`from` is after `to`, or `to` is past the log's end"),
        (status = 503, description = "The ledger does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// That the log of `to` leaves extends the log of `from` leaves (RFC 6962).
pub async fn consistency(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyProof>> {
    caller.require(Permission::ReadBilling)?;
    let from = position("from", Some(q.from))?.unwrap_or(0);
    let to = position("to", Some(q.to))?.unwrap_or(0);
    Ok(Json(service(&state)?.consistency(from, to).await?))
}
