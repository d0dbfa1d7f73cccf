//! The JSON-RPC 2.0 codec: requests, notifications, batches and responses, as
//! the [specification](https://www.jsonrpc.org/specification) defines them.
//!
//! The decoders never panic and never fail: whatever the bytes are, the server
//! side ([`decode_incoming`]) yields the requests to run and the error responses
//! the specification asks for, and the client side ([`decode_responses`]) the
//! responses or why the text is not one.
//!
//! ```
//! use ipckit_rpc::jsonrpc::{decode_incoming, Entry, Incoming};
//! let msg = br#"[{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}, 7]"#;
//! let Incoming::Batch(entries) = decode_incoming(msg) else { panic!() };
//! assert!(matches!(&entries[0], Entry::Request(r) if r.method == "add"));
//! assert!(matches!(&entries[1], Entry::Invalid(_))); // -32600, id null
//! ```

use std::fmt;

use serde::Serialize;
use serde_json::{Number, Value};

use crate::error::RpcError;

/// A request id: a number, a string, or null (which the specification
/// discourages but allows).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// A number, kept exactly as it was written.
    Number(Number),
    /// A string.
    String(String),
    /// `null`: what responses carry when the request's id could not be read.
    Null,
}

impl Id {
    fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::Number(n) => Some(Id::Number(n.clone())),
            Value::String(s) => Some(Id::String(s.clone())),
            Value::Null => Some(Id::Null),
            _ => None,
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Id::Number(n) => Value::Number(n.clone()),
            Id::String(s) => Value::String(s.clone()),
            Id::Null => Value::Null,
        }
    }

    /// The id as an unsigned number, if it is one (the ids this crate's client
    /// sends).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Id::Number(n) => n.as_u64(),
            _ => None,
        }
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Id {
        Id::Number(n.into())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Number(n) => write!(f, "{n}"),
            Id::String(s) => write!(f, "{s:?}"),
            Id::Null => f.write_str("null"),
        }
    }
}

/// A request (with an id, answered) or a notification (without, never answered).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The method to call.
    pub method: String,
    /// The parameters: an array, an object, or none.
    pub params: Option<Value>,
    /// The id; `None` for a notification.
    pub id: Option<Id>,
}

/// A request as it is written: borrowed, so nothing is copied into a JSON
/// object first; the members in the order a `serde_json::Map` writes them
/// (sorted), so the text is the same as before.
#[derive(Serialize)]
struct RequestOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Value>,
    jsonrpc: &'static str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a Value>,
}

/// A response as it is written (see [`RequestOut`]).
#[derive(Serialize)]
struct ResponseOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
    id: Value,
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
}

/// The JSON text of `out`, which holds only JSON values and strings.
fn to_text(out: &impl Serialize) -> Vec<u8> {
    // Serializing a `Value` or a string into a `Vec` cannot fail.
    serde_json::to_vec(out).unwrap_or_default()
}

impl Request {
    /// The request as JSON text.
    pub fn encode(&self) -> Vec<u8> {
        to_text(&RequestOut {
            id: self.id.as_ref().map(Id::to_value),
            jsonrpc: "2.0",
            method: &self.method,
            params: self.params.as_ref(),
        })
    }
}

/// A response: the id of the request it answers, and its result or error.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id of the request; null when the request's id could not be read.
    pub id: Id,
    /// The result, or the error.
    pub outcome: Result<Value, RpcError>,
}

impl Response {
    /// An error response.
    pub fn error(id: Id, err: RpcError) -> Response {
        Response {
            id,
            outcome: Err(err),
        }
    }

    fn out(&self) -> ResponseOut<'_> {
        let (result, error) = match &self.outcome {
            Ok(result) => (Some(result), None),
            // As a JSON object, so its members are sorted as before.
            Err(err) => (None, Some(serde_json::to_value(err).unwrap_or(Value::Null))),
        };
        ResponseOut {
            error,
            id: self.id.to_value(),
            jsonrpc: "2.0",
            result,
        }
    }

    /// The response as JSON text.
    pub fn encode(&self) -> Vec<u8> {
        to_text(&self.out())
    }

    /// A batch of responses as one JSON array.
    pub fn encode_batch(responses: &[Response]) -> Vec<u8> {
        to_text(&responses.iter().map(Response::out).collect::<Vec<_>>())
    }
}

