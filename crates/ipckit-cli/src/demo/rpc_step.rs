//! The demo's RPC step: this process serves JSON-RPC on a local address (the
//! `add` method) and a child process, this binary's own `ipckit call`, calls
//! it and prints the result, which this process checks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ipckit::Address;
use ipckit_rpc::{Methods, Server};

use super::wait_child;

/// What the RPC step did.
pub(crate) struct RpcFigures {
    /// The call the child made and the result it printed.
    pub(crate) call: String,
    pub(crate) result: String,
    /// From starting the child to its exit (a process start, a connect, one
    /// call), and the server's own time in the handler.
    pub(crate) took: Duration,
    pub(crate) calls_served: u64,
}

/// Serves `add` on `addr` while `ipckit call ADDR add [2, 40]` runs in a
/// child; checks that it printed 42 and that the server saw exactly one call.
pub(crate) fn run_rpc(exe: &Path, addr: &str) -> (Option<u32>, Result<RpcFigures>) {
    let address: Address = match addr.parse() {
        Ok(a) => a,
        Err(err) => return (None, Err(anyhow::Error::new(err))),
    };
    let served = Arc::new(AtomicU64::new(0));
    let mut methods = Methods::new();
    let count = Arc::clone(&served);
    methods.method("add", move |(a, b): (i64, i64)| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(a + b)
    });
    let pending = crate::cleanup::pending();
    let server = match Server::bind(address.clone(), methods) {
        Ok(s) => s,
        Err(err) => return (None, Err(err.into())),
    };
    pending.socket_of(&address);
    let started = Instant::now();
    let child = Command::new(exe)
        .args(["call", addr, "add", "[2, 40]"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(err) => {
            return (
                None,
                Err(anyhow::Error::new(err).context("start `ipckit call`")),
            );
        }
    };
    let pid = Some(child.id());
    let said = wait_child(child);
    let took = started.elapsed();
    server.shutdown();
    let outcome = said.and_then(|out| {
        let result = out.trim().to_owned();
        ensure!(
            result == "42",
            "`ipckit call {addr} add [2, 40]` printed {result:?}, not 42"
        );
        let calls_served = served.load(Ordering::SeqCst);
        ensure!(
            calls_served == 1,
            "the server ran `add` {calls_served} times, not once"
        );
        if let Some(file) = ipckit::platform::socket_file(&address) {
            ensure!(
                file.symlink_metadata().is_err(),
                "the RPC server left {} behind",
                file.display()
            );
        }
        Ok(RpcFigures {
            call: "add [2, 40]".into(),
            result,
            took,
            calls_served,
        })
    });
    (pid, outcome)
}
