//! The common case of a call, read and written without a `serde_json::Value`.
//!
//! Nearly every message of a connection is one of two shapes: a request
//! `{"id":N,"jsonrpc":"2.0","method":"m","params":[...]}` with a number for
//! its id, and its answer `{"id":N,"jsonrpc":"2.0","result":...}`. Building a
//! `Value` tree for each (and another for the params and the result inside
//! them) was most of a small call's cost over shared memory. Here the envelope
//! is read into a borrowed struct, and the params and the result stay JSON
//! text ([`RawValue`]) until the handler's or the caller's own type is built
//! from them.
//!
//! Whatever does not fit these shapes exactly (a string or null id, a
//! batch, an unknown member, a repeated one, an escaped method name, `null`
//! params, an error response) is not decided here: the readers say "not
//! mine" (`None`) and the caller takes the general path of
//! [`jsonrpc`](crate::jsonrpc), which answers every case as before, with the
//! same errors. The text written is what the general path writes, member for
//! member (the members sorted, as a `serde_json` object writes them); only
//! the members inside params and results keep the order their Rust type
//! gives them instead of being sorted.

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::jsonrpc::{Id, Request};

/// A request with a number for its id, its params as text.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) id: u64,
    pub(crate) method: String,
    pub(crate) params: Option<Box<RawValue>>,
}

impl Call {
    /// The same request, as the general decoder gives it.
    pub(crate) fn into_request(self) -> Request {
        Request {
            params: self.params.as_deref().map(to_value),
            method: self.method,
            id: Some(Id::from(self.id)),
        }
    }
}

/// The value of JSON text read before (so it is JSON: `Null` is never
/// reached).
pub(crate) fn to_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallIn<'a> {
    #[serde(deserialize_with = "some_u64")]
    id: Option<u64>,
    jsonrpc: &'a str,
    method: &'a str,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    params: Option<&'a RawValue>,
}

/// `Some` for a member that is there, whatever its value (`null` too), so
/// that `"params": null` is told from no params at all.
fn some_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A number that fits a `u64`; anything else (`null` included) is not ours.
fn some_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    u64::deserialize(d).map(Some)
}

