//! TCP for the blocking faces (byte streams and framed message channels):
//! std's listener as a [`TcpBind`], a connect that follows the retry rule of
//! [`ConnectOptions`](crate::ConnectOptions) within its timeout, and the
//! error of `peer_credentials` on a TCP connection.

use std::io;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Instant;

use super::TcpBind;
use crate::address::Address;
use crate::error::{Error, ErrorKind};
use crate::plain::{ConnectConfig, RetrySchedule, deadline};

/// `peer_credentials` on a TCP stream: the OS knows no local user for it.
pub(crate) fn no_credentials(addr: &Address) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("{addr} is a TCP connection: its peer has no local process or user to report"),
    )
}

impl TcpBind for TcpListener {
    fn bind_tcp(host: &str, port: u16) -> io::Result<TcpListener> {
        TcpListener::bind((host, port))
    }

    fn bound_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.local_addr()
    }
}

/// Connects to `host:port` as `opts` say: retried (when asked) on the
/// schedule of [`RetrySchedule`] until the timeout.
pub(crate) fn connect(host: &str, port: u16, opts: &ConnectConfig) -> io::Result<TcpStream> {
    let limit = deadline(opts.timeout);
    let mut pauses = RetrySchedule::until(limit);
    loop {
        match connect_once(host, port, limit) {
            Err(e) if super::retry_tcp(opts, &e) => match pauses.next() {
                Some(pause) => std::thread::sleep(pause),
                None => return Err(super::tcp_gave_up()),
            },
            other => return other,
        }
    }
}

/// One try at every address the host resolves to, within one overall limit.
fn connect_once(host: &str, port: u16, limit: Option<Instant>) -> io::Result<TcpStream> {
    let mut last = None;
    for sa in (host, port).to_socket_addrs()? {
        let tried = match limit {
            Some(limit) => {
                let left = limit.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connect did not succeed before its timeout",
                    ));
                }
                TcpStream::connect_timeout(&sa, left)
            }
            None => TcpStream::connect(sa),
        };
        match tried {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(super::no_address))
}
