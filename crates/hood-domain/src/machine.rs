//! State machines: one trait, one transition table per machine.
//!
//! Every lifecycle in Hood (nodes, hosts, agent commands, workflows, ...) is a
//! small `Copy` enum whose legal moves are listed in exactly one static table,
//! [`StateMachine::transitions`]. Services never compare states to decide
//! whether a move is legal; they call [`StateMachine::transition`] and get an
//! [`InvalidTransition`] (an HTTP 409 upstream) when it is not. Keeping the
//! table as data is what lets [`validate`] and the property tests check every
//! machine the same way.
//!
//! Machines are declared with the crate-internal `state_machine!` macro, which
//! writes the enum (serde names in `snake_case`), `as_str`, `Display`,
//! `FromStr` and the trait impl from one block, so the names, the table and
//! the terminal set cannot drift apart.

use std::collections::VecDeque;
use std::fmt::Debug;

/// A move that the machine's transition table does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {machine} transition: `{from}` cannot go to `{to}`")]
pub struct InvalidTransition {
    /// Machine name, e.g. `node`.
    pub machine: &'static str,
    pub from: String,
    pub to: String,
}

/// A string that names no state of the machine (bad input or a newer schema).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {machine} state `{value}`")]
pub struct UnknownState {
    pub machine: &'static str,
    pub value: String,
}

/// A finite lifecycle with a single static transition table.
///
/// Self-loops are never edges: "move to the state you are already in" is an
/// idempotent no-op that callers handle before asking the machine (it is not
/// a transition and emits no event).
pub trait StateMachine: Copy + Eq + Debug + 'static {
    /// Short machine name used in errors and events, e.g. `node`.
    const NAME: &'static str;
    /// Every state, in declaration order.
    const ALL: &'static [Self];
    /// States a new record may be created in (usually one; a ledger transfer
    /// may also be created already `posted`). Reachability is measured from
    /// these.
    const INITIAL: &'static [Self];
    /// Declared terminal states. [`validate`] checks that exactly these have
    /// no outgoing edges, so the declaration and the table cannot disagree.
    const TERMINAL: &'static [Self];

    /// THE transition table: every allowed `(from, to)` move, nothing else.
    fn transitions() -> &'static [(Self, Self)];

    /// Stable `snake_case` name (database value, API value, serde name).
    fn as_str(self) -> &'static str;

    /// Inverse of [`as_str`](Self::as_str); `None` for an unknown name.
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|st| st.as_str() == s)
    }

    /// No way out: the record's lifecycle is over.
    fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }

    /// A record may be created in this state.
    fn is_initial(self) -> bool {
        Self::INITIAL.contains(&self)
    }

    fn can_transition_to(self, to: Self) -> bool {
        Self::transitions().contains(&(self, to))
    }

    /// The states reachable in one move, in table order.
    fn successors(self) -> impl Iterator<Item = Self> {
        Self::transitions()
            .iter()
            .filter(move |(from, _)| *from == self)
            .map(|&(_, to)| to)
    }

    /// `Ok(to)` when the table allows `self -> to`, otherwise an error naming
    /// the machine and both states.
    fn transition(self, to: Self) -> Result<Self, InvalidTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(InvalidTransition {
                machine: Self::NAME,
                from: self.as_str().to_owned(),
                to: to.as_str().to_owned(),
            })
        }
    }
}

/// A structural problem in a machine's declaration, found by [`validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableDefect {
    #[error("{machine}: state `{state}` is listed twice in ALL")]
    DuplicateState {
        machine: &'static str,
        state: &'static str,
    },
    #[error("{machine}: two states share the name `{state}`")]
    DuplicateName {
        machine: &'static str,
        state: &'static str,
    },
    #[error("{machine}: edge `{from}` -> `{to}` is listed twice")]
    DuplicateEdge {
        machine: &'static str,
        from: &'static str,
        to: &'static str,
    },
    #[error("{machine}: self-loop on `{state}` (a no-op is not a transition)")]
    SelfLoop {
        machine: &'static str,
        state: &'static str,
    },
    #[error("{machine}: terminal state `{state}` has an outgoing edge")]
    TerminalHasExit {
        machine: &'static str,
        state: &'static str,
    },
    #[error("{machine}: non-terminal state `{state}` has no outgoing edge")]
    DeadEnd {
        machine: &'static str,
        state: &'static str,
    },
    #[error("{machine}: machine declares no initial state")]
    NoInitialState { machine: &'static str },
    #[error("{machine}: state `{state}` is unreachable from the initial states")]
    Unreachable {
        machine: &'static str,
        state: &'static str,
    },
    #[error("{machine}: no terminal state is reachable from `{state}`")]
    CannotFinish {
        machine: &'static str,
        state: &'static str,
    },
}

