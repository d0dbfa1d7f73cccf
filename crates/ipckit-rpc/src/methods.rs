//! [`Methods`]: the typed handlers a server serves, and running one call.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::RpcError;
use crate::fast::{self, Call};
use crate::jsonrpc::{Entry, Id, Incoming, Request, Response, decode_incoming};

pub(crate) type Outcome = Result<Value, RpcError>;
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;
type SyncFn = dyn Fn(Option<Value>) -> Outcome + Send + Sync;
/// A blocking handler over JSON text ([`fast`]): `None` when the params do
/// not fit its type (its [`SyncFn`] then says why, in the general words).
type TextFn = dyn Fn(Option<&RawValue>) -> Option<Result<Box<RawValue>, RpcError>> + Send + Sync;
type AsyncFn = dyn Fn(Option<Value>) -> BoxFuture + Send + Sync;

#[derive(Clone)]
pub(crate) enum Handler {
    /// A blocking handler, over values and over JSON text.
    Sync(Arc<SyncFn>, Arc<TextFn>),
    Async(#[cfg_attr(not(feature = "tokio"), allow(dead_code))] Arc<AsyncFn>),
}

/// The methods a server serves: typed handlers, registered by name.
///
/// A handler takes its parameters as any type serde can build from the
/// request's `params` (a tuple for `[a, b]`, a struct for `{"a": 1}`, `()` for
/// none, `serde_json::Value` for anything) and returns `Ok` with anything serde
/// can serialize, or `Err` with the [`RpcError`] the caller gets. Parameters that
/// do not fit the type are answered with -32602 (invalid params) without calling
/// the handler; a handler that panics is answered with -32603 (internal error),
/// and the server and every other call go on.
///
/// # Examples
///
/// ```
/// use ipckit_rpc::{Methods, RpcError};
/// let mut methods = Methods::new();
/// methods
///     .method("add", |(a, b): (i64, i64)| Ok(a + b))
///     .method("div", |(a, b): (i64, i64)| {
///         if b == 0 {
///             return Err(RpcError::new(1, "division by zero"));
///         }
///         Ok(a / b)
///     })
///     .method_async("later", |ms: (u64,)| async move { Ok(ms.0) });
/// assert_eq!(methods.names(), ["add", "div", "later"]);
/// ```
#[derive(Clone, Default)]
pub struct Methods {
    map: HashMap<String, Handler>,
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Methods")
            .field("names", &self.names())
            .finish()
    }
}

fn params_of<P: DeserializeOwned>(method: &str, params: Option<Value>) -> Result<P, RpcError> {
    serde_json::from_value(params.unwrap_or(Value::Null))
        .map_err(|e| RpcError::invalid_params(format!("invalid params for {method:?}: {e}")))
}

fn result_of<R: Serialize>(method: &str, result: Result<R, RpcError>) -> Outcome {
    serde_json::to_value(result?).map_err(|e| not_json(method, e))
}

fn not_json(method: &str, e: serde_json::Error) -> RpcError {
    RpcError::internal(format!(
        "the result of {method:?} does not serialize to JSON: {e}"
    ))
}

/// The -32603 error a panicking handler's caller gets.
pub(crate) fn panicked(method: &str, payload: &(dyn Any + Send)) -> RpcError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    RpcError::internal(format!(
        "internal error: the handler of {method:?} panicked: {what}"
    ))
}

impl Methods {
    /// No methods yet.
    pub fn new() -> Methods {
        Methods::default()
    }

