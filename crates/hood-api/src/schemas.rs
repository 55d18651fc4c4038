//! Schemas of values the server checks beyond their JSON type (closed sets,
//! patterns, lengths, ranges), for `schema_with` in parameter and body
//! types. Each must admit every value the server accepts — a value a schema
//! refuses is "negative data" that clients (and the fuzzer) expect to be
//! refused — and should refuse what the server refuses, so that generated
//! valid requests succeed. The tests hold each pattern to its rule.
//!
//! `optional_*` variants also admit `null`: serde takes `null` as "not
//! given" for an `Option`.

use hood_domain::identity::{Permission, Role};
use hood_domain::lifecycle::{IncidentState, WorkflowState};
use hood_domain::machine::StateMachine;
use hood_domain::rpc::Granularity;
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};

/// The windows `GET /nodes/{id}/uptime` accepts, with their length in ms.
pub const UPTIME_WINDOWS: [(&str, i64); 3] = [
    ("24h", 24 * 3_600_000),
    ("7d", 7 * 24 * 3_600_000),
    ("30d", 30 * 24 * 3_600_000),
];

/// A slug (`hood_domain::validate::slug`).
pub const SLUG_PATTERN: &str = "^[a-z][a-z0-9-]{0,61}[a-z0-9]$";
/// An artifact name (`hood_artifacts::names::name`).
pub const ARTIFACT_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
/// An artifact version (`hood_artifacts::names::version`).
pub const ARTIFACT_VERSION_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$";
/// Every instant `parse_instant` accepts: Unix milliseconds or RFC 3339.
pub const INSTANT_PATTERN: &str = "^(-?[0-9]+|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))$";
/// A display name (`hood_domain::validate::display_name`): no control
/// character, something besides white space; 1–200 characters (the schema's
/// length bounds).
pub const DISPLAY_NAME_PATTERN: &str =
    "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// An e-mail address (`hood_domain::validate::email`): one `@`, no white
/// space or control character, a dotted domain not starting or ending
/// with a dot.
pub const EMAIL_PATTERN: &str =
    "^[^\\s@\\u0000-\\u001F\\u007F-\\u009F]+@[^\\s@.\\u0000-\\u001F\\u007F-\\u009F][^\\s@\\u0000-\\u001F\\u007F-\\u009F]*\\.[^\\s@\\u0000-\\u001F\\u007F-\\u009F]*[^\\s@.\\u0000-\\u001F\\u007F-\\u009F]$";

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::new(Type::String))
}

/// `builder` that also admits `null`.
fn or_null(builder: ObjectBuilder) -> Schema {
    builder
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .into()
}

fn names(values: impl IntoIterator<Item = &'static str>) -> Vec<Value> {
    values.into_iter().map(Value::from).collect()
}

fn string_enum_builder(values: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    string().enum_values(Some(names(values)))
}

fn string_enum(values: impl IntoIterator<Item = &'static str>) -> Schema {
    string_enum_builder(values).into()
}

fn optional_string_enum(values: impl IntoIterator<Item = &'static str>) -> Schema {
    let mut all = names(values);
    all.push(Value::Null);
    or_null(string().enum_values(Some(all)))
}

fn pattern(p: &str) -> ObjectBuilder {
    string().pattern(Some(p))
}

/// `open | acknowledged | muted | resolved`, from the incident state machine.
pub fn incident_state() -> Schema {
    string_enum(IncidentState::ALL.iter().map(|s| s.as_str()))
}

/// Every workflow state, from the workflow state machine.
pub fn workflow_state() -> Schema {
    string_enum(WorkflowState::ALL.iter().map(|s| s.as_str()))
}

/// `hour | day`.
pub fn granularity() -> Schema {
    string_enum(Granularity::ALL.iter().map(|g| g.as_str()))
}

/// The uptime windows (`24h | 7d | 30d`).
pub fn uptime_window() -> Schema {
    string_enum(UPTIME_WINDOWS.iter().map(|(n, _)| *n))
}

/// `viewer | operator | billing | admin`.
pub fn role() -> Schema {
    string_enum(Role::ALL.iter().map(|r| r.as_str()))
}

/// A role, or `null`.
pub fn optional_role() -> Schema {
    optional_string_enum(Role::ALL.iter().map(|r| r.as_str()))
}

/// API key scopes: permissions.
pub fn scopes() -> Schema {
    ArrayBuilder::new()
        .items(string_enum_builder(
            Permission::ALL.iter().map(|p| p.as_str()),
        ))
        .into()
}

/// A slug.
pub fn slug() -> Schema {
    pattern(SLUG_PATTERN).into()
}

/// A slug, or `null`.
pub fn optional_slug() -> Schema {
    or_null(pattern(SLUG_PATTERN))
}

/// A list of slugs.
pub fn slugs() -> Schema {
    ArrayBuilder::new().items(pattern(SLUG_PATTERN)).into()
}

/// A list of slugs, or `null`.
pub fn optional_slugs() -> Schema {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(pattern(SLUG_PATTERN))
        .into()
}

fn display_name_builder() -> ObjectBuilder {
    pattern(DISPLAY_NAME_PATTERN)
        .min_length(Some(1))
        .max_length(Some(200))
}

/// A display name.
pub fn display_name() -> Schema {
    display_name_builder().into()
}

