//! The canonical bytes of the ledger's log entries: what each Merkle leaf
//! hashes (`leaf = SHA-256(0x00 ‖ bytes)`, RFC 6962). Fixed-width,
//! big-endian, versioned by a kind byte, so any implementation (a
//! customer's verifier) can rebuild a leaf from an exported record.
//!
//! ```text
//! account  (77 bytes):  0x01, id[16], ledger u32, code u16, flags u16
//!                       (the limit flags only), org[16] (zeros: none),
//!                       user_data_128[16], user_data_64 u64,
//!                       user_data_32 u32, timestamp u64
//! transfer (121 bytes): 0x02, id[16], debit[16], credit[16], amount u64,
//!                       pending_id[16] (zeros: none), user_data_128[16],
//!                       user_data_64 u64, user_data_32 u32, timeout u32,
//!                       ledger u32, code u16, flags u16, timestamp u64
//! ```
//!
//! An account's leaf records it as created (flags at creation, no
//! balances): balances are derived from the transfers that follow.

use super::model::{Account, Transfer};

/// Kind byte of an account leaf.
pub const ACCOUNT_LEAF: u8 = 0x01;
/// Kind byte of a transfer leaf.
pub const TRANSFER_LEAF: u8 = 0x02;

/// The bytes of an account's leaf.
pub fn account_bytes(a: &Account) -> Vec<u8> {
    let mut out = Vec::with_capacity(77);
    out.push(ACCOUNT_LEAF);
    out.extend_from_slice(a.id.as_uuid().as_bytes());
    out.extend_from_slice(&a.ledger.to_be_bytes());
    out.extend_from_slice(&a.code.to_be_bytes());
    out.extend_from_slice(&a.flags.stable().0.to_be_bytes());
    match a.org_id {
        Some(org) => out.extend_from_slice(org.as_uuid().as_bytes()),
        None => out.extend_from_slice(&[0; 16]),
    }
    out.extend_from_slice(&a.user_data_128.to_be_bytes());
    out.extend_from_slice(&a.user_data_64.to_be_bytes());
    out.extend_from_slice(&a.user_data_32.to_be_bytes());
    out.extend_from_slice(&a.timestamp.to_be_bytes());
    out
}

/// The bytes of a transfer's leaf.
pub fn transfer_bytes(t: &Transfer) -> Vec<u8> {
    let mut out = Vec::with_capacity(121);
    out.push(TRANSFER_LEAF);
    out.extend_from_slice(t.id.as_uuid().as_bytes());
    out.extend_from_slice(t.debit_account_id.as_uuid().as_bytes());
    out.extend_from_slice(t.credit_account_id.as_uuid().as_bytes());
    out.extend_from_slice(&t.amount.to_be_bytes());
    match t.pending_id {
        Some(p) => out.extend_from_slice(p.as_uuid().as_bytes()),
        None => out.extend_from_slice(&[0; 16]),
    }
    out.extend_from_slice(&t.user_data_128.to_be_bytes());
    out.extend_from_slice(&t.user_data_64.to_be_bytes());
    out.extend_from_slice(&t.user_data_32.to_be_bytes());
    out.extend_from_slice(&t.timeout.to_be_bytes());
    out.extend_from_slice(&t.ledger.to_be_bytes());
    out.extend_from_slice(&t.code.to_be_bytes());
    out.extend_from_slice(&t.flags.0.to_be_bytes());
    out.extend_from_slice(&t.timestamp.to_be_bytes());
    out
}
