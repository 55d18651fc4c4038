//! Hierarchical scopes of service accounts: `service.{org}.{resource}[.{id}]`
//! with the actions allowed there (`storage.acme.namespaces.logs: [read]`).
//!
//! A scope is a path; a grant on a path covers everything beneath it
//! (`storage.acme` covers every storage resource of `acme`,
//! `storage.acme.namespaces` every namespace, `….namespaces.logs` only
//! that one). A service account's grants may never exceed its owner's:
//! [`Grants::exceeding`] names the first (scope, action) the owner does not
//! hold. Pure: what a token may do is decided here, the store and the bus
//! only carry grants.
//!
//! Beside an API key's flat permission list (`identity::ApiKey::scopes`,
//! which limits the kinds of request a key may
//! make), grants limit the resources: a request must pass both.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The services scopes name.
pub const SERVICES: [&str; 3] = ["compute", "storage", "nodes"];

/// The most segments a scope has: service, organization, resource, id.
const MAX_SEGMENTS: usize = 4;
/// The longest segment (an object store name, an id).
const MAX_SEGMENT_LEN: usize = 64;

/// A scope path: a known service, an organization, then optionally a
/// resource kind and one resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    segments: Vec<String>,
}

/// Why a text is not a scope or a grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("a scope is `service.org[.resource[.id]]`, 2 to 4 segments; {0:?} has {1}")]
    Segments(String, usize),
    #[error("unknown service {0:?} (one of compute, storage, nodes)")]
    UnknownService(String),
    #[error("segment {0:?} must be 1 to 64 of a-z, A-Z, 0-9, `-` and `_`")]
    BadSegment(String),
    #[error("unknown action {0:?} (one of create, read, update, delete)")]
    UnknownAction(String),
    #[error("a grant needs at least one action")]
    NoActions,
}

impl Scope {
    /// The scope of a service in an organization (the widest an account
    /// can hold there).
    pub fn service(service: &str, org: &str) -> Result<Self, ScopeError> {
        format!("{service}.{org}").parse()
    }

    /// This scope, one level down (`storage.acme` → `storage.acme.namespaces`).
    pub fn child(&self, segment: &str) -> Result<Self, ScopeError> {
        format!("{self}.{segment}").parse()
    }

    pub fn service_name(&self) -> &str {
        &self.segments[0]
    }

    pub fn org(&self) -> &str {
        &self.segments[1]
    }

    pub fn resource(&self) -> Option<&str> {
        self.segments.get(2).map(String::as_str)
    }

    pub fn id(&self) -> Option<&str> {
        self.segments.get(3).map(String::as_str)
    }

    /// Whether a grant on `self` reaches `other`: `self` is `other` or
    /// one of its ancestors.
    pub fn covers(&self, other: &Scope) -> bool {
        other.segments.len() >= self.segments.len()
            && other.segments[..self.segments.len()] == self.segments[..]
    }
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SEGMENT_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if !(2..=MAX_SEGMENTS).contains(&segments.len()) {
            return Err(ScopeError::Segments(text.to_owned(), segments.len()));
        }
        if let Some(bad) = segments.iter().find(|s| !valid_segment(s)) {
            return Err(ScopeError::BadSegment(bad.clone()));
        }
        if !SERVICES.contains(&segments[0].as_str()) {
            return Err(ScopeError::UnknownService(segments[0].clone()));
        }
        Ok(Self { segments })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a grant allows on its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Create, Action::Read, Action::Update, Action::Delete];

    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

impl FromStr for Action {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == text)
            .ok_or_else(|| ScopeError::UnknownAction(text.to_owned()))
    }
}

/// Actions on a scope and everything beneath it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub scope: Scope,
    pub actions: BTreeSet<Action>,
}

impl Grant {
    pub fn new(
        scope: Scope,
        actions: impl IntoIterator<Item = Action>,
    ) -> Result<Self, ScopeError> {
        let actions: BTreeSet<Action> = actions.into_iter().collect();
        if actions.is_empty() {
            return Err(ScopeError::NoActions);
        }
        Ok(Self { scope, actions })
    }
}

/// Everything a token may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Grants(pub Vec<Grant>);

impl Grants {
    /// Whether some grant covers `target` with `action`.
    pub fn allows(&self, target: &Scope, action: Action) -> bool {
        self.0
            .iter()
            .any(|g| g.actions.contains(&action) && g.scope.covers(target))
    }

    /// The first (scope, action) of `self` that `owner` does not hold,
    /// `None` when every grant is within the owner's. Exact: a grant on a
    /// scope is within the owner's only if one owner grant covers that
    /// scope with the action (no union of narrower grants can cover all
    /// that lies beneath it).
    pub fn exceeding(&self, owner: &Grants) -> Option<(Scope, Action)> {
        self.0.iter().find_map(|g| {
            g.actions
                .iter()
                .find(|a| !owner.allows(&g.scope, **a))
                .map(|a| (g.scope.clone(), *a))
        })
    }