/// Checks a machine's declaration: unique states and names, no duplicate
/// edges or self-loops, terminal states exactly the ones without exits, every
/// state reachable from an initial state, and (when the machine has terminal
/// states at all) a terminal state reachable from every state, so no record
/// can be trapped in a cycle with no way to finish. Returns every defect
/// found; an empty list means the machine is well formed.
///
/// Public so that machines declared outside this crate can be checked in
/// their own tests the same way.
pub fn validate<M: StateMachine>() -> Vec<TableDefect> {
    let machine = M::NAME;
    let mut defects = Vec::new();
    let all = M::ALL;
    let table = M::transitions();

    for (i, s) in all.iter().enumerate() {
        if all[..i].contains(s) {
            defects.push(TableDefect::DuplicateState {
                machine,
                state: s.as_str(),
            });
        } else if all[..i].iter().any(|o| o.as_str() == s.as_str()) {
            defects.push(TableDefect::DuplicateName {
                machine,
                state: s.as_str(),
            });
        }
    }
    for (i, &(from, to)) in table.iter().enumerate() {
        if table[..i].contains(&(from, to)) {
            defects.push(TableDefect::DuplicateEdge {
                machine,
                from: from.as_str(),
                to: to.as_str(),
            });
        }
        if from == to {
            defects.push(TableDefect::SelfLoop {
                machine,
                state: from.as_str(),
            });
        }
    }
    for &s in all {
        let has_exit = s.successors().next().is_some();
        if s.is_terminal() && has_exit {
            defects.push(TableDefect::TerminalHasExit {
                machine,
                state: s.as_str(),
            });
        }
        if !s.is_terminal() && !has_exit {
            defects.push(TableDefect::DeadEnd {
                machine,
                state: s.as_str(),
            });
        }
    }

    if M::INITIAL.is_empty() {
        defects.push(TableDefect::NoInitialState { machine });
    }
    let reachable = reach(M::INITIAL.iter().copied(), |s| {
        Box::new(s.successors()) as Box<dyn Iterator<Item = M>>
    });
    for &s in all {
        if !reachable.contains(&s) {
            defects.push(TableDefect::Unreachable {
                machine,
                state: s.as_str(),
            });
        }
    }

    if !M::TERMINAL.is_empty() {
        // Walk the table backwards from the terminal states.
        let finishing = reach(M::TERMINAL.iter().copied(), |s| {
            Box::new(
                table
                    .iter()
                    .filter(move |(_, to)| *to == s)
                    .map(|&(from, _)| from),
            ) as Box<dyn Iterator<Item = M>>
        });
        for &s in all {
            if !finishing.contains(&s) {
                defects.push(TableDefect::CannotFinish {
                    machine,
                    state: s.as_str(),
                });
            }
        }
    }
    defects
}

/// Breadth-first closure of `start` under `next`.
fn reach<M: StateMachine>(
    start: impl IntoIterator<Item = M>,
    next: impl Fn(M) -> Box<dyn Iterator<Item = M>>,
) -> Vec<M> {
    let mut seen: Vec<M> = Vec::new();
    let mut queue: VecDeque<M> = VecDeque::new();
    for s in start {
        if !seen.contains(&s) {
            seen.push(s);
            queue.push_back(s);
        }
    }
    while let Some(s) = queue.pop_front() {
        for n in next(s) {
            if !seen.contains(&n) {
                seen.push(n);
                queue.push_back(n);
            }
        }
    }
    seen
}

