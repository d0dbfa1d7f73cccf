//! The loom model of ipckit's shared-memory ring.
//!
//! This crate compiles the ring's own source (`crates/ipckit/src/sys/ring.rs`)
//! and the atomics shim it goes through (`crates/ipckit/src/sys/sync.rs`) with loom's
//! atomics, and runs the ring's loom test:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p ipckit-loom --release
//! ```
//!
//! Without `--cfg loom` it is empty.
#![cfg(loom)]
// The ring's API is used by the loom test only; the crate exports nothing.
#![allow(dead_code, unreachable_pub)]

#[path = "../../ipckit/src/sys/sync.rs"]
mod sync;

#[path = "../../ipckit/src/sys/ring.rs"]
mod ring;
