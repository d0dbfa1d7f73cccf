//! What both clients do with the calls of one connection: the calls in
//! flight and their replies ([`Ledger`], [`Pending`]), what a message from the
//! server means for them ([`route`]), and the errors of a call.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind, Result, RpcError};
use crate::fast;
use crate::jsonrpc::{Id, Response, Responses, decode_responses};
use crate::options::lock;

/// Why a pending call ended without a result.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    Rpc(RpcError),
    Closed(ErrorKind, String),
}

/// A call's result as it came: JSON text (a response read by
/// [`fast`](crate::fast)) or a value (one read by the general decoder).
#[derive(Debug)]
pub(crate) enum Payload {
    Text(Box<RawValue>),
    Value(Value),
}

pub(crate) type Reply = std::result::Result<Payload, Failure>;

/// The calls in flight of one connection, and whether it is closed. Shared by
/// the blocking and the async client: `S` is how a reply reaches its caller.
pub(crate) struct Pending<S> {
    pub(crate) calls: HashMap<u64, S>,
    pub(crate) closed: Option<(ErrorKind, String)>,
}

impl<S> Default for Pending<S> {
    fn default() -> Pending<S> {
        Pending {
            calls: HashMap::new(),
            closed: None,
        }
    }
}

/// How a reply reaches the call waiting for it.
pub(crate) trait ReplyTx {
    fn reply(self, reply: Reply);
}

/// The calls of one connection as both clients keep them: those in flight
/// and whether the connection is closed ([`Pending`]), the next call's id,
/// and the server's name for the errors.
pub(crate) struct Ledger<S> {
    pub(crate) pending: Mutex<Pending<S>>,
    next_id: AtomicU64,
    pub(crate) peer: String,
}

/// What the errors of a call begin with (`call "m" on PEER`): written out
/// only when there is one, not on every call.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    verb: &'static str,
    method: &'a str,
    peer: &'a str,
}

impl fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} on {}", self.verb, self.method, self.peer)
    }
}

/// A call begun: the context of its errors, its id, and its request, encoded.
pub(crate) struct Begun<'a> {
    pub(crate) context: Context<'a>,
    pub(crate) id: u64,
    pub(crate) frame: Vec<u8>,
}

impl<S: ReplyTx> Ledger<S> {
    /// No call yet on a connection to `peer`.
    pub(crate) fn new(peer: String) -> Ledger<S> {
        Ledger {
            pending: Mutex::new(Pending::default()),
            next_id: AtomicU64::new(1),
            peer,
        }
    }

    /// Marks the connection closed: every call in flight fails at once with
    /// `why`, and so does every later one.
    ///
    /// Every reply is given while `pending` is held (the lock order is
    /// `pending`, then a mailbox): a call that finds its entry gone once it
    /// has timed out then finds its reply there too, never a moment early.
    pub(crate) fn close(&self, kind: ErrorKind, why: String) {
        let mut p = lock(&self.pending);
        p.closed.get_or_insert((kind, why.clone()));
        for (_, tx) in p.calls.drain() {
            tx.reply(Err(Failure::Closed(kind, why.clone())));
        }
    }

