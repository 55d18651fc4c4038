//! The retry rule: which calls the edge may send again, to another
//! upstream, after they may already have reached one.
//!
//! A read may be asked twice; a submission may not. A transaction sent
//! twice can be spent twice (`eth_sendTransaction`, Bitcoin's
//! `sendtoaddress` sign a new one each time), and even a signed one sent
//! twice turns a success into an "already known" error for the client. So
//! once a submission may have left the edge (the connection was made), the
//! answer the edge got, or the failure, is final.
//!
//! Method names are compared ignoring ASCII case, so that a node lenient
//! about case cannot turn a retry into a second submission.

/// Methods that submit something to the chain, on the chains Hood serves.
const SUBMITTING_METHODS: &[&str] = &[
    // Ethereum and other EVM chains (beyond the `eth_send` family).
    "personal_sendTransaction",
    "eth_submitWork",
    // Solana.
    "sendTransaction",
    "requestAirdrop",
    // Bitcoin Core.
    "sendrawtransaction",
    "sendtoaddress",
    "sendmany",
    "send",
    "sendall",
    "submitblock",
    "submitpackage",
];

/// Method families that submit something: every EVM `eth_send…`
/// (`eth_sendRawTransaction`, `eth_sendTransaction`, bundles, private and
/// conditional transactions, user operations) and CometBFT's `broadcast_…`
/// (Cosmos: `broadcast_tx_sync`, `broadcast_tx_async`,
/// `broadcast_tx_commit`, `broadcast_evidence`).
const SUBMITTING_PREFIXES: &[&str] = &["eth_send", "broadcast_"];

/// Whether a call of `method` submits something to the chain (a
/// transaction, a block, evidence).
fn submits(method: &str) -> bool {
    SUBMITTING_METHODS
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
        || SUBMITTING_PREFIXES.iter().any(|p| {
            method
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p))
        })
}

/// Whether a call of `method` may be sent again after it may already have
/// reached an upstream: anything but a submission.
pub fn may_resend(method: &str) -> bool {
    !submits(method)
}

/// Whether a JSON-RPC batch of these methods may be sent again: a batch is
/// resent whole, so one submission in it pins all of it.
pub fn may_resend_all<'a>(methods: impl IntoIterator<Item = &'a str>) -> bool {
    methods.into_iter().all(may_resend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_submissions_are_never_resent() {
        for method in [
            "eth_sendRawTransaction",
            "eth_sendTransaction",
            "eth_sendRawTransactionConditional",
            "eth_sendBundle",
            "eth_sendPrivateTransaction",
            "eth_sendUserOperation",
            "personal_sendTransaction",
            "eth_submitWork",
            "sendTransaction",
            "requestAirdrop",
            "sendrawtransaction",
            "sendtoaddress",
            "sendmany",
            "send",
            "sendall",
            "submitblock",
            "submitpackage",
            "broadcast_tx_sync",
            "broadcast_tx_async",
            "broadcast_tx_commit",
            "broadcast_evidence",
        ] {
            assert!(submits(method), "{method}");
            assert!(!may_resend(method), "{method}");
        }
    }

    #[test]
    fn case_does_not_hide_a_submission() {
        for method in [
            "ETH_SENDRAWTRANSACTION",
            "eth_SendRawTransaction",
            "SendTransaction",
            "sendRawTransaction",
            "Broadcast_Tx_Commit",
        ] {
            assert!(!may_resend(method), "{method}");
        }
    }

    #[test]
    fn reads_may_be_resent() {
        for method in [
            "eth_blockNumber",
            "eth_call",
            "eth_estimateGas",
            "eth_getTransactionReceipt",
            "eth_getTransactionByHash",
            "eth_signTransaction",
            "eth_subscribe",
            "eth_",
            "eth_sen",
            "getSlot",
            "getSignatureStatuses",
            "simulateTransaction",
            "getrawtransaction",
            "sendheaders",
            "testmempoolaccept",
            "broadcast",
            "abci_query",
            "",
            "é",
        ] {
            assert!(may_resend(method), "{method}");
        }
    }

    #[test]
    fn one_submission_pins_a_whole_batch() {
        assert!(may_resend_all(["eth_blockNumber", "eth_call"]));
        assert!(may_resend_all([]));
        assert!(!may_resend_all([
            "eth_blockNumber",
            "eth_sendRawTransaction",
            "eth_call"
        ]));
        assert!(!may_resend_all(["sendTransaction"]));
    }
}