/// One element of an incoming message: a well-formed request, or the error
/// response that a malformed one gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A valid request or notification.
    Request(Request),
    /// An invalid request (-32600), answered with this response.
    Invalid(Response),
}

/// An incoming message, as the server reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// One request, or one invalid request.
    Single(Entry),
    /// A batch of one or more entries; its responses go back as one array (and
    /// nothing at all if every entry is a notification).
    Batch(Vec<Entry>),
    /// Text that is not JSON (-32700), or an empty batch (-32600): answered with
    /// this one response.
    Invalid(Response),
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes what a client sent: one request, a batch, or text that earns a
/// single error response.
pub fn decode_incoming(bytes: &[u8]) -> Incoming {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return Incoming::Invalid(Response::error(
                Id::Null,
                RpcError::parse_error(format!("parse error: the message is not JSON: {e}")),
            ));
        }
    };
    match value {
        Value::Array(items) if items.is_empty() => Incoming::Invalid(Response::error(
            Id::Null,
            RpcError::invalid_request("invalid request: a batch must hold at least one request"),
        )),
        Value::Array(items) => Incoming::Batch(items.into_iter().map(validate).collect()),
        other => Incoming::Single(validate(other)),
    }
}

/// Checks one request object against the specification's rules.
fn validate(value: Value) -> Entry {
    let Value::Object(mut obj) = value else {
        return invalid(
            Id::Null,
            format!("a request is a JSON object, not {}", type_name(&value)),
        );
    };
    let id = match obj.get("id") {
        None => None,
        Some(v) => match Id::from_value(v) {
            Some(id) => Some(id),
            None => {
                return invalid(
                    Id::Null,
                    format!(
                        "\"id\" must be a string, a number or null, not {}",
                        type_name(v)
                    ),
                );
            }
        },
    };
    let reply_id = id.clone().unwrap_or(Id::Null);
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(v) => {
            return invalid(reply_id, format!("\"jsonrpc\" must be \"2.0\", not {v}"));
        }
        None => return invalid(reply_id, "the member \"jsonrpc\": \"2.0\" is missing"),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(v) => {
            return invalid(
                reply_id,
                format!("\"method\" must be a string, not {}", type_name(&v)),
            );
        }
        None => return invalid(reply_id, "the member \"method\" is missing"),
    };
    let params = match obj.remove("params") {
        None => None,
        Some(p @ (Value::Array(_) | Value::Object(_))) => Some(p),
        Some(v) => {
            return invalid(
                reply_id,
                format!(
                    "\"params\" must be an array or an object, not {}",
                    type_name(&v)
                ),
            );
        }
    };
    Entry::Request(Request { method, params, id })
}

fn invalid(id: Id, why: impl fmt::Display) -> Entry {
    Entry::Invalid(Response::error(
        id,
        RpcError::invalid_request(format!("invalid request: {why}")),
    ))
}

/// What a client reads: one response, or the responses to a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Responses {
    /// One response.
    Single(Response),
    /// The responses to a batch.
    Batch(Vec<Response>),
    /// A request or notification from the server (which this crate's client
    /// does not serve): its method.
    ServerRequest(String),
}

/// Decodes what a server sent.
///
/// # Errors
///
/// Why the text is not a JSON-RPC 2.0 response (or batch of them).
pub fn decode_responses(bytes: &[u8]) -> Result<Responses, String> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the server's message is not JSON: {e}"))?;
    match value {
        Value::Array(items) if items.is_empty() => {
            Err("the server sent an empty array, which is not a response".into())
        }
        Value::Array(items) => items
            .into_iter()
            .map(response_from)
            .collect::<Result<Vec<_>, _>>()
            .map(Responses::Batch),
        Value::Object(obj) if obj.contains_key("method") && !obj.contains_key("result") => {
            Ok(Responses::ServerRequest(
                obj.get("method")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ))
        }
        other => response_from(other).map(Responses::Single),
    }
}

