//! The `ipckit` binary, run for real, one module per subcommand or feature
//! (as ripgrep's tests are): listen/connect relays of bytes and of messages,
//! the echo servers, send/recv over mailslots and broadcast groups, shared
//! memory, `ls`, `bench`, `spawn`, `call`/`serve-demo`, the demo, error
//! reporting and exit codes, and Python and Node as foreign peers.
//!
//! Every test that can block runs under a watchdog, and every child process is
//! owned by a [`support::Children`] guard on the test's own thread, so it is
//! killed on every path, including when the watchdog gives up on a hung test.

#[path = "../../../ipckit/tests/util/mod.rs"]
mod util;

mod support;

mod bench;
mod demo;
#[cfg(unix)]
mod interrupt;
// Its tests read what `ls` finds in /proc (Linux) and \\.\pipe\ (Windows);
// macOS and FreeBSD have neither.
#[cfg(any(target_os = "linux", windows))]
mod ls;
mod mailslot;
mod message;
mod relay;
mod rpc;
mod shm;
mod spawn;
mod usage;
