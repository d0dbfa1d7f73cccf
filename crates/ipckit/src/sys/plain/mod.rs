//! Plain data that crosses the `sys` boundary: the settings `sys` takes, the
//! endpoints it serves, the failures and outcomes it returns, the retry
//! schedule. It is part of `sys` (like [`peer`](crate::sys::peer) and
//! [`sync`](crate::sys::sync)) and names nothing above it; the layers above
//! reach it through a re-export at the crate root (scripts/check-layers.sh).

mod broadcast;
mod config;
mod endpoint;
mod fault;
mod retry;

pub use broadcast::Broadcast;
pub(crate) use config::{ConnectConfig, DEFAULT_MAX_MESSAGE_SIZE, ListenConfig};
pub(crate) use endpoint::{Endpoint, Env, Os};
pub(crate) use fault::{Fault, FaultKind, OsErrorClass, fault_of, timed_out, too_large};
pub(crate) use retry::{RetrySchedule, deadline};

pub(crate) mod frame;
