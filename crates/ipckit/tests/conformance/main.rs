//! The conformance suite: every transport through every face (blocking and
//! tokio), the same cases for each, on Linux and under Wine.
//!
//! Rows are the two tables at the bottom: one line per transport, for byte
//! streams and for message channels. A row runs every case of its kind on
//! every face its kind has; a test is named `KIND::ROW::FACE::CASE`, e.g.
//! `stream::tcp::tokio::retry_times_out`. Adding a transport is adding one
//! line to a table (and, if it is a new kind of address, one arm to
//! [`transport::Transport`]); adding a case is one generic function in
//! `cases.rs` and its name in a group of `group!`. Every case runs under the
//! watchdog. See docs/TESTING.md.

#[path = "../util/mod.rs"]
mod util;

mod cases;
mod face;
mod transport;

use std::time::Duration;

/// The bound of one case under the watchdog.
fn limit() -> Duration {
    Duration::from_secs(30) * util::slow_factor()
}

/// One `#[test]` per case, run under the watchdog.
macro_rules! cases {
    ($face:ty, $transport:expr; $($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            crate::util::watchdog(crate::limit(), || {
                crate::cases::$case::<$face>($transport)
            });
        }
    )*};
}

/// The cases of one group, for one face of one row. `core`: what every face
/// has; `sockets`: what the socket and pipe faces have besides (many clients
/// per listener, deadlines, peer credentials); `half_close`; `messages`:
/// what only message channels have.
macro_rules! group {
    (core, $face:ty, $transport:expr) => {
        cases!($face, $transport;
            connect_accept,
            read_timeout,
            write_timeout,
            retry_connects_once_bound,
            retry_times_out,
            not_found,
            addr_in_use,
            close_is_the_end,
        );
    };
    (sockets, $face:ty, $transport:expr) => {
        cases!($face, $transport; second_client, deadlines, peer_credentials);
    };
    (half_close, $face:ty, $transport:expr) => {
        cases!($face, $transport; half_close);
    };
    (messages, $face:ty, $transport:expr) => {
        cases!($face, $transport; max_message_size);
    };
}

/// One face of one row: a module of the cases of the groups named.
macro_rules! face {
    ($name:ident: $face:ty, $transport:expr; $($group:ident),*) => {
        mod $name {
            $(group!($group, $face, $transport);)*
        }
    };
}

/// Byte-stream rows: every case on the blocking and the tokio face.
macro_rules! stream_rows {
    ($($(#[$attr:meta])* $row:ident: $transport:expr;)*) => {$(
        $(#[$attr])*
        mod $row {
            face!(blocking: crate::face::Blocking, $transport; core, sockets, half_close);
            face!(tokio: crate::face::Tokio, $transport; core, sockets, half_close);
        }
    )*};
}

/// Message-channel rows, with the faces of their kind: `sockets`, a
/// transport of `MessageListener`/`MessageStream` (the message socket or
/// pipe, framed over TCP, a shared-memory channel per client), blocking
/// (with half-close; `shm:` has its documented `Unsupported`) and tokio
/// (which has no `shutdown`); `blocking`, such a transport with no tokio face
/// (none today); `shm`, the one-peer `ShmListener`/`ShmChannel`, blocking and
/// tokio, without deadlines, peer credentials or half-close.
macro_rules! message_rows {
    ($($(#[$attr:meta])* $row:ident: $transport:expr, $faces:ident;)*) => {$(
        $(#[$attr])*
        mod $row {
            message_faces!($faces, $transport);
        }
    )*};
}

macro_rules! message_faces {
    (sockets, $transport:expr) => {
        face!(blocking: crate::face::BlockingMessages, $transport; core, sockets, half_close, messages);
        face!(tokio: crate::face::TokioMessages, $transport; core, sockets, messages);
    };
    (blocking, $transport:expr) => {
        face!(blocking: crate::face::BlockingMessages, $transport; core, sockets, half_close, messages);
    };
    (shm, $transport:expr) => {
        face!(blocking: crate::face::ShmMessages, $transport; core, messages);
        face!(tokio: crate::face::TokioShmMessages, $transport; core, messages);
    };
}

// ------------------------------------------------------------------ the tables

mod stream {
    stream_rows! {
        #[cfg(unix)]
        unix_path: crate::transport::Transport::UnixPath;
        portable: crate::transport::Transport::Portable;
        #[cfg(target_os = "linux")]
        abstract_name: crate::transport::Transport::Abstract;
        tcp: crate::transport::Transport::Tcp;
    }
}

mod message {
    message_rows! {
        #[cfg(unix)]
        unix_path: crate::transport::Transport::UnixPath, sockets;
        portable: crate::transport::Transport::Portable, sockets;
        #[cfg(target_os = "linux")]
        abstract_name: crate::transport::Transport::Abstract, sockets;
        tcp_framed: crate::transport::Transport::Tcp, sockets;
        shm: crate::transport::Transport::Shm, sockets;
        shm_one_peer: crate::transport::Transport::Shm, shm;
    }
}
