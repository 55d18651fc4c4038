//! The meters Hood measures itself, without ingest: RPC compute units
//! (from the edge's usage rollups) and node time (from each node's state
//! log).
//!
//! - `rpc.compute_units` has the dimensions `key` (RPC key id), `chain` and
//!   `method_class` ([`method_class`]); its quantity is the compute units
//!   the edge charged, exactly as stored with the usage events.
//! - `node.seconds` has the dimensions `chain` and `node_type`; its
//!   quantity is the whole seconds the organization's nodes spent in a
//!   [billable state](node_state_billable), summed per group and then
//!   floored (the customer never pays for a partial second). Price it per
//!   node-hour with a rate "`x` per 3,600".

use super::meter::Reading;
use crate::lifecycle::NodeState;
use std::collections::BTreeMap;

/// Compute units served through the edge.
pub const RPC_COMPUTE_UNITS: &str = "rpc.compute_units";
/// Seconds of managed nodes in a billable state.
pub const NODE_SECONDS: &str = "node.seconds";

/// Whether `meter` is measured by Hood itself (not ingested).
pub fn is_builtin(meter: &str) -> bool {
    meter == RPC_COMPUTE_UNITS || meter == NODE_SECONDS
}

/// The class of a JSON-RPC method for pricing: `trace` and `debug`
/// namespaces are heavy, submissions are `write`, everything else `read`.
pub fn method_class(method: &str) -> &'static str {
    if method.starts_with("trace_") {
        "trace"
    } else if method.starts_with("debug_") {
        "debug"
    } else if matches!(
        method,
        "eth_sendRawTransaction" | "eth_sendTransaction" | "eth_sendRawTransactionSync"
    ) {
        "write"
    } else {
        "read"
    }
}

/// Whether time in `state` is billed: the node is serving or catching up
/// for the customer. Provisioning, down, migrating, maintenance and
/// teardown are the platform's time, not the customer's.
pub fn node_state_billable(state: NodeState) -> bool {
    matches!(
        state,
        NodeState::Syncing | NodeState::Healthy | NodeState::Degraded
    )
}

/// Milliseconds within `[from_ms, to_ms)` a node spent in billable states,
/// given the state in force at `from_ms` (`None`: not created yet) and the
/// changes after it (`(at_ms, new_state)`, oldest first; changes outside
/// the range are clamped into it).
pub fn billable_millis(
    state_at_start: Option<NodeState>,
    changes: &[(i64, NodeState)],
    from_ms: i64,
    to_ms: i64,
) -> u64 {
    if to_ms <= from_ms {
        return 0;
    }
    let mut total: u64 = 0;
    let mut current = state_at_start;
    let mut since = from_ms;
    for &(at, state) in changes {
        let at = at.clamp(from_ms, to_ms);
        if current.is_some_and(node_state_billable) && at > since {
            total = total.saturating_add(u64::try_from(at - since).unwrap_or(0));
        }
        current = Some(state);
        since = since.max(at);
    }
    if current.is_some_and(node_state_billable) && to_ms > since {
        total = total.saturating_add(u64::try_from(to_ms - since).unwrap_or(0));
    }
    total
}