/// A display name, or `null`.
pub fn optional_display_name() -> Schema {
    or_null(display_name_builder())
}

/// An e-mail address.
pub fn email() -> Schema {
    pattern(EMAIL_PATTERN).max_length(Some(254)).into()
}

fn password_builder() -> ObjectBuilder {
    // The server counts 1024 bytes, the schema characters: every value over
    // the schema's bound is over the server's too.
    string().min_length(Some(12)).max_length(Some(1024))
}

/// A password (`hood_domain::validate::password`).
pub fn optional_password() -> Schema {
    or_null(password_builder())
}

/// An artifact name.
pub fn artifact_name() -> Schema {
    pattern(ARTIFACT_NAME_PATTERN).into()
}

/// An artifact version.
pub fn artifact_version() -> Schema {
    pattern(ARTIFACT_VERSION_PATTERN).into()
}

/// An instant: RFC 3339 (`2025-01-31T00:00:00Z`) or Unix milliseconds. A
/// value the pattern admits can still be refused (the 30th of February).
pub fn instant() -> Schema {
    pattern(INSTANT_PATTERN).into()
}

/// An instant, or `null`.
pub fn optional_instant() -> Schema {
    or_null(pattern(INSTANT_PATTERN))
}

/// A meter's aggregation (`sum | count | max | latest`).
pub fn aggregation() -> Schema {
    string_enum(
        hood_domain::billing::Aggregation::ALL
            .iter()
            .map(|a| a.as_str()),
    )
}

/// A contract's kind (`fixed | metered | hybrid`).
pub fn contract_kind() -> Schema {
    string_enum(["fixed", "metered", "hybrid"])
}

/// Text with something besides white space.
pub fn reason() -> Schema {
    pattern("\\S").into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hood_domain::validate;

    fn matches(pattern: &str, value: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(value)
    }

    /// Characters the rules treat specially: controls, white space, `@`,
    /// dots, and some beyond ASCII.
    const TRICKY: &str =
        "[a-zA-Z0-9@. _+\\-\\t\\n\\u{0}\\u{1f}\\u{7f}\\u{85}\\u{9f}\\u{a0}\\u{2003}\\u{3000}é漢]";

    fn tricky(shape: &str) -> proptest::string::RegexGeneratorStrategy<String> {
        proptest::string::string_regex(&shape.replace("T", TRICKY)).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn the_slug_pattern_is_the_slug_rule(s in "[a-z0-9A-Z_-]{0,70}") {
            let valid = validate::slug("s", &s).is_ok();
            proptest::prop_assert_eq!(matches(SLUG_PATTERN, &s), valid);
        }

        #[test]
        fn the_artifact_patterns_are_the_artifact_rules(s in "[a-zA-Z0-9._+/ -]{0,140}") {
            let name = hood_artifacts::names::name(&s).is_ok();
            proptest::prop_assert_eq!(matches(ARTIFACT_NAME_PATTERN, &s), name);
            let version = hood_artifacts::names::version(&s).is_ok();
            proptest::prop_assert_eq!(matches(ARTIFACT_VERSION_PATTERN, &s), version);
        }

        #[test]
        fn the_display_name_schema_is_the_display_name_rule(s in tricky("T{0,8}")) {
            let chars = s.chars().count();
            let schema = matches(DISPLAY_NAME_PATTERN, &s) && (1..=200).contains(&chars);
            proptest::prop_assert_eq!(schema, validate::display_name("n", &s).is_ok(), "{:?}", s);
        }

        #[test]
        fn the_email_pattern_is_the_email_rule(s in tricky("T{0,4}@?T{0,6}")) {
            let schema = matches(EMAIL_PATTERN, &s) && s.chars().count() <= 254;
            proptest::prop_assert_eq!(schema, validate::email("e", &s).is_ok(), "{:?}", s);
        }

        #[test]
        fn the_instant_pattern_admits_every_parsed_instant(
            s in "-?[0-9]{1,20}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?|[0-9TZ:.+-]{0,30}",
            ms in -62_135_596_800_000i64..253_402_300_799_999i64,
        ) {
            if crate::routes::edge::parse_instant("from", &s).is_ok() {
                proptest::prop_assert!(matches(INSTANT_PATTERN, &s), "{}", s);
            }
            let rendered = crate::clock::rfc3339(hood_domain::Timestamp::from_millis(ms));
            proptest::prop_assert!(matches(INSTANT_PATTERN, &rendered), "{}", rendered);
            proptest::prop_assert!(matches(INSTANT_PATTERN, &ms.to_string()));
        }
    }

    #[test]
    fn long_values_are_bounded_like_the_rules() {
        let long = "a".repeat(201);
        assert!(validate::display_name("n", &long).is_err());
        assert!(validate::display_name("n", &long[..200]).is_ok());
        let long_email = format!("{}@example.com", "a".repeat(243));
        assert_eq!(long_email.len(), 255);
        assert!(validate::email("e", &long_email).is_err());
        assert!(validate::email("e", &long_email[1..]).is_ok());
        assert!(validate::password("p", &"p".repeat(11)).is_err());
        assert!(validate::password("p", &"p".repeat(12)).is_ok());
        assert!(validate::password("p", &"p".repeat(1025)).is_err());
    }
}