/// Declares a lifecycle enum and its [`StateMachine`] impl from one block:
///
/// ```ignore
/// state_machine! {
///     /// What the machine is.
///     pub enum Light: "light" {
///         /// Doc for the state.
///         Off = "off",
///         On = "on",
///         Broken = "broken",
///     }
///     initial: [Off],
///     terminal: [Broken],
///     transitions: {
///         Off => [On, Broken],
///         On => [Off, Broken],
///         Broken => [],
///     }
/// }
/// ```
///
/// The string names must be the `snake_case` form of the variant names: serde
/// uses `rename_all = "snake_case"` and the tests check the two agree.
macro_rules! state_machine {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident : $machine:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $str:literal ),+ $(,)?
        }
        initial: [ $( $initial:ident ),* $(,)? ],
        terminal: [ $( $terminal:ident ),* $(,)? ],
        transitions: {
            $( $from:ident => [ $( $to:ident ),* $(,)? ] ),* $(,)?
        } $(,)?
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(rename_all = "snake_case")]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Stable `snake_case` name (database, API and serde value).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $str, )+
                }
            }
        }

        impl $crate::machine::StateMachine for $name {
            const NAME: &'static str = $machine;
            const ALL: &'static [Self] = &[ $( Self::$variant, )+ ];
            const INITIAL: &'static [Self] = &[ $( Self::$initial, )* ];
            const TERMINAL: &'static [Self] = &[ $( Self::$terminal, )* ];

            fn transitions() -> &'static [(Self, Self)] {
                const TABLE: &[($name, $name)] = &[
                    $( $( ($name::$from, $name::$to), )* )*
                ];
                TABLE
            }

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::machine::UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <Self as $crate::machine::StateMachine>::parse(s).ok_or_else(|| {
                    $crate::machine::UnknownState {
                        machine: $machine,
                        value: s.to_owned(),
                    }
                })
            }
        }
    };
}
pub(crate) use state_machine;

#[cfg(test)]
mod tests {
    use super::*;

    state_machine! {
        /// A deliberately broken machine, to show `validate` finds defects.
        pub enum Broken: "broken" {
            A = "a",
            B = "b",
            C = "c",
            D = "d",
            E = "e",
        }
        initial: [A],
        terminal: [B],
        transitions: {
            A => [B, B, A],
            B => [C],
            C => [],
            D => [E],
            E => [D],
        }
    }

    state_machine! {
        /// A well-formed two-state machine.
        pub enum Light: "light" {
            Off = "off",
            On = "on",
        }
        initial: [Off],
        terminal: [],
        transitions: {
            Off => [On],
            On => [Off],
        }
    }

    #[test]
    fn validate_reports_each_kind_of_defect() {
        let defects = validate::<Broken>();
        let has = |d: TableDefect| defects.contains(&d);
        let machine = "broken";
        assert!(has(TableDefect::DuplicateEdge {
            machine,
            from: "a",
            to: "b"
        }));
        assert!(has(TableDefect::SelfLoop {
            machine,
            state: "a"
        }));
        assert!(has(TableDefect::TerminalHasExit {
            machine,
            state: "b"
        }));
        assert!(has(TableDefect::DeadEnd {
            machine,
            state: "c"
        }));
        assert!(has(TableDefect::Unreachable {
            machine,
            state: "d"
        }));
        assert!(has(TableDefect::CannotFinish {
            machine,
            state: "e"
        }));
        assert!(has(TableDefect::CannotFinish {
            machine,
            state: "c"
        }));
    }

    #[test]
    fn a_well_formed_machine_has_no_defects() {
        assert_eq!(validate::<Light>(), vec![]);
    }

    #[test]
    fn transition_error_names_machine_and_states() {
        let err = Light::On.transition(Light::On).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("invalid light transition: `on` cannot go to `on`".to_owned())
        );
        assert_eq!(Light::Off.transition(Light::On), Ok(Light::On));
    }

    #[test]
    fn unknown_state_error() {
        let err = "dim".parse::<Light>().map_err(|e| e.to_string());
        assert_eq!(err, Err("unknown light state `dim`".to_owned()));
    }
}
