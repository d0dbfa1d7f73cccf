//! `ipckit call` and `ipckit serve-demo`: JSON-RPC 2.0 from the command line,
//! on ipckit-rpc.

use ipckit::registry::Kind;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ipckit::Address;
use ipckit_rpc::{ClientOptions, ErrorKind, Framing, Methods, RpcError, ServerOptions};
use serde_json::Value;

use crate::stdout_error;

/// PARAMS_JSON: JSON text that is an array or an object (what JSON-RPC allows).
pub(crate) fn parse_params(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::Array(_) | Value::Object(_))) => Ok(v),
        Ok(_) => {
            Err("JSON-RPC params are an array or an object, such as [1, 2] or {\"a\": 1}".into())
        }
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

fn parse_framing(text: &str) -> Result<Framing, String> {
    text.parse()
}

/// The options `call` and `serve-demo` share: both ends must agree on them.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnArgs {
    /// Use multiprocessing.connection's authkey handshake with KEY (both ends
    /// need the same KEY).
    #[arg(long, value_name = "KEY")]
    authkey: Option<String>,

    /// length-prefix (default), content-length or message; both ends need
    /// the same.
    #[arg(long, value_name = "F", default_value = "length-prefix", value_parser = parse_framing)]
    framing: Framing,
}

/// The options of `ipckit call`.
pub(crate) struct Call<'a> {
    pub(crate) addr: &'a Address,
    pub(crate) method: &'a str,
    pub(crate) params: Option<Value>,
    pub(crate) conn: &'a ConnArgs,
    pub(crate) server_user: &'a crate::server_user::ServerUserArg,
    pub(crate) timeout: Option<Duration>,
}

/// Calls the method and prints its result as one line of JSON. A JSON-RPC
/// error is returned as the error (one line on stderr, exit 1).
///
/// `--timeout` bounds the whole call: connecting, the authkey handshake
/// (which is part of connecting) and the response share it.
pub(crate) fn call(args: &Call<'_>, verbose: bool) -> Result<()> {
    let started = Instant::now();
    let mut opts = ClientOptions::new();
    args.server_user.apply(&mut opts);
    opts.framing(args.conn.framing);
    if let Some(key) = &args.conn.authkey {
        opts.authkey(key);
    }
    if let Some(t) = args.timeout {
        opts.connect_timeout(t).handshake_timeout(t);
    }
    let client = opts.connect(args.addr)?;
    if verbose {
        eprintln!("connected to {}", client.peer());
    }
    // What is left of the timeout for the response (at least a moment, so a
    // response that is there already is taken).
    let left = args.timeout.map(|t| {
        t.saturating_sub(started.elapsed())
            .max(Duration::from_millis(1))
    });
    let result: Value = match &args.params {
        Some(p) => client.call_timeout(args.method, p, left),
        None => client.call_timeout(args.method, (), left),
    }
    .map_err(|e| match (e.kind(), args.timeout) {
        // Say the timeout given, not what was left of it.
        (ErrorKind::TimedOut, Some(t)) => anyhow::anyhow!(
            "call {:?} on {}: no response within {t:?} (--timeout)",
            args.method,
            client.peer()
        ),
        _ => e.into(),
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{result}")
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// The demo's methods: `echo` (its params back), `add` ([a, b]) and `sleep`
/// ([ms], returns ms once that long has passed).
fn demo_methods() -> Methods {
    let mut m = Methods::new();
    m.method("echo", |p: Value| Ok(p))
        .method("add", |(a, b): (i64, i64)| {
            a.checked_add(b).ok_or_else(|| {
                RpcError::invalid_params(format!("{a} + {b} overflows a 64-bit integer"))
            })
        })
        .method("sleep", |(ms,): (u64,)| {
            if ms > 60_000 {
                return Err(RpcError::invalid_params("sleep takes at most 60000 ms"));
            }
            thread::sleep(Duration::from_millis(ms));
            Ok(ms)
        });
    m
}

/// Serves the demo's methods until killed, to at most `max_connections`
/// clients at once (the library's default when `None`).
pub(crate) fn serve_demo(
    addr: &Address,
    conn: &ConnArgs,
    max_connections: Option<usize>,
    verbose: bool,
) -> Result<()> {
    let mut opts = ServerOptions::new();
    opts.framing(conn.framing);
    if let Some(n) = max_connections {
        opts.max_connections(n);
    }
    if let Some(key) = &conn.authkey {
        opts.authkey(key);
    }
    if verbose {
        opts.on_connection_error(|e| eprintln!("ipckit: a client failed: {e:#}"));
    }
    let _server = crate::serve_at(
        addr,
        Kind::Rpc,
        verbose,
        || {
            opts.bind(addr, demo_methods())
                .context("serve the JSON-RPC demo")
        },
        ipckit_rpc::Server::local_addr,
    )?;
    loop {
        thread::park();
    }
}