/// Compute-unit readings from rollup rows `(key, chain, method, units)`:
/// summed per key × chain × method class, in the groups' order.
pub fn compute_unit_readings<'a>(
    rows: impl IntoIterator<Item = (&'a str, &'a str, &'a str, u64)>,
) -> Vec<Reading> {
    let mut groups: BTreeMap<(String, String, &'static str), u64> = BTreeMap::new();
    for (key, chain, method, units) in rows {
        let sum = groups
            .entry((key.to_owned(), chain.to_owned(), method_class(method)))
            .or_insert(0);
        *sum = sum.saturating_add(units);
    }
    groups
        .into_iter()
        .filter(|(_, units)| *units > 0)
        .map(|((key, chain, class), quantity)| Reading {
            meter: RPC_COMPUTE_UNITS.to_owned(),
            dimensions: BTreeMap::from([
                ("chain".to_owned(), chain),
                ("key".to_owned(), key),
                ("method_class".to_owned(), class.to_owned()),
            ]),
            quantity,
        })
        .collect()
}

/// Node-time readings from `(chain, node_type, billable_ms)` per node:
/// summed per chain × node type, then floored to whole seconds.
pub fn node_time_readings<'a>(
    nodes: impl IntoIterator<Item = (&'a str, &'a str, u64)>,
) -> Vec<Reading> {
    let mut groups: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (chain, node_type, ms) in nodes {
        let sum = groups
            .entry((chain.to_owned(), node_type.to_owned()))
            .or_insert(0);
        *sum = sum.saturating_add(ms);
    }
    groups
        .into_iter()
        .map(|((chain, node_type), ms)| Reading {
            meter: NODE_SECONDS.to_owned(),
            dimensions: BTreeMap::from([
                ("chain".to_owned(), chain),
                ("node_type".to_owned(), node_type),
            ]),
            quantity: ms / 1000,
        })
        .filter(|r| r.quantity > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use NodeState::*;

    #[test]
    fn method_classes() {
        assert_eq!(method_class("trace_block"), "trace");
        assert_eq!(method_class("debug_traceTransaction"), "debug");
        assert_eq!(method_class("eth_sendRawTransaction"), "write");
        assert_eq!(method_class("eth_blockNumber"), "read");
        assert_eq!(
            method_class("tracer"),
            "read",
            "a prefix needs its underscore"
        );
    }

    #[test]
    fn only_serving_time_is_billed() {
        // created at 0 (provisioning), syncing at 10, healthy at 30, down
        // at 50, healthy at 70, terminating at 90; range [0, 100).
        let changes = [
            (10, Syncing),
            (30, Healthy),
            (50, Down),
            (70, Healthy),
            (90, Terminating),
        ];
        assert_eq!(
            billable_millis(Some(Provisioning), &changes, 0, 100),
            20 + 20 + 20
        );
        // A range that starts inside a healthy stretch.
        assert_eq!(
            billable_millis(Some(Healthy), &changes[3..], 60, 80),
            10 + 10
        );
        // Not created before the range, created inside it.
        assert_eq!(billable_millis(None, &[(40, Healthy)], 0, 100), 60);
        assert_eq!(billable_millis(Some(Healthy), &[], 5, 5), 0);
    }

    #[test]
    fn readings_group_and_floor() {
        let cu = compute_unit_readings([
            ("k1", "eth", "eth_call", 10),
            ("k1", "eth", "eth_blockNumber", 5),
            ("k1", "eth", "trace_block", 100),
            ("k2", "eth", "eth_call", 0),
        ]);
        assert_eq!(cu.len(), 2, "{cu:?}");
        assert_eq!(cu[0].quantity, 15);
        assert_eq!(cu[0].dimensions["method_class"], "read");
        assert_eq!(cu[1].quantity, 100);

        let nodes = node_time_readings([
            ("eth", "dev", 1_500),
            ("eth", "dev", 1_600),
            ("eth", "full", 999),
        ]);
        assert_eq!(nodes.len(), 1, "under a second is not billed: {nodes:?}");
        assert_eq!(nodes[0].quantity, 3, "summed then floored: 3.1 s → 3");
    }

    proptest! {
        /// Splitting a range anywhere bills the same total: consecutive
        /// periods neither lose nor double-count a millisecond.
        #[test]
        fn periods_tile(
            mut changes in proptest::collection::vec((0i64..10_000, 0usize..4), 0..20),
            cut in 0i64..10_000,
        ) {
            let states = [Provisioning, Syncing, Healthy, Down];
            changes.sort();
            let changes: Vec<(i64, NodeState)> =
                changes.into_iter().map(|(at, s)| (at, states[s])).collect();
            let whole = billable_millis(Some(Provisioning), &changes, 0, 10_000);
            let before: Vec<_> = changes.iter().copied().filter(|(at, _)| *at < cut).collect();
            let after: Vec<_> = changes.iter().copied().filter(|(at, _)| *at >= cut).collect();
            let state_at_cut = before.last().map_or(Provisioning, |(_, s)| *s);
            let first = billable_millis(Some(Provisioning), &before, 0, cut);
            let second = billable_millis(Some(state_at_cut), &after, cut, 10_000);
            prop_assert_eq!(whole, first + second);
        }
    }
}
