//! The properties every state machine must have, written once generically
//! and applied to each lifecycle.

use hood_domain::lifecycle::*;
use hood_domain::machine::{validate, InvalidTransition, StateMachine, UnknownState};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;
use std::str::FromStr;

/// What the tests need beyond the trait: the macro-generated impls.
trait Machine:
    StateMachine + Serialize + DeserializeOwned + Display + FromStr<Err = UnknownState>
{
}
impl<M> Machine for M where
    M: StateMachine + Serialize + DeserializeOwned + Display + FromStr<Err = UnknownState>
{
}

fn is_snake_case(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('_')
        && !s.contains("__")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Structure: no duplicate states, names or edges; no self-loops; declared
/// terminal states are exactly those without exits; everything reachable
/// from an initial state; a terminal state reachable from everywhere.
fn table_is_well_formed<M: Machine>() {
    assert_eq!(validate::<M>(), vec![], "{}", M::NAME);
    // Spelled out as well, so a failure here reads on its own.
    for &s in M::ALL {
        let exits = s.successors().count();
        if s.is_terminal() {
            assert_eq!(exits, 0, "{}: terminal {s} has exits", M::NAME);
        } else {
            assert!(exits > 0, "{}: non-terminal {s} has no exit", M::NAME);
        }
    }
    assert!(!M::INITIAL.is_empty(), "{}", M::NAME);
    assert!(is_snake_case(M::NAME), "{}", M::NAME);
}

/// `can_transition_to` and `transition` agree with the table for every pair.
fn table_decides_every_pair<M: Machine>() {
    let table = M::transitions();
    for &from in M::ALL {
        for &to in M::ALL {
            let listed = table.contains(&(from, to));
            assert_eq!(from.can_transition_to(to), listed, "{from} -> {to}");
            match from.transition(to) {
                Ok(next) => {
                    assert!(listed, "{from} -> {to} allowed but not listed");
                    assert_eq!(next, to);
                }
                Err(e) => {
                    assert!(!listed, "{from} -> {to} listed but refused");
                    assert_eq!(
                        e,
                        InvalidTransition {
                            machine: M::NAME,
                            from: from.as_str().to_owned(),
                            to: to.as_str().to_owned(),
                        }
                    );
                    let msg = e.to_string();
                    assert!(msg.contains(M::NAME) && msg.contains(from.as_str()));
                }
            }
        }
        assert_eq!(
            from.successors().collect::<Vec<_>>(),
            table
                .iter()
                .filter(|(f, _)| *f == from)
                .map(|&(_, t)| t)
                .collect::<Vec<_>>()
        );
    }
}

/// Names: snake_case, unique, and identical across `as_str`, `Display`,
/// `FromStr`, `parse` and serde.
fn names_round_trip<M: Machine>() {
    for &s in M::ALL {
        let name = s.as_str();
        assert!(is_snake_case(name), "{name}");
        assert_eq!(s.to_string(), name);
        assert_eq!(M::parse(name), Some(s));
        assert_eq!(name.parse::<M>(), Ok(s));
        assert_eq!(
            serde_json::to_value(s).ok(),
            Some(serde_json::Value::String(name.to_owned())),
            "serde name of {s:?}"
        );
        let back: Option<M> = serde_json::from_value(serde_json::json!(name)).ok();
        assert_eq!(back, Some(s));
        assert_eq!(M::ALL.iter().filter(|o| o.as_str() == name).count(), 1);
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config::with_cases(64))
}

/// Random walks that attempt arbitrary moves: the state changes exactly when
/// the table allows it, and a terminal state is never left.
fn random_walks_obey_the_table<M: Machine>() -> Result<(), String> {
    let walks = (
        prop::sample::select(M::INITIAL),
        prop::collection::vec(prop::sample::select(M::ALL), 0..40),
    );
    runner()
        .run(&walks, |(start, targets)| {
            let mut state = start;
            for to in targets {
                let was_terminal = state.is_terminal();
                match state.transition(to) {
                    Ok(next) => {
                        prop_assert!(!was_terminal, "left terminal {state}");
                        prop_assert!(M::transitions().contains(&(state, next)));
                        state = next;
                    }
                    Err(e) => {
                        prop_assert!(!state.can_transition_to(to));
                        prop_assert_eq!(e.from, state.as_str());
                    }
                }
            }
            Ok(())
        })
        .map_err(|e| e.to_string())
}

/// Walks that only take allowed edges never fail, and can always continue
/// until they reach a terminal state.
fn allowed_walks_never_fail<M: Machine>() -> Result<(), String> {
    let walks = (
        prop::sample::select(M::INITIAL),
        prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    );
    runner()
        .run(&walks, |(start, picks)| {
            let mut state = start;
            for pick in picks {
                let exits: Vec<M> = state.successors().collect();
                if exits.is_empty() {
                    prop_assert!(state.is_terminal());
                    break;
                }
                let to = *pick.get(&exits);
                state = state
                    .transition(to)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Ok(())
        })
        .map_err(|e| e.to_string())
}

/// Arbitrary strings: `parse` and serde accept exactly the state names.
fn only_state_names_parse<M: Machine>() -> Result<(), String> {
    let names: Vec<String> = M::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    let inputs = prop_oneof![
        "[a-z_]{0,20}",
        any::<String>(),
        prop::sample::select(names.clone()).prop_map(|n| n.to_uppercase()),
        prop::sample::select(names.clone()).prop_map(|n| format!(" {n}")),
    ];
    runner()
        .run(&inputs, |s| {
            let parsed = M::parse(&s);
            prop_assert_eq!(parsed.is_some(), names.contains(&s));
            let via_serde: Option<M> = serde_json::from_value(serde_json::json!(s)).ok();
            prop_assert_eq!(via_serde, parsed);
            match s.parse::<M>() {
                Ok(st) => prop_assert_eq!(Some(st), parsed),
                Err(e) => {
                    prop_assert!(parsed.is_none());
                    prop_assert_eq!(e.machine, M::NAME);
                    prop_assert_eq!(e.value, s);
                }
            }
            Ok(())
        })
        .map_err(|e| e.to_string())
}

macro_rules! machine_tests {
    ($($module:ident => $ty:ty),+ $(,)?) => {
        $(
            mod $module {
                use super::*;

                #[test]
                fn table_is_well_formed() {
                    super::table_is_well_formed::<$ty>();
                }

                #[test]
                fn table_decides_every_pair() {
                    super::table_decides_every_pair::<$ty>();
                }

                #[test]
                fn names_round_trip() {
                    super::names_round_trip::<$ty>();
                }

                #[test]
                fn random_walks_obey_the_table() -> Result<(), String> {
                    super::random_walks_obey_the_table::<$ty>()
                }

                #[test]
                fn allowed_walks_never_fail() -> Result<(), String> {
                    super::allowed_walks_never_fail::<$ty>()
                }

                #[test]
                fn only_state_names_parse() -> Result<(), String> {
                    super::only_state_names_parse::<$ty>()
                }
            }
        )+
    };
}

machine_tests! {
    node => NodeState,
    sync_status => SyncStatus,
    application_health => ApplicationHealth,
    host => HostState,
    command => CommandState,
    workflow => WorkflowState,
    workflow_step => StepState,
    incident => IncidentState,
    subscription => SubscriptionState,
}

/// Machine names are distinct: they label errors and events.
#[test]
fn machine_names_are_unique() {
    let names = [
        NodeState::NAME,
        SyncStatus::NAME,
        ApplicationHealth::NAME,
        HostState::NAME,
        CommandState::NAME,
        WorkflowState::NAME,
        StepState::NAME,
        IncidentState::NAME,
        SubscriptionState::NAME,
    ];
    for (i, n) in names.iter().enumerate() {
        assert!(!names[..i].contains(n), "{n}");
    }
}