    /// Begins a call of `method` with `params`: takes the next id and
    /// registers the call (its reply goes to `tx`).
    ///
    /// # Errors
    ///
    /// Params that are not JSON-RPC params (see [`to_params`]); a connection
    /// that has closed (why it did).
    pub(crate) fn call<'a, P: Serialize>(
        &'a self,
        method: &'a str,
        params: P,
        tx: S,
    ) -> Result<Begun<'a>> {
        let context = Context {
            verb: "call",
            method,
            peer: &self.peer,
        };
        let params = params_text(&context, &params)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut p = lock(&self.pending);
            if let Some(closed) = &p.closed {
                return Err(closed_error(&context, closed));
            }
            p.calls.insert(id, tx);
        }
        let frame = fast::call_out(Some(id), method, params.as_deref());
        Ok(Begun { context, id, frame })
    }

    /// A notification of `method` with `params`: the context of its errors
    /// (`notify "m" on PEER`) and its request, encoded.
    ///
    /// # Errors
    ///
    /// As for [`call`](Ledger::call).
    pub(crate) fn notification<'a, P: Serialize>(
        &'a self,
        method: &'a str,
        params: P,
    ) -> Result<(Context<'a>, Vec<u8>)> {
        let context = Context {
            verb: "notify",
            method,
            peer: &self.peer,
        };
        let params = params_text(&context, &params)?;
        if let Some(closed) = &lock(&self.pending).closed {
            return Err(closed_error(&context, closed));
        }
        Ok((context, fast::call_out(None, method, params.as_deref())))
    }

    /// Drops call `id` (timed out, or its caller gone): its reply, if one
    /// comes, goes nowhere.
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.pending).calls.remove(&id);
    }

    /// Hands the replies of one message to their calls. Returns why the
    /// connection must close, if it must.
    pub(crate) fn deliver(&self, route: Route) -> Option<String> {
        match route {
            Route::Replies(replies) => {
                let mut p = lock(&self.pending);
                for (id, reply) in replies {
                    if let Some(tx) = p.calls.remove(&id) {
                        tx.reply(reply);
                    }
                }
            }
            Route::FailAll(e) => {
                for (_, tx) in lock(&self.pending).calls.drain() {
                    tx.reply(Err(Failure::Rpc(e.clone())));
                }
            }
            Route::Ignore => {}
            Route::Broken(why) => {
                return Some(format!(
                    "the server sent a message that is not a JSON-RPC response ({why}); the connection is closed"
                ));
            }
            Route::WantsAuthkey => {
                return Some(
                    "the server asks for an authkey: it began multiprocessing.connection's \
                     authkey handshake (#CHALLENGE#); connect with the server's authkey \
                     (ClientOptions::authkey, `ipckit call --authkey KEY`)"
                        .into(),
                );
            }
        }
        None
    }
}

/// What to do with one message from the server, decoded.
pub(crate) enum Route {
    /// Replies for these ids.
    Replies(Vec<(u64, Reply)>),
    /// An error response with a null id: the server could not read one of our
    /// messages, and which one cannot be told; every call in flight fails.
    FailAll(RpcError),
    /// A message to ignore (a server-to-client request, a reply to an id not
    /// ours).
    Ignore,
    /// Not a response: the connection is out of step.
    Broken(String),
    /// The server began multiprocessing's authkey handshake: it wants an
    /// authkey this client was not given.
    WantsAuthkey,
}

pub(crate) fn route(frame: &[u8]) -> Route {
    if frame.starts_with(crate::auth::CHALLENGE) {
        return Route::WantsAuthkey;
    }
    if let Some((id, result)) = fast::result_in(frame) {
        return Route::Replies(vec![(id, Ok(Payload::Text(result)))]);
    }
    let responses = match decode_responses(frame) {
        Ok(Responses::Single(r)) => vec![r],
        Ok(Responses::Batch(rs)) => rs,
        Ok(Responses::ServerRequest(_)) => return Route::Ignore,
        Err(why) => return Route::Broken(why),
    };
    let mut replies = Vec::new();
    for Response { id, outcome } in responses {
        match (id.as_u64(), outcome) {
            (Some(n), outcome) => {
                replies.push((n, outcome.map(Payload::Value).map_err(Failure::Rpc)));
            }
            (None, Err(e)) if id == Id::Null => return Route::FailAll(e),
            (None, _) => {}
        }
    }
    if replies.is_empty() {
        Route::Ignore
    } else {
        Route::Replies(replies)
    }
}

/// The params of a call as JSON text: what `params` serializes to, which must
/// be an array or an object, or nothing (`()`).
fn params_text<P: Serialize>(context: &Context<'_>, params: &P) -> Result<Option<Box<RawValue>>> {
    match fast::params_out(params) {
        Ok(text) => Ok(text),
        // Why not, in the words of the general path.
        Err(()) => to_params(context, params).and_then(|_| {
            Err(Error::new(
                ErrorKind::Serialization,
                format!("{context}: the params do not serialize to JSON text"),
            ))
        }),
    }
}