    /// Registers a blocking handler for `name`, replacing any earlier one.
    ///
    /// The blocking [`Server`](crate::Server) runs each call on a thread of its
    /// pool; the async server on tokio's blocking pool. A call of a method
    /// whose last call took at most 50 µs runs at once where its request was
    /// read (the hand-over would cost more than the call), on either server.
    pub fn method<P, R, F>(&mut self, name: &str, handler: F) -> &mut Methods
    where
        P: DeserializeOwned,
        R: Serialize,
        F: Fn(P) -> Result<R, RpcError> + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        let (method, h) = (name.to_owned(), Arc::clone(&handler));
        let f = move |params: Option<Value>| -> Outcome {
            let p = params_of::<P>(&method, params)?;
            result_of(&method, h(p))
        };
        let method = name.to_owned();
        let text = move |params: Option<&RawValue>| {
            let p: P = serde_json::from_str(params.map_or("null", |p| p.get())).ok()?;
            Some(handler(p).and_then(|r| fast::result_text(&r).map_err(|e| not_json(&method, e))))
        };
        self.map
            .insert(name.to_owned(), Handler::Sync(Arc::new(f), Arc::new(text)));
        self
    }

    /// Registers an async handler for `name`, replacing any earlier one. Only
    /// the async server (`ipckit_rpc::tokio::Server`, the `tokio` feature) serves
    /// async handlers; the blocking server refuses to start with one.
    pub fn method_async<P, R, F, Fut>(&mut self, name: &str, handler: F) -> &mut Methods
    where
        P: DeserializeOwned,
        R: Serialize,
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
    {
        let method: Arc<str> = name.into();
        let handler = Arc::new(handler);
        let f = move |params: Option<Value>| -> BoxFuture {
            let method = Arc::clone(&method);
            // The handler is called here, so only its future crosses threads.
            let fut = params_of::<P>(&method, params).map(|p| handler(p));
            Box::pin(async move {
                match fut {
                    Ok(fut) => result_of(&method, fut.await),
                    Err(e) => Err(e),
                }
            })
        };
        self.map
            .insert(name.to_owned(), Handler::Async(Arc::new(f)));
        self
    }

    /// The names of the methods, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.map.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Handler> {
        self.map.get(name)
    }

    /// An async method's name, if there is one (the blocking server refuses them).
    pub(crate) fn first_async(&self) -> Option<&str> {
        self.names()
            .into_iter()
            .find(|n| matches!(self.map.get(*n), Some(Handler::Async(_))))
    }

    /// Runs a blocking call here and now; its response, if it has an id.
    pub(crate) fn run_sync(&self, req: Request) -> Option<Response> {
        let outcome = match self.get(&req.method) {
            None => Err(RpcError::method_not_found(&req.method)),
            Some(Handler::Sync(f, _)) => catch_unwind(AssertUnwindSafe(|| f(req.params)))
                .unwrap_or_else(|p| Err(panicked(&req.method, &*p))),
            Some(Handler::Async(_)) => Err(RpcError::internal(format!(
                "internal error: {:?} is an async method, which this blocking server cannot run",
                req.method
            ))),
        };
        req.id.map(|id| Response { id, outcome })
    }

    /// Runs a plain call ([`fast`]) here and now: its response's text. The
    /// same as [`run_sync`](Methods::run_sync) of the same request, without a
    /// `Value` where the handler's types allow.
    pub(crate) fn run_text(&self, call: Call) -> Option<Vec<u8>> {
        let Some(Handler::Sync(f, text)) = self.get(&call.method) else {
            return self.run_sync(call.into_request()).map(|r| r.encode());
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            match text(call.params.as_deref()) {
                Some(Ok(result)) => Ok(result),
                Some(Err(e)) => Err(e),
                // The params do not fit: the general path says why (and runs
                // the handler if they fit a `Value` after all).
                None => f(call.params.as_deref().map(fast::to_value))
                    .and_then(|v| fast::result_text(&v).map_err(|e| not_json(&call.method, e))),
            }
        }))
        .unwrap_or_else(|p| Err(panicked(&call.method, &*p)));
        Some(match outcome {
            Ok(result) => fast::result_out(call.id, &result),
            Err(e) => Response::error(Id::from(call.id), e).encode(),
        })
    }

    /// Runs a batch here and now: the one array of its responses, or nothing
    /// when it held only notifications.
    pub(crate) fn run_batch_sync(&self, entries: Vec<Entry>) -> Option<Vec<u8>> {
        let responses: Vec<Response> = entries
            .into_iter()
            .filter_map(|e| match e {
                Entry::Invalid(r) => Some(r),
                Entry::Request(req) => self.run_sync(req),
            })
            .collect();
        (!responses.is_empty()).then(|| Response::encode_batch(&responses))
    }
}

/// What one incoming message asks the server to run.
pub(crate) enum Job {
    /// A plain call, read without a `Value` ([`fast`]).
    Plain(Call),
    One(Request),
    Batch(Vec<Entry>),
}

impl Job {
    /// What a frame asks for: a job to run, or the bytes of the error
    /// response to an invalid one.
    pub(crate) fn from_frame(frame: &[u8]) -> Result<Job, Vec<u8>> {
        if let Some(call) = fast::call_in(frame) {
            return Ok(Job::Plain(call));
        }
        match decode_incoming(frame) {
            Incoming::Invalid(resp) | Incoming::Single(Entry::Invalid(resp)) => Err(resp.encode()),
            Incoming::Single(Entry::Request(req)) => Ok(Job::One(req)),
            Incoming::Batch(entries) => Ok(Job::Batch(entries)),
        }
    }

    /// Runs the job here and now: the bytes of its response, if it has one.
    pub(crate) fn run_sync(self, methods: &Methods) -> Option<Vec<u8>> {
        match self {
            Job::Plain(call) => methods.run_text(call),
            Job::One(req) => methods.run_sync(req).map(|r| r.encode()),
            Job::Batch(entries) => methods.run_batch_sync(entries),
        }
    }
}

/// A future that turns a panic while it is polled into an error.
pub(crate) struct CatchUnwind(pub(crate) BoxFuture);

impl Future for CatchUnwind {
    type Output = Result<Outcome, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A call read here and the same call read by the general decoder (a
    /// string id sends it there) get the same answer, errors included.
    #[test]
    fn a_plain_call_is_answered_as_the_general_path_answers_it() {
        let mut methods = Methods::new();
        methods
            .method("add", |(a, b): (i64, i64)| Ok(a + b))
            .method("pair", |(a,): (String,)| Ok((a, json!({"z": 1, "a": 2}))))
            .method("fail", |(): ()| -> Result<(), RpcError> {
                Err(RpcError::new(7, "no").with_data(json!([1])))
            })
            .method("boom", |(): ()| -> Result<(), RpcError> { panic!("boom") })
            .method("any", |v: Value| Ok(v));
        let answer = |text: String| -> Value {
            let job = Job::from_frame(text.as_bytes()).unwrap();
            let out = job.run_sync(&methods).unwrap();
            let mut v: Value = serde_json::from_slice(&out).unwrap();
            v["id"] = Value::Null;
            v
        };
        for (method, params) in [
            ("add", "[1,2]"),
            ("add", r#"["x",2]"#),
            ("add", "[1]"),
            ("add", r#"{"a":1}"#),
            ("pair", r#"["s"]"#),
            ("fail", "[]"),
            ("boom", "[]"),
            ("any", r#"{"b":[1,{"d":1,"c":2}],"a":null}"#),
            ("nope", "[]"),
        ] {
            let fast =
                format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":3}}"#);
            let general = fast.replace(r#""id":3"#, r#""id":"3""#);
            assert!(
                fast::call_in(fast.as_bytes()).is_some()
                    && fast::call_in(general.as_bytes()).is_none()
            );
            assert_eq!(answer(fast), answer(general), "{method} {params}");
        }
    }
}