fn response_from(value: Value) -> Result<Response, String> {
    let Value::Object(mut obj) = value else {
        return Err(format!(
            "a response is a JSON object, not {}",
            type_name(&value)
        ));
    };
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => return Err("a response must carry \"jsonrpc\": \"2.0\"".into()),
    }
    let id = match obj.get("id") {
        Some(v) => Id::from_value(v)
            .ok_or_else(|| format!("a response's \"id\" cannot be {}", type_name(v)))?,
        None => return Err("a response must carry an \"id\"".into()),
    };
    let outcome = match (obj.remove("result"), obj.remove("error")) {
        (Some(result), None) => Ok(result),
        (None, Some(error)) => Err(serde_json::from_value::<RpcError>(error).map_err(|e| {
            format!("the \"error\" of the response to id {id} is not an error object: {e}")
        })?),
        (Some(_), Some(_)) => {
            return Err(format!(
                "the response to id {id} has both \"result\" and \"error\""
            ));
        }
        (None, None) => {
            return Err(format!(
                "the response to id {id} has neither \"result\" nor \"error\""
            ));
        }
    };
    Ok(Response { id, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The encoders write the text a `serde_json` object of the same members
    /// writes (what they built before), byte for byte: peers see no change.
    #[test]
    fn the_text_written_is_that_of_a_json_object() {
        let text = |v: Value| v.to_string().into_bytes();
        let params = json!([1, {"b": 2, "a": "x\u{e9}\n"}]);
        let cases = [
            (
                Request {
                    method: "add".into(),
                    params: Some(params.clone()),
                    id: Some(Id::from(7)),
                },
                json!({"jsonrpc": "2.0", "method": "add", "params": params, "id": 7}),
            ),
            (
                Request {
                    method: "log".into(),
                    params: None,
                    id: None,
                },
                json!({"jsonrpc": "2.0", "method": "log"}),
            ),
            (
                Request {
                    method: "m".into(),
                    params: Some(json!({})),
                    id: Some(Id::String("a\"b".into())),
                },
                json!({"jsonrpc": "2.0", "method": "m", "params": {}, "id": "a\"b"}),
            ),
        ];
        for (req, object) in cases {
            assert_eq!(req.encode(), text(object), "{req:?}");
        }
        let ok = Response {
            id: Id::from(3),
            outcome: Ok(json!({"z": null, "a": [true]})),
        };
        let err = Response::error(
            Id::Null,
            RpcError::new(-32000, "no").with_data(json!({"k": 1})),
        );
        let ok_object = json!({"jsonrpc": "2.0", "result": {"z": null, "a": [true]}, "id": 3});
        let err_object = json!({
            "jsonrpc": "2.0",
            "error": {"code": -32000, "message": "no", "data": {"k": 1}},
            "id": null
        });
        assert_eq!(ok.encode(), text(ok_object.clone()));
        assert_eq!(err.encode(), text(err_object.clone()));
        assert_eq!(
            Response::encode_batch(&[ok, err]),
            text(json!([ok_object, err_object]))
        );
    }

    fn single(text: &str) -> Entry {
        match decode_incoming(text.as_bytes()) {
            Incoming::Single(e) => e,
            other => panic!("{other:?}"),
        }
    }

    fn error_of(entry: &Entry) -> (&Id, i64, &str) {
        match entry {
            Entry::Invalid(Response {
                id,
                outcome: Err(e),
            }) => (id, e.code, &e.message),
            other => panic!("not invalid: {other:?}"),
        }
    }

    #[test]
    fn requests_and_notifications() {
        let Entry::Request(r) =
            single(r#"{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}"#)
        else {
            panic!()
        };
        assert_eq!(r.method, "subtract");
        assert_eq!(r.params, Some(json!([42, 23])));
        assert_eq!(r.id, Some(Id::from(1)));
        let Entry::Request(n) = single(r#"{"jsonrpc":"2.0","method":"update","params":{"a":1}}"#)
        else {
            panic!()
        };
        assert_eq!(n.id, None);
        let Entry::Request(s) = single(r#"{"jsonrpc":"2.0","method":"m","id":"abc"}"#) else {
            panic!()
        };
        assert_eq!(s.id, Some(Id::String("abc".into())));
        assert_eq!(s.params, None);
    }

    #[test]
    fn parse_errors_and_the_empty_batch_get_one_response() {
        for (text, code) in [
            (
                r#"{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]"#,
                -32700,
            ),
            ("", -32700),
            ("[]", -32600),
        ] {
            let Incoming::Invalid(r) = decode_incoming(text.as_bytes()) else {
                panic!("{text}")
            };
            assert_eq!(r.id, Id::Null);
            assert_eq!(r.outcome.unwrap_err().code, code, "{text}");
        }
    }

    #[test]
    fn invalid_requests_name_the_broken_rule_and_keep_a_readable_id() {
        let cases = [
            (
                r#"{"jsonrpc":"2.0","method":1,"params":"bar"}"#,
                Id::Null,
                "\"method\" must be a string",
            ),
            (
                r#"{"jsonrpc":"1.0","method":"m","id":3}"#,
                Id::from(3),
                "\"jsonrpc\" must be \"2.0\"",
            ),
            (
                r#"{"method":"m","id":"x"}"#,
                Id::String("x".into()),
                "\"jsonrpc\": \"2.0\" is missing",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"m","params":5,"id":4}"#,
                Id::from(4),
                "\"params\" must be an array or an object",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"m","id":[1]}"#,
                Id::Null,
                "\"id\" must be a string",
            ),
            ("1", Id::Null, "a request is a JSON object, not a number"),
        ];
        for (text, want_id, needle) in cases {
            let entry = single(text);
            let (id, code, msg) = error_of(&entry);
            assert_eq!(code, -32600, "{text}");
            assert_eq!(id, &want_id, "{text}");
            assert!(msg.contains(needle), "{text}: {msg}");
        }
    }

    #[test]
    fn mixed_batches_keep_every_entry() {
        let text = r#"[
            {"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},
            {"jsonrpc":"2.0","method":"notify_hello","params":[7]},
            {"foo":"boo"},
            1
        ]"#;
        let Incoming::Batch(entries) = decode_incoming(text.as_bytes()) else {
            panic!()
        };
        assert_eq!(entries.len(), 4);
        assert!(matches!(&entries[0], Entry::Request(r) if r.id.is_some()));
        assert!(matches!(&entries[1], Entry::Request(r) if r.id.is_none()));
        assert_eq!(error_of(&entries[2]).1, -32600);
        assert_eq!(error_of(&entries[3]).1, -32600);
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let req = Request {
            method: "add".into(),
            params: Some(json!([1, 2])),
            id: Some(Id::from(9)),
        };
        let Incoming::Single(Entry::Request(back)) = decode_incoming(&req.encode()) else {
            panic!()
        };
        assert_eq!(back, req);
        let ok = Response {
            id: Id::String("a".into()),
            outcome: Ok(json!({"x": [1]})),
        };
        let err = Response::error(Id::Null, RpcError::new(-32000, "busy").with_data(json!(3)));
        assert_eq!(
            decode_responses(&ok.encode()),
            Ok(Responses::Single(ok.clone()))
        );
        let batch = Response::encode_batch(&[ok.clone(), err.clone()]);
        assert_eq!(
            decode_responses(&batch),
            Ok(Responses::Batch(vec![ok, err]))
        );
    }

    #[test]
    fn malformed_responses_say_why() {
        for (text, needle) in [
            ("nope", "not JSON"),
            (r#"{"jsonrpc":"2.0","id":1}"#, "neither"),
            (r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#, "both"),
            (r#"{"jsonrpc":"2.0","result":1}"#, "must carry an \"id\""),
            (r#"{"result":1,"id":1}"#, "\"jsonrpc\": \"2.0\""),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}"#,
                "not an error object",
            ),
            ("[]", "empty array"),
        ] {
            let err = decode_responses(text.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
