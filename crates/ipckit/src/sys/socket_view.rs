//! A borrowable view of a socket whose owner cannot be borrowed on its own.

#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
#[cfg(windows)]
use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};

/// The socket of an owner that sits beside this view in one struct and
/// cannot be borrowed on its own (tokio's two halves of a TCP stream, each
/// behind an async lock), lent out for as long as that struct lives.
///
/// Made only by [`SocketView::of`] for the socket that the same struct then
/// keeps, in halves, until it is dropped: the halves are never taken out or
/// replaced, so the socket stays open while a borrow of the struct (and of
/// this view) lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketView(#[cfg(unix)] RawFd, #[cfg(windows)] RawSocket);

#[cfg(unix)]
impl SocketView {
    /// A view of `owner`'s descriptor; see the type's contract.
    pub(crate) fn of(owner: &impl AsFd) -> SocketView {
        SocketView(owner.as_fd().as_raw_fd())
    }

    /// The descriptor, borrowed for as long as this view is.
    #[allow(unsafe_code)]
    pub(crate) fn borrow(&self) -> BorrowedFd<'_> {
        // SAFETY: the one maker of a view, `tokio::message::Conn::framed`,
        // stores it in a `FramedConn` beside the two halves of the stream it
        // was made from; no code takes those halves out or replaces them (they
        // are only locked and used in place), and the socket is closed only
        // when the last half is dropped, with that `FramedConn`. `&self`
        // borrows a field of the `FramedConn`, so for the returned lifetime
        // the `FramedConn`, its halves and the descriptor are alive.
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }
}

#[cfg(windows)]
impl SocketView {
    /// A view of `owner`'s socket; see the type's contract.
    pub(crate) fn of(owner: &impl AsSocket) -> SocketView {
        SocketView(owner.as_socket().as_raw_socket())
    }

    /// The socket, borrowed for as long as this view is.
    #[allow(unsafe_code)]
    pub(crate) fn borrow(&self) -> BorrowedSocket<'_> {
        // SAFETY: as for the Unix `borrow`: the view is a field of the
        // `FramedConn` that owns both halves of its socket in place until it
        // is dropped, so the socket outlives the returned borrow of `&self`.
        unsafe { BorrowedSocket::borrow_raw(self.0) }
    }
}
