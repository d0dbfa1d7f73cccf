//! OS calls that ipckit's own tests need and may not make themselves.
//!
//! The tests have no `unsafe` code (the CLI crate forbids it outright), so an OS
//! call a test needs and std does not offer lives here, behind a safe function,
//! with all of its `unsafe` in `src/sys/` as in the library. Not published.
//!
//! - `ctrl_c` (Windows): start a child on a console of its own, and send that
//!   console a real Ctrl-C, as a user typing it there would. (On Unix a test
//!   sends SIGINT with `kill -INT PID`.)
#![deny(missing_docs)]

mod sys;

#[cfg(windows)]
pub mod ctrl_c;