/// The params of a call: what `params` serializes to, which must be an array
/// or an object, or nothing (`()`).
fn to_params<P: Serialize>(context: &Context<'_>, params: P) -> Result<Option<Value>> {
    match serde_json::to_value(params) {
        Ok(Value::Null) => Ok(None),
        Ok(v @ (Value::Array(_) | Value::Object(_))) => Ok(Some(v)),
        Ok(v) => Err(Error::new(
            ErrorKind::Serialization,
            format!(
                "{context}: JSON-RPC params are an array or an object (a tuple, a Vec, a struct, a map) or none (()), not {v}"
            ),
        )),
        Err(e) => Err(Error::new(
            ErrorKind::Serialization,
            format!("{context}: the params do not serialize to JSON: {e}"),
        )),
    }
}

/// The result of a call, or its failure, as the caller's type.
pub(crate) fn finish<R: DeserializeOwned>(context: &Context<'_>, reply: Reply) -> Result<R> {
    let result = match reply {
        Ok(Payload::Text(text)) => fast::from_raw(&text),
        Ok(Payload::Value(value)) => serde_json::from_value(value),
        Err(Failure::Rpc(e)) => return Err(Error::rpc(context, e)),
        Err(Failure::Closed(kind, why)) => {
            return Err(Error::new(kind, format!("{context}: {why}")));
        }
    };
    result.map_err(|e| {
        Error::new(
            ErrorKind::Serialization,
            format!("{context}: the result does not fit the type asked for: {e}"),
        )
    })
}

/// The error of a call on a connection that has closed.
pub(crate) fn closed_error(context: &Context<'_>, closed: &(ErrorKind, String)) -> Error {
    Error::new(closed.0, format!("{context}: {}", closed.1))
}

/// How a receive error ends the connection: its kind, and why, for the calls
/// it fails. (A Windows pipe reports the server's end closing as an error.)
pub(crate) fn end_of(e: &Error) -> (ErrorKind, String) {
    match e.kind() {
        k @ (ErrorKind::FrameTooLarge | ErrorKind::Protocol) => {
            (k, format!("the connection failed: {e}"))
        }
        ErrorKind::Disconnected => (
            ErrorKind::Disconnected,
            format!("the server closed the connection ({e})"),
        ),
        _ => (
            ErrorKind::Disconnected,
            format!("the connection failed: {e}"),
        ),
    }
}

pub(crate) fn timed_out(context: &Context<'_>, timeout: Duration) -> Error {
    Error::new(
        ErrorKind::TimedOut,
        format!("{context}: no response within {timeout:?}"),
    )
}

/// The `Debug` of a client of either face: its peer and default timeout.
pub(crate) fn debug_client(
    f: &mut fmt::Formatter<'_>,
    peer: &str,
    timeout: Option<Duration>,
) -> fmt::Result {
    f.debug_struct("Client")
        .field("peer", &peer)
        .field("timeout", &timeout)
        .finish_non_exhaustive()
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Context<'static> = Context {
        verb: "call",
        method: "m",
        peer: "x",
    };

    /// A result read as text (the fast path) and one read as a value (the
    /// general decoder) reach the caller alike, mistakes included.
    #[test]
    fn a_result_as_text_or_as_a_value_gives_the_same_answer() {
        let text = r#"{"z":[1,"x"],"a":null}"#;
        let as_text = || Ok(Payload::Text(RawValue::from_string(text.into()).unwrap()));
        let as_value = || Ok(Payload::Value(serde_json::from_str(text).unwrap()));
        let v1: Value = finish(&C, as_text()).unwrap();
        let v2: Value = finish(&C, as_value()).unwrap();
        assert_eq!(v1.to_string(), v2.to_string());
        let e1 = finish::<(u8,)>(&C, as_text()).unwrap_err();
        let e2 = finish::<(u8,)>(&C, as_value()).unwrap_err();
        assert_eq!(e1.to_string(), e2.to_string());
        assert_eq!(e1.kind(), ErrorKind::Serialization);
        assert!(e1.to_string().starts_with("call \"m\" on x: "), "{e1}");
    }

    /// Params that are not an array, an object or `()` are refused with the
    /// general path's words, and nothing is sent.
    #[test]
    fn params_of_the_wrong_kind_are_refused_in_the_general_words() {
        let e = params_text(&C, &7).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization);
        assert!(e.to_string().contains("not 7"), "{e}");
        assert!(params_text(&C, &()).unwrap().is_none());
    }
}
