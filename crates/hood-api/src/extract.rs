//! Request extractors whose every rejection is a problem+json 4xx naming
//! what was wrong.

use crate::problem::ApiError;
use axum::extract::rejection::{JsonRejection, PathRejection, RawPathParamsRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::str::FromStr;
use utoipa::openapi::path::ParameterIn;
use utoipa::IntoParams;

/// JSON body. Unknown fields are refused by `deny_unknown_fields` on the
/// request types; malformed JSON is 400, a wrong content type 415, an
/// oversized body 413.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected `Content-Type: application/json`".into(),
            ));
        }
        // Read through `Bytes`, so the route's body limit applies.
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) => return Err(json_rejection(JsonRejection::BytesRejection(e))),
        };
        // Every request body is an object: serde would also fill a struct
        // from an array (`[null, null]`), which no client means.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') | None => {}
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "the request body must be a JSON object".into(),
                ))
            }
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json` or an `application/…+json` type (axum's own rule).
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("expected `Content-Type: application/json`".into())
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::BadRequest(format!("malformed JSON: {}", source_text(&e)))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::BadRequest(format!("invalid request body: {}", source_text(&e)))
        }
        JsonRejection::BytesRejection(e) => {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: crate::BODY_LIMIT_BYTES,
                }
            } else {
                ApiError::BadRequest(format!("could not read request body: {e}"))
            }
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// serde's message without axum's "Failed to deserialize..." prefix chain.
fn source_text(e: &dyn std::error::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// Query string, checked against the parameters `T` documents: a parameter
/// the operation does not have, one given twice, or a value of the wrong
/// type is a 400 naming the parameter. The OpenAPI document lists the same
/// parameters (`params(T)`), so the check and the document cannot drift.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + IntoParams,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Decodes a raw query string into `T` (see [`Query`]).
pub fn parse_query<T: DeserializeOwned + IntoParams>(raw: &str) -> Result<T, ApiError> {
    let documented: Vec<String> = T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| p.name)
        .collect();
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in form_urlencoded::parse(raw.as_bytes()) {
        if !documented.iter().any(|d| *d == name) {
            let reason = if documented.is_empty() {
                "is not a parameter of this operation (it takes none)".to_owned()
            } else {
                format!(
                    "is not a parameter of this operation (expected one of: {})",
                    documented.join(", ")
                )
            };
            return Err(ApiError::invalid_param(name, reason));
        }
        if seen.iter().any(|s| *s == name) {
            return Err(ApiError::invalid_param(name, "is given more than once"));
        }
        seen.push(name.into_owned());
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let name = e.path().to_string();
        ApiError::invalid_param(name, e.into_inner().to_string())
    })
}

/// Whether `raw` is a UUID in its canonical hyphenated form, the only form
/// the API accepts (the `uuid` format of the document): the `uuid` crate
/// would also take braced, URN and unhyphenated spellings.
pub fn is_canonical_uuid(raw: &str) -> bool {
    raw.len() == 36
        && raw.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Parses an id given as a request parameter: canonical UUIDs only.
pub fn parse_id<T: FromStr>(raw: &str) -> Option<T> {
    if is_canonical_uuid(raw) {
        raw.parse().ok()
    } else {
        None
    }
}

fn id_param<T: FromStr>(name: &str, raw: &str) -> Result<T, ApiError> {
    parse_id(raw)
        .ok_or_else(|| ApiError::invalid_param(name, format!("`{raw}` is not a valid id (a UUID)")))
}

/// The route's path parameters as (name, percent-decoded value) pairs.
async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<Vec<(String, String)>, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e: RawPathParamsRejection| ApiError::BadRequest(e.body_text()))?;
    Ok(params
        .iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

/// The route's single path parameter parsed as an id: a malformed id is a
/// 400 naming the parameter, not a 500 and not a 404.
pub struct PathId<T>(pub T);

impl<S, T> FromRequestParts<S> for PathId<T>
where
    T: FromStr + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match path_params(parts, state).await?.as_slice() {
            [(name, raw)] => id_param(name, raw).map(PathId),
            other => Err(ApiError::Internal(format!(
                "PathId on a route with {} path parameters",
                other.len()
            ))),
        }
    }
}

/// The route's two path parameters, each parsed as an id.
pub struct PathIds<A, B>(pub A, pub B);

impl<S, A, B> FromRequestParts<S> for PathIds<A, B>
where
    A: FromStr + Send,
    B: FromStr + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match path_params(parts, state).await?.as_slice() {
            [(name_a, a), (name_b, b)] => Ok(PathIds(id_param(name_a, a)?, id_param(name_b, b)?)),
            other => Err(ApiError::Internal(format!(
                "PathIds on a route with {} path parameters",
                other.len()
            ))),
        }
    }
}

/// Path parameters as text (names, slugs, workflow ids): axum's `Path` with
/// a problem+json rejection (e.g. a segment that is not UTF-8).
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e: PathRejection| ApiError::BadRequest(e.body_text()))
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, IntoParams, PartialEq)]
    #[into_params(parameter_in = Query)]
    #[serde(deny_unknown_fields)]
    struct Params {
        limit: Option<i64>,
        active: Option<bool>,
        state: Option<String>,
    }

    fn bad_param(e: ApiError) -> (String, String) {
        match e {
            ApiError::InvalidParam { name, reason } => (name, reason),
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    }

    #[test]
    fn query_strings_decode_into_the_documented_parameters() {
        let p: Params = parse_query("limit=5&active=true&state=open%20x").unwrap();
        assert_eq!(
            p,
            Params {
                limit: Some(5),
                active: Some(true),
                state: Some("open x".into())
            }
        );
        let none: Params = parse_query("").unwrap();
        assert_eq!(none.limit, None);
    }

    #[test]
    fn bad_query_parameters_are_named() {
        let (name, reason) = bad_param(parse_query::<Params>("limit=ten").unwrap_err());
        assert_eq!(name, "limit");
        assert!(reason.contains("invalid digit"), "{reason}");
        let (name, _) = bad_param(parse_query::<Params>("limit=").unwrap_err());
        assert_eq!(name, "limit");
        let (name, _) = bad_param(parse_query::<Params>("active=yes").unwrap_err());
        assert_eq!(name, "active");
        let (name, reason) = bad_param(parse_query::<Params>("limit=1&bogus=2").unwrap_err());
        assert_eq!(name, "bogus");
        assert!(reason.contains("limit, active, state"), "{reason}");
        let (name, reason) = bad_param(parse_query::<Params>("limit=1&limit=2").unwrap_err());
        assert_eq!(name, "limit");
        assert!(reason.contains("more than once"), "{reason}");
    }

    #[test]
    fn only_canonical_uuids_are_ids() {
        let id = "0195a3a2-5b1c-7d2e-8f00-aabbccddeeff";
        assert!(is_canonical_uuid(id));
        assert!(is_canonical_uuid(&id.to_uppercase()));
        assert_eq!(parse_id::<uuid::Uuid>(id).unwrap().to_string(), id);
        for bad in [
            "",
            "garbage",
            "0195a3a25b1c7d2e8f00aabbccddeeff",
            "{0195a3a2-5b1c-7d2e-8f00-aabbccddeeff}",
            "urn:uuid:0195a3a2-5b1c-7d2e-8f00-aabbccddeeff",
            "0195a3a2-5b1c-7d2e-8f00-aabbccddeefg",
            "0195a3a2-5b1c-7d2e-8f00aabbccddeeff-",
        ] {
            assert!(parse_id::<uuid::Uuid>(bad).is_none(), "{bad}");
        }
    }
}
