//! Clients served on a thread each: for listeners that have no tokio face yet
//! (`listen --echo shm:NAME`, a shared-memory listener, whose channels each
//! wait on their own futex or events). The others are served on tasks
//! ([`crate::serve`]).

use std::thread;

use anyhow::Result;
use ipckit::stream::ConnectionLimit;

use crate::accepting::{Accepting, AfterError};
use crate::one_line;

/// Accepts clients with `accept` until the process is killed, and runs `serve` on
/// each in a thread of its own; `serve` returns what to report (with --verbose)
/// when its client is done. A client's failure ends that client only.
///
/// At most `max` clients (default: [`ConnectionLimit::default_max`]) are served
/// at once; at the limit no client is accepted until one is done, so the next
/// ones wait in the listener's backlog. An accept that fails for lack of
/// resources (out of file descriptors) pauses the loop, 5 ms doubling to 1 s,
/// and the loop goes on; with --verbose the first failure of each burst and
/// its end are reported.
pub(crate) fn serve_clients<C, A, S>(
    mut accept: A,
    serve: S,
    max: Option<usize>,
    verbose: bool,
) -> Result<()>
where
    C: Send + 'static,
    A: FnMut() -> ipckit::Result<C>,
    S: Fn(&C) -> Result<String> + Copy + Send + 'static,
{
    let limit = ConnectionLimit::new(max.unwrap_or_else(ConnectionLimit::default_max))?;
    let mut accepting = Accepting::new(limit.max(), verbose);
    while let Some(slot) = limit.acquire() {
        let conn = match accept() {
            Ok(conn) => conn,
            Err(err) => match accepting.failed(err, limit.in_use() - 1) {
                AfterError::Again => continue,
                AfterError::Pause(pause) => {
                    thread::sleep(pause);
                    continue;
                }
                AfterError::Fail(err) => return Err(err.into()),
            },
        };
        let client = accepting.accepted(limit.in_use());
        let spawned = thread::Builder::new()
            .name(format!("client-{client}"))
            .spawn(move || {
                // Held until this client is done.
                let _slot = slot;
                let result = serve(&conn);
                if verbose {
                    match result {
                        Ok(summary) => eprintln!("client {client}: {summary}"),
                        Err(err) => eprintln!("client {client}: {}", one_line(&err)),
                    }
                }
            });
        if let Err(err) = spawned {
            // Out of threads: this client is dropped (closed), the server goes on.
            eprintln!("ipckit: client {client}: cannot start a thread: {err}");
        }
    }
    Ok(())
}
