//! JSON-RPC 2.0 as the edge sees it: a body is one call or a batch; each
//! call is checked on its own (shape, scope, price, limit), and errors are
//! JSON-RPC error objects with the codes of the spec and EIP-1474.

use serde_json::{json, Map, Value};

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Valid JSON that is not a JSON-RPC request (or an empty/oversized batch).
pub const INVALID_REQUEST: i64 = -32600;
/// EIP-1474 "resource unavailable": no upstream can serve the chain now.
pub const RESOURCE_UNAVAILABLE: i64 = -32002;
/// EIP-1474 "method not supported": the key's scope forbids the method.
pub const METHOD_NOT_ALLOWED: i64 = -32004;
/// EIP-1474 "limit exceeded": a compute-unit limit refused the call.
pub const LIMIT_EXCEEDED: i64 = -32005;
/// Not authorized: unknown/revoked key, chain/IP/origin not allowed.
pub const UNAUTHORIZED: i64 = -32001;
/// The key's organization is cut off: its prepaid credits ran out.
pub const PAYMENT_REQUIRED: i64 = -32003;
/// An upstream failed after the call was sent.
pub const UPSTREAM_ERROR: i64 = -32603;

/// One well-formed call of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `None` for a notification (no answer expected).
    pub id: Option<Value>,
    pub method: String,
    /// `[]` when absent.
    pub params: Value,
    /// The call object as received, forwarded as is.
    pub raw: Value,
}

/// One element of a request: a call, or why it is not one.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Call(Call),
    Invalid { id: Value, reason: String },
}

/// A parsed body.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Single(Item),
    Batch(Vec<Item>),
}

impl Request {
    /// The elements in order, and whether they came as a batch (answered
    /// as an array).
    pub fn into_items(self) -> (Vec<Item>, bool) {
        match self {
            Request::Single(item) => (vec![item], false),
            Request::Batch(items) => (items, true),
        }
    }
}

/// A body that is not a request at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("parse error: {0}")]
    Syntax(String),
    #[error("invalid request: empty batch")]
    EmptyBatch,
    #[error("invalid request: batch of {len} calls exceeds the limit of {max}")]
    BatchTooLarge { len: usize, max: usize },
}

impl ParseError {
    pub fn code(&self) -> i64 {
        match self {
            ParseError::Syntax(_) => PARSE_ERROR,
            _ => INVALID_REQUEST,
        }
    }
}

/// Parses a body. `max_batch` caps the number of calls in a batch.
pub fn parse(body: &[u8], max_batch: usize) -> Result<Request, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Syntax(e.to_string()))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ParseError::EmptyBatch);
            }
            if items.len() > max_batch {
                return Err(ParseError::BatchTooLarge {
                    len: items.len(),
                    max: max_batch,
                });
            }
            Ok(Request::Batch(items.into_iter().map(item).collect()))
        }
        other => Ok(Request::Single(item(other))),
    }
}

fn item(value: Value) -> Item {
    let Value::Object(object) = value else {
        return Item::Invalid {
            id: Value::Null,
            reason: "a call must be a JSON object".to_owned(),
        };
    };
    let id = object.get("id").cloned();
    let answer_id = id.clone().unwrap_or(Value::Null);
    if let Some(id) = &id {
        if !matches!(id, Value::String(_) | Value::Number(_) | Value::Null) {
            return Item::Invalid {
                id: Value::Null,
                reason: "`id` must be a string, a number or null".to_owned(),
            };
        }
    }
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Item::Invalid {
            id: answer_id,
            reason: "`jsonrpc` must be \"2.0\"".to_owned(),
        };
    }
    let method = match object.get("method").and_then(Value::as_str) {
        Some(m) if !m.is_empty() && m.len() <= 128 => m.to_owned(),
        _ => {
            return Item::Invalid {
                id: answer_id,
                reason: "`method` must be a non-empty string of at most 128 characters".to_owned(),
            }
        }
    };
    let params = match object.get("params") {
        None => Value::Array(Vec::new()),
        Some(p @ (Value::Array(_) | Value::Object(_))) => p.clone(),
        Some(_) => {
            return Item::Invalid {
                id: answer_id,
                reason: "`params` must be an array or an object".to_owned(),
            }
        }
    };
    Item::Call(Call {
        id,
        method,
        params,
        raw: Value::Object(object),
    })
}

/// A JSON-RPC error response.
pub fn error_response(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".to_owned(), json!(code));
    error.insert("message".to_owned(), json!(message));
    if let Some(data) = data {
        error.insert("data".to_owned(), data);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": Value::Object(error)})
}

/// A JSON-RPC success response.
pub fn result_response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// What an upstream answered to one call, for metering.
pub fn is_error_response(response: &Value) -> bool {
    response.get("error").is_some_and(|e| !e.is_null())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn single_call_and_notification() {
        let r = parse(
            br#"{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber"}"#,
            10,
        )
        .unwrap();
        let Request::Single(Item::Call(c)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(c.id, Some(json!(7)));
        assert_eq!(c.method, "eth_blockNumber");
        assert_eq!(c.params, json!([]));
        let r = parse(br#"{"jsonrpc":"2.0","method":"eth_x","params":[1]}"#, 10).unwrap();
        let Request::Single(Item::Call(c)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(c.id, None, "no id: a notification");
    }

    #[test]
    fn parse_errors_and_invalid_requests() {
        assert_eq!(parse(b"{nope", 10).unwrap_err().code(), PARSE_ERROR);
        assert_eq!(parse(b"[]", 10).unwrap_err(), ParseError::EmptyBatch);
        assert_eq!(
            parse(b"[1,2,3]", 2).unwrap_err(),
            ParseError::BatchTooLarge { len: 3, max: 2 }
        );
        for body in [
            r#"1"#,
            r#"{"id":1,"method":"m"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":""}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":3}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"m"}"#,
        ] {
            let r = parse(body.as_bytes(), 10).unwrap();
            assert!(
                matches!(r, Request::Single(Item::Invalid { .. })),
                "{body}: {r:?}"
            );
        }
        let Request::Single(Item::Invalid { id, .. }) =
            parse(br#"{"jsonrpc":"1.0","id":"a","method":"m"}"#, 10).unwrap()
        else {
            panic!()
        };
        assert_eq!(id, json!("a"), "the id is echoed when readable");
    }

    #[test]
    fn batch_items_are_judged_one_by_one() {
        let r = parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"}, 5, {"jsonrpc":"2.0","id":2,"method":"b"}]"#,
            10,
        )
        .unwrap();
        let (items, batch) = r.into_items();
        assert!(batch);
        assert_eq!(items.len(), 3);
        assert!(matches!(items[0], Item::Call(_)));
        assert!(matches!(items[1], Item::Invalid { .. }));
        assert!(matches!(items[2], Item::Call(_)));
        // A call on its own is not a batch.
        let (items, batch) = parse(br#"{"jsonrpc":"2.0","id":1,"method":"a"}"#, 10)
            .unwrap()
            .into_items();
        assert!(!batch);
        assert_eq!(items.len(), 1);
        // A batch of one stays a batch (answered as an array).
        let (items, batch) = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"a"}]"#, 10)
            .unwrap()
            .into_items();
        assert!(batch);
        assert_eq!(items.len(), 1);
    }

    #[test]
    fn responses() {
        let e = error_response(&json!(1), LIMIT_EXCEEDED, "slow down", Some(json!({"a":1})));
        assert_eq!(e["error"]["code"], LIMIT_EXCEEDED);
        assert!(is_error_response(&e));
        assert!(!is_error_response(&result_response(
            &json!(1),
            json!("0x1")
        )));
    }
}
