//! Per-item results of a batch, named as TigerBeetle names them.

use serde::{Deserialize, Serialize};

macro_rules! results {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// The item was created now.
            pub fn is_ok(self) -> bool {
                matches!(self, $name::Ok)
            }

            /// The item is recorded, now or by an earlier identical
            /// request: what an idempotent retry looks for.
            pub fn is_recorded(self) -> bool {
                matches!(self, $name::Ok | $name::Exists)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

results!(
    /// What became of one account of a batch.
    CreateAccountResult {
        Ok = "ok",
        /// Another account of its linked chain failed; nothing of the chain
        /// was created.
        LinkedEventFailed = "linked_event_failed",
        /// The batch ended inside a linked chain.
        LinkedEventChainOpen = "linked_event_chain_open",
        ReservedFlag = "reserved_flag",
        IdMustNotBeZero = "id_must_not_be_zero",
        IdMustNotBeIntMax = "id_must_not_be_int_max",
        /// `debits_must_not_exceed_credits` with
        /// `credits_must_not_exceed_debits`.
        FlagsAreMutuallyExclusive = "flags_are_mutually_exclusive",
        LedgerMustNotBeZero = "ledger_must_not_be_zero",
        CodeMustNotBeZero = "code_must_not_be_zero",
        /// No such ledger (asset) is configured.
        LedgerNotFound = "ledger_not_found",
        ExistsWithDifferentFlags = "exists_with_different_flags",
        ExistsWithDifferentUserData128 = "exists_with_different_user_data_128",
        ExistsWithDifferentUserData64 = "exists_with_different_user_data_64",
        ExistsWithDifferentUserData32 = "exists_with_different_user_data_32",
        ExistsWithDifferentLedger = "exists_with_different_ledger",
        ExistsWithDifferentCode = "exists_with_different_code",
        ExistsWithDifferentOrg = "exists_with_different_org",
        /// The same account was created before: nothing changed.
        Exists = "exists",
    }
);

results!(
    /// What became of one transfer of a batch.
    CreateTransferResult {
        Ok = "ok",
        /// Another transfer of its linked chain failed; nothing of the
        /// chain was recorded.
        LinkedEventFailed = "linked_event_failed",
        LinkedEventChainOpen = "linked_event_chain_open",
        ReservedFlag = "reserved_flag",
        IdMustNotBeZero = "id_must_not_be_zero",
        IdMustNotBeIntMax = "id_must_not_be_int_max",
        /// Two flags that cannot go together (pending with posting,
        /// posting with voiding, closing without pending, …).
        FlagsAreMutuallyExclusive = "flags_are_mutually_exclusive",
        DebitAccountIdMustNotBeZero = "debit_account_id_must_not_be_zero",
        CreditAccountIdMustNotBeZero = "credit_account_id_must_not_be_zero",
        AccountsMustBeDifferent = "accounts_must_be_different",
        PendingIdMustBeZero = "pending_id_must_be_zero",
        PendingIdMustNotBeZero = "pending_id_must_not_be_zero",
        PendingIdMustBeDifferent = "pending_id_must_be_different",
        TimeoutReservedForPendingTransfer = "timeout_reserved_for_pending_transfer",
        AmountMustNotExceedMax = "amount_must_not_exceed_max",
        LedgerMustNotBeZero = "ledger_must_not_be_zero",
        CodeMustNotBeZero = "code_must_not_be_zero",
        DebitAccountNotFound = "debit_account_not_found",
        CreditAccountNotFound = "credit_account_not_found",
        AccountsMustHaveTheSameLedger = "accounts_must_have_the_same_ledger",
        TransferMustHaveTheSameLedgerAsAccounts = "transfer_must_have_the_same_ledger_as_accounts",
        PendingTransferNotFound = "pending_transfer_not_found",
        PendingTransferNotPending = "pending_transfer_not_pending",
        PendingTransferHasDifferentDebitAccountId = "pending_transfer_has_different_debit_account_id",
        PendingTransferHasDifferentCreditAccountId = "pending_transfer_has_different_credit_account_id",
        PendingTransferHasDifferentLedger = "pending_transfer_has_different_ledger",
        PendingTransferHasDifferentCode = "pending_transfer_has_different_code",
        ExceedsPendingTransferAmount = "exceeds_pending_transfer_amount",
        PendingTransferHasDifferentAmount = "pending_transfer_has_different_amount",
        PendingTransferAlreadyPosted = "pending_transfer_already_posted",
        PendingTransferAlreadyVoided = "pending_transfer_already_voided",
        PendingTransferExpired = "pending_transfer_expired",
        ExistsWithDifferentFlags = "exists_with_different_flags",
        ExistsWithDifferentDebitAccountId = "exists_with_different_debit_account_id",
        ExistsWithDifferentCreditAccountId = "exists_with_different_credit_account_id",
        ExistsWithDifferentAmount = "exists_with_different_amount",
        ExistsWithDifferentPendingId = "exists_with_different_pending_id",
        ExistsWithDifferentUserData128 = "exists_with_different_user_data_128",
        ExistsWithDifferentUserData64 = "exists_with_different_user_data_64",
        ExistsWithDifferentUserData32 = "exists_with_different_user_data_32",
        ExistsWithDifferentTimeout = "exists_with_different_timeout",
        ExistsWithDifferentLedger = "exists_with_different_ledger",
        ExistsWithDifferentCode = "exists_with_different_code",
        /// The same transfer was recorded before: nothing changed.
        Exists = "exists",
        OverflowsDebitsPending = "overflows_debits_pending",
        OverflowsCreditsPending = "overflows_credits_pending",
        OverflowsDebitsPosted = "overflows_debits_posted",
        OverflowsCreditsPosted = "overflows_credits_posted",
        OverflowsDebits = "overflows_debits",
        OverflowsCredits = "overflows_credits",
        OverflowsTimeout = "overflows_timeout",
        /// The debit account is flagged `debits_must_not_exceed_credits`
        /// and this transfer would make its debits exceed its credits.
        ExceedsCredits = "exceeds_credits",
        /// The credit account is flagged `credits_must_not_exceed_debits`
        /// and this transfer would make its credits exceed its debits.
        ExceedsDebits = "exceeds_debits",
        DebitAccountAlreadyClosed = "debit_account_already_closed",
        CreditAccountAlreadyClosed = "credit_account_already_closed",
    }
);