/// Whether `frame` may be one JSON object: anything else (a batch, text that
/// is not JSON) goes straight to the general decoder, not parsed twice.
fn is_object(frame: &[u8]) -> bool {
    frame.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Whether `raw` is JSON-RPC params: an array or an object.
fn is_params(raw: &RawValue) -> bool {
    matches!(raw.get().as_bytes().first(), Some(b'[' | b'{'))
}

/// The request in `frame`, if it is a plain call with a number for its id
/// and valid params; `None` for anything else, which the general decoder
/// answers.
pub(crate) fn call_in(frame: &[u8]) -> Option<Call> {
    if !is_object(frame) {
        return None;
    }
    let c: CallIn<'_> = serde_json::from_slice(frame).ok()?;
    if c.jsonrpc != "2.0" || c.params.is_some_and(|p| !is_params(p)) {
        return None;
    }
    Some(Call {
        id: c.id?,
        method: c.method.to_owned(),
        params: c.params.map(ToOwned::to_owned),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultIn<'a> {
    id: u64,
    jsonrpc: &'a str,
    #[serde(borrow)]
    result: &'a RawValue,
}

/// The id and the result of the response in `frame`, if it is one successful
/// response with a number for its id; `None` for anything else.
pub(crate) fn result_in(frame: &[u8]) -> Option<(u64, Box<RawValue>)> {
    if !is_object(frame) {
        return None;
    }
    let r: ResultIn<'_> = serde_json::from_slice(frame).ok()?;
    (r.jsonrpc == "2.0").then(|| (r.id, r.result.to_owned()))
}

#[derive(Serialize)]
struct CallOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    jsonrpc: &'static str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a RawValue>,
}

/// The text of a request (`id` `None`: a notification).
pub(crate) fn call_out(id: Option<u64>, method: &str, params: Option<&RawValue>) -> Vec<u8> {
    // Strings and JSON text only: writing them into a `Vec` cannot fail.
    serde_json::to_vec(&CallOut {
        id,
        jsonrpc: "2.0",
        method,
        params,
    })
    .unwrap_or_default()
}

#[derive(Serialize)]
struct ResultOut<'a> {
    id: u64,
    jsonrpc: &'static str,
    result: &'a RawValue,
}

/// The text of a successful response to call `id`.
pub(crate) fn result_out(id: u64, result: &RawValue) -> Vec<u8> {
    serde_json::to_vec(&ResultOut {
        id,
        jsonrpc: "2.0",
        result,
    })
    .unwrap_or_default()
}

/// What `params` serializes to, if it is JSON-RPC params (an array or an
/// object: `Some`) or none at all (`null`, from `()`: `None`). `Err` when it
/// is anything else or does not serialize; the general path then says why.
pub(crate) fn params_out<P: Serialize>(params: &P) -> Result<Option<Box<RawValue>>, ()> {
    let raw = serde_json::value::to_raw_value(params).map_err(|_| ())?;
    match raw.get() {
        "null" => Ok(None),
        _ if is_params(&raw) => Ok(Some(raw)),
        _ => Err(()),
    }
}

/// The text of `result`, for a response.
pub(crate) fn result_text<R: Serialize>(result: &R) -> serde_json::Result<Box<RawValue>> {
    serde_json::value::to_raw_value(result)
}

/// Builds `T` from JSON text as it would be built from the `Value` of that
/// text (the general path): for a `Value` target the members come out sorted
/// as before. `Err` carries the message the general path gives.
pub(crate) fn from_raw<T: serde::de::DeserializeOwned>(raw: &RawValue) -> serde_json::Result<T> {
    serde_json::from_str(raw.get()).or_else(|_| {
        // The error of the general path, word for word (it names no line
        // and column of the text).
        let value: serde_json::Value = serde_json::from_str(raw.get())?;
        serde_json::from_value(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Entry, Incoming, Response, decode_incoming};
    use serde_json::json;

    #[test]
    fn a_plain_call_is_read_as_the_general_decoder_reads_it() {
        let text =
            br#"{"jsonrpc":"2.0","method":"hello","params":["ipckit",{"b":1,"a":2}],"id":7}"#;
        let c = call_in(text).unwrap();
        assert_eq!((c.id, c.method.as_str()), (7, "hello"));
        let params: Value = serde_json::from_str(c.params.as_ref().unwrap().get()).unwrap();
        let Incoming::Single(Entry::Request(req)) = decode_incoming(text) else {
            panic!("not a request")
        };
        assert_eq!(Some(params), req.params);
        assert_eq!(Some(Id::from(7)), req.id);
        let no_params = call_in(b" \n{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"m\"}").unwrap();
        assert!(no_params.params.is_none());
    }

    #[test]
    fn anything_else_is_left_to_the_general_decoder() {
        for text in [
            &br#"{"jsonrpc":"2.0","method":"m","params":null,"id":1}"#[..],
            br#"{"jsonrpc":"2.0","method":"m","params":7,"id":1}"#,
            br#"{"jsonrpc":"2.0","method":"m","id":null}"#,
            br#"{"jsonrpc":"2.0","method":"m","id":"a"}"#,
            br#"{"jsonrpc":"2.0","method":"m","id":-1}"#,
            br#"{"jsonrpc":"2.0","method":"m","id":1.5}"#,
            br#"{"jsonrpc":"2.0","method":"m"}"#,
            br#"{"jsonrpc":"1.0","method":"m","id":1}"#,
            br#"{"jsonrpc":"2.0","method":"m\u0041","id":1}"#,
            br#"{"jsonrpc":"2.0","method":"m","id":1,"id":2}"#,
            br#"{"jsonrpc":"2.0","method":"m","id":1,"extra":0}"#,
            br#"{"jsonrpc":"2.0","method":7,"id":1}"#,
            br#"[{"jsonrpc":"2.0","method":"m","id":1}]"#,
            b"not json",
        ] {
            assert!(call_in(text).is_none(), "{}", String::from_utf8_lossy(text));
        }
        for text in [
            &br#"{"id":1,"jsonrpc":"2.0","error":{"code":1,"message":"no"}}"#[..],
            br#"{"id":"1","jsonrpc":"2.0","result":1}"#,
            br#"{"id":1,"jsonrpc":"2.0","result":1,"error":null}"#,
            br#"{"id":1,"result":1}"#,
            br#"[{"id":1,"jsonrpc":"2.0","result":1}]"#,
        ] {
            assert!(
                result_in(text).is_none(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn the_text_written_is_the_general_encoders() {
        let params = json!(["ipckit", {"a": 2, "b": [true, null]}]);
        let raw = params_out(&params).unwrap();
        let general = Request {
            method: "hello".into(),
            params: Some(params),
            id: Some(Id::from(9)),
        };
        assert_eq!(call_out(Some(9), "hello", raw.as_deref()), general.encode());
        assert_eq!(
            call_out(None, "log", None),
            Request {
                method: "log".into(),
                params: None,
                id: None
            }
            .encode()
        );
        let result = json!({"a": "x\u{e9}\n", "z": 1});
        let general = Response {
            id: Id::from(9),
            outcome: Ok(result.clone()),
        };
        assert_eq!(
            result_out(9, &result_text(&result).unwrap()),
            general.encode()
        );
        assert_eq!(
            result_in(&general.encode()).map(|(id, r)| (id, r.get().to_owned())),
            Some((9, result.to_string()))
        );
    }

    #[test]
    fn params_that_are_not_an_array_or_an_object_are_refused() {
        assert!(matches!(params_out(&()), Ok(None)));
        assert!(matches!(params_out(&(1, 2)), Ok(Some(_))));
        assert!(params_out(&7).is_err());
        assert!(params_out(&"x").is_err());
    }

    #[test]
    fn a_value_is_built_with_its_members_sorted_and_errors_are_the_general_ones() {
        let raw = RawValue::from_string(r#"{"z":1,"a":2}"#.into()).unwrap();
        let v: Value = from_raw(&raw).unwrap();
        assert_eq!(v.to_string(), r#"{"a":2,"z":1}"#);
        let general = serde_json::from_value::<(u8,)>(json!({"z":1,"a":2})).unwrap_err();
        let fast = from_raw::<(u8,)>(&raw).unwrap_err();
        assert_eq!(fast.to_string(), general.to_string());
    }
}
