//! What the CLI's servers do around each accept, whether they serve clients on
//! tasks ([`crate::serve`]) or on threads ([`crate::threaded`]): transient
//! failures skipped, resource failures paused with backoff, the client count
//! and the --verbose reports.

use std::io;
use std::time::Duration;

use ipckit::stream::AcceptBackoff;

/// One server's accept loop state.
pub(crate) struct Accepting {
    backoff: AcceptBackoff,
    clients: u64,
    max: usize,
    verbose: bool,
}

/// What to do after an accept failed.
pub(crate) enum AfterError {
    /// Accept again at once (a client that gave up while queued, a signal).
    Again,
    /// Out of descriptors (say): pause this long, serving the clients there are.
    Pause(Duration),
    /// The listener itself failed.
    Fail(ipckit::Error),
}

impl Accepting {
    /// For a server of at most `max` clients at once.
    pub(crate) fn new(max: usize, verbose: bool) -> Accepting {
        Accepting {
            backoff: AcceptBackoff::new(),
            clients: 0,
            max,
            verbose,
        }
    }

    /// An accept failed with `err` while `served` clients were being served.
    pub(crate) fn failed(&mut self, err: ipckit::Error, served: usize) -> AfterError {
        if is_transient(&err) {
            if self.verbose {
                eprintln!("ipckit: {err:#} (still listening)");
            }
            return AfterError::Again;
        }
        match self.backoff.on_error(&err) {
            Some(pause) => {
                if self.verbose && self.backoff.failures() == 1 {
                    eprintln!(
                        "ipckit: {err:#} (still listening: new clients wait until \
                         resources are freed; {served} clients being served)"
                    );
                }
                AfterError::Pause(pause)
            }
            None => AfterError::Fail(err),
        }
    }

    /// A client was accepted; `in_use` clients are now being served (it
    /// included). Returns its number, for the reports.
    pub(crate) fn accepted(&mut self, in_use: usize) -> u64 {
        let failed = self.backoff.on_success();
        if self.verbose && failed > 0 {
            eprintln!("ipckit: accepting again after {failed} failed accepts");
        }
        self.clients += 1;
        if self.verbose {
            eprintln!("client {}: connected", self.clients);
            if in_use == self.max {
                eprintln!(
                    "ipckit: {} clients, the limit: new clients wait until one is done",
                    self.max
                );
            }
        }
        self.clients
    }
}

fn is_transient(err: &ipckit::Error) -> bool {
    err.io_error().is_some_and(|e| {
        matches!(
            e.kind(),
            io::ErrorKind::Interrupted
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        )
    })
}