    /// A user's grants from their role's permissions in `org`: `read`
    /// reads every service there, `operate` creates, updates and deletes.
    pub fn of_role(org: &str, read: bool, operate: bool) -> Result<Self, ScopeError> {
        let mut actions = Vec::new();
        if read {
            actions.push(Action::Read);
        }
        if operate {
            actions.extend([Action::Create, Action::Update, Action::Delete]);
        }
        if actions.is_empty() {
            return Ok(Self::default());
        }
        SERVICES
            .iter()
            .map(|s| Grant::new(Scope::service(s, org)?, actions.iter().copied()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

/// A service account: a non-human identity of an organization, created by
/// a user (its owner) and holding grants that never exceed the owner's.
/// Its API keys act for the owner but reach only what the grants name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub id: crate::ServiceAccountId,
    pub org_id: crate::OrgId,
    pub owner_id: crate::UserId,
    pub name: String,
    pub grants: Grants,
    pub created_at: crate::Timestamp,
}

/// An S3 access key of a service account: S3 calls signed with it act as
/// the account (its grants, its owner's role). The secret is kept sealed
/// by the store and never part of this record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3AccessKey {
    /// Public, in the `Credential` of every SigV4 signature.
    pub access_key_id: String,
    pub service_account_id: crate::ServiceAccountId,
    pub org_id: crate::OrgId,
    pub created_at: crate::Timestamp,
    pub revoked_at: Option<crate::Timestamp>,
}

/// The scope of a kind of resource of `org` (its slug) in `service`, or of
/// one of them: `nodes.acme.nodes`, `compute.acme.allocations.{id}`.
pub fn resource(
    service: &str,
    org: &str,
    kind: &str,
    id: Option<&str>,
) -> Result<Scope, ScopeError> {
    let kind = Scope::service(service, org)?.child(kind)?;
    match id {
        Some(id) => kind.child(id),
        None => Ok(kind),
    }
}

/// The scope of one storage namespace of `org` (its slug):
/// `storage.{org}.namespaces.{name}`.
pub fn storage_namespace(org: &str, namespace: &str) -> Result<Scope, ScopeError> {
    Scope::service("storage", org)?
        .child("namespaces")?
        .child(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scope(text: &str) -> Scope {
        text.parse().unwrap()
    }

    #[test]
    fn routes_name_resources_a_namespace_grant_covers_only_its_own() {
        let logs = storage_namespace("acme", "logs").unwrap();
        assert_eq!(logs.to_string(), "storage.acme.namespaces.logs");
        let node = resource("nodes", "acme", "nodes", Some("0190")).unwrap();
        assert_eq!(node.to_string(), "nodes.acme.nodes.0190");
        assert_eq!(
            resource("compute", "acme", "allocations", None)
                .unwrap()
                .to_string(),
            "compute.acme.allocations"
        );
        let reader = Grants(vec![Grant::new(logs.clone(), [Action::Read]).unwrap()]);
        assert!(reader.allows(&logs, Action::Read));
        assert!(!reader.allows(&logs, Action::Create));
        assert!(!reader.allows(&storage_namespace("acme", "logs-2").unwrap(), Action::Read));
        assert!(!reader.allows(&storage_namespace("globex", "logs").unwrap(), Action::Read));
        assert!(!reader.allows(&node, Action::Read));
        // A name that is no scope segment names nothing.
        assert!(storage_namespace("acme", "a.b").is_err());
    }

    #[test]
    fn scopes_parse_and_name_their_parts() {
        let s = scope("storage.acme.namespaces.logs");
        assert_eq!(
            (s.service_name(), s.org(), s.resource(), s.id()),
            ("storage", "acme", Some("namespaces"), Some("logs"))
        );
        assert_eq!(s.to_string(), "storage.acme.namespaces.logs");
        assert_eq!(scope("compute.acme").resource(), None);
        assert!(matches!(
            "storage".parse::<Scope>(),
            Err(ScopeError::Segments(_, 1))
        ));
        assert!(matches!(
            "storage.a.b.c.d".parse::<Scope>(),
            Err(ScopeError::Segments(_, 5))
        ));
        assert_eq!(
            "mail.acme".parse::<Scope>(),
            Err(ScopeError::UnknownService("mail".into()))
        );
        assert_eq!(
            "storage..x".parse::<Scope>(),
            Err(ScopeError::BadSegment(String::new()))
        );
        assert!(matches!(
            "storage.ac me".parse::<Scope>(),
            Err(ScopeError::BadSegment(_))
        ));
        assert!(matches!(
            "storage.acme.*".parse::<Scope>(),
            Err(ScopeError::BadSegment(_))
        ));
        assert_eq!(
            "admin".parse::<Action>(),
            Err(ScopeError::UnknownAction("admin".into()))
        );
        assert_eq!(
            Grant::new(scope("storage.acme"), []),
            Err(ScopeError::NoActions)
        );
    }

    #[test]
    fn a_grant_reaches_down_its_path_only() {
        let logs: Grants = serde_json::from_str(
            r#"[{"scope": "storage.acme.namespaces.logs", "actions": ["read"]}]"#,
        )
        .unwrap();
        assert!(logs.allows(&scope("storage.acme.namespaces.logs"), Action::Read));
        assert!(!logs.allows(&scope("storage.acme.namespaces.logs"), Action::Delete));
        assert!(!logs.allows(&scope("storage.acme.namespaces.metrics"), Action::Read));
        assert!(
            !logs.allows(&scope("storage.acme.namespaces"), Action::Read),
            "not the list"
        );
        assert!(!logs.allows(&scope("storage.other.namespaces.logs"), Action::Read));
        assert!(!logs.allows(&scope("compute.acme.namespaces.logs"), Action::Read));
        // A prefix of a segment is not an ancestor.
        assert!(!logs.allows(&scope("storage.acme.namespaces.logsx"), Action::Read));
        let all = Grants(vec![Grant::new(scope("compute.acme"), Action::ALL).unwrap()]);
        assert!(all.allows(&scope("compute.acme.containers.c1"), Action::Delete));
    }

    #[test]
    fn an_account_never_exceeds_its_owner() {
        let owner = Grants::of_role("acme", true, false).unwrap();
        let reader = Grants(vec![Grant::new(
            scope("storage.acme.namespaces.logs"),
            [Action::Read],
        )
        .unwrap()]);
        assert_eq!(reader.exceeding(&owner), None);
        let writer = Grants(vec![Grant::new(
            scope("storage.acme.namespaces"),
            [Action::Read, Action::Create],
        )
        .unwrap()]);
        assert_eq!(
            writer.exceeding(&owner),
            Some((scope("storage.acme.namespaces"), Action::Create))
        );
        let elsewhere = Grants(vec![
            Grant::new(scope("storage.other"), [Action::Read]).unwrap()
        ]);
        assert_eq!(
            elsewhere.exceeding(&owner),
            Some((scope("storage.other"), Action::Read))
        );
        // Narrow grants of the owner do not add up to a wider one.
        let narrow_owner = Grants(vec![
            Grant::new(scope("storage.acme.namespaces.a"), [Action::Read]).unwrap(),
            Grant::new(scope("storage.acme.namespaces.b"), [Action::Read]).unwrap(),
        ]);
        let wide = Grants(vec![Grant::new(
            scope("storage.acme.namespaces"),
            [Action::Read],
        )
        .unwrap()]);
        assert!(wide.exceeding(&narrow_owner).is_some());
        assert_eq!(
            Grants::of_role("acme", false, false).unwrap(),
            Grants::default()
        );
        let operator = Grants::of_role("acme", true, true).unwrap();
        assert!(operator.allows(&scope("nodes.acme.nodes.n1"), Action::Delete));
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("c-1".to_owned())
        ]
    }

    fn any_scope() -> impl Strategy<Value = Scope> {
        (
            prop::sample::select(SERVICES.to_vec()),
            segment(),
            prop::collection::vec(segment(), 0..=2),
        )
            .prop_map(|(service, org, rest)| {
                let mut text = format!("{service}.{org}");
                for s in rest {
                    text.push('.');
                    text.push_str(&s);
                }
                text.parse().unwrap()
            })
    }

    fn any_action() -> impl Strategy<Value = Action> {
        prop::sample::select(Action::ALL.to_vec())
    }

    fn any_grants() -> impl Strategy<Value = Grants> {
        prop::collection::vec(
            (
                any_scope(),
                prop::collection::btree_set(any_action(), 1..=4),
            )
                .prop_map(|(scope, actions)| Grant { scope, actions }),
            0..5,
        )
        .prop_map(Grants)
    }

    proptest! {
        #[test]
        fn scopes_round_trip_through_text(s in any_scope()) {
            prop_assert_eq!(s.to_string().parse::<Scope>().unwrap(), s.clone());
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), s);
        }

        #[test]
        fn covering_is_a_partial_order(a in any_scope(), b in any_scope(), c in any_scope()) {
            prop_assert!(a.covers(&a));
            if a.covers(&b) && b.covers(&c) {
                prop_assert!(a.covers(&c));
            }
            if a.covers(&b) && b.covers(&a) {
                prop_assert_eq!(a, b);
            }
        }

        /// Whatever passes the owner check can do nothing the owner
        /// cannot, on any scope and action.
        #[test]
        fn within_the_owner_means_never_more(
            owner in any_grants(),
            account in any_grants(),
            target in any_scope(),
            action in any_action(),
        ) {
            if account.exceeding(&owner).is_none() && account.allows(&target, action) {
                prop_assert!(owner.allows(&target, action));
            }
            // The owner never exceeds itself; nothing exceeds through nothing.
            prop_assert_eq!(owner.exceeding(&owner), None);
            prop_assert_eq!(Grants::default().exceeding(&owner), None);
        }
    }
}
