//! Message channels over named pipes in message mode, all I/O overlapped.
//!
//! Server instances are created `PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE` by the
//! same always-one-instance-waiting [`Listener`] as byte streams; a client opens
//! the pipe as a byte-stream client does and then switches its handle to
//! `PIPE_READMODE_MESSAGE`.
//!
//! One `WriteFile` is one message. A reader gets it whole: a message larger than
//! the read buffer ends a read with `ERROR_MORE_DATA`, `PeekNamedPipe` tells how
//! much of it is left (the pipe holds all of it from the moment it was written),
//! and the rest is read into a buffer of exactly the right size. A message over
//! the receiver's limit is refused before it is delivered in any part.

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::windows::io::{AsHandle, AsRawHandle, OwnedHandle};
use std::ptr;
use std::sync::Mutex;
use std::time::Instant;

use windows_sys::Win32::Foundation::{ERROR_BROKEN_PIPE, ERROR_PIPE_NOT_CONNECTED};
use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};
use windows_sys::Win32::System::Pipes::{
    DisconnectNamedPipe, PIPE_READMODE_MESSAGE, PeekNamedPipe, SetNamedPipeHandleState,
};

use super::handle::Event;
use super::overlapped;
use super::pipe::{Listener, PipeKind, connect_handle, lock};
use crate::sys::plain::Endpoint;
use crate::sys::plain::{ConnectConfig, ListenConfig};
use crate::sys::plain::{Fault, FaultKind, too_large};

/// The first read of each message asks for this much; larger messages take a
/// second read of exactly their rest.
const CHUNK: usize = 64 * 1024;

/// The largest read made to throw away the rest of a refused message.
const DISCARD_CHUNK: usize = 1 << 20;

/// A named-pipe server in message mode, always one instance waiting.
#[derive(Debug)]
pub(crate) struct MsgListener {
    pipe: Listener,
}

impl MsgListener {
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<MsgListener> {
        let pipe = Listener::bind_kind(ep, opts, PipeKind::Messages)?;
        Ok(MsgListener { pipe })
    }

    pub(crate) fn accept(&self) -> io::Result<MsgStream> {
        MsgStream::new(self.pipe.accept_handle()?, true)
    }

    /// See [`Listener::abort`].
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn abort(&self) {
        self.pipe.abort();
    }
}

/// The receiving side of a channel: one `recv` at a time holds it.
struct Reader {
    event: Event,
    /// The first read of each message lands here (its capacity is kept), so a
    /// small message is delivered in a vector of its own size.
    scratch: Vec<u8>,
    /// The part of a message that a `recv` which ran out of time had read; the
    /// next `recv` goes on with it.
    partial: Vec<u8>,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("partial_len", &self.partial.len())
            .finish_non_exhaustive()
    }
}

/// A connected message-mode pipe handle (either end).
#[derive(Debug)]
pub(crate) struct MsgStream {
    handle: OwnedHandle,
    /// The server end can force the channel closed (`DisconnectNamedPipe`).
    server: bool,
    reader: Mutex<Reader>,
    /// Sends use their own event, so one may run while a `recv` waits.
    write_event: Mutex<Event>,
    /// Signalled to give up every operation, now and later (see `abort`).
    stop: Event,
    /// Signalled to give up every receive, now and later (see `abort` and
    /// `shutdown`); receives wait for this one, sends for `stop`.
    read_stop: Event,
}

/// The peer has gone: the end of the channel, or of the message in progress.
fn is_end(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|c| c as u32 == ERROR_BROKEN_PIPE || c as u32 == ERROR_PIPE_NOT_CONNECTED)
}

fn cut_short(read: usize) -> io::Error {
    Fault::io(
        FaultKind::Protocol,
        format!("the peer closed the channel in the middle of a message ({read} bytes read)"),
    )
}

/// `ERROR_MORE_DATA` promised more, but the pipe holds none: the writer's
/// `WriteFile` was cancelled part-way, which drops the unread rest.
fn abandoned(read: usize) -> io::Error {
    Fault::io(
        FaultKind::Protocol,
        format!(
            "the peer abandoned a message part-way ({read} bytes read, the rest withdrawn: \
             its write was cancelled, e.g. by a send timeout)"
        ),
    )
}

fn wrong_kind() -> io::Error {
    Fault::io(
        FaultKind::Protocol,
        "cannot open a message channel there: the pipe serves byte streams \
         (PIPE_TYPE_BYTE), not message channels",
    )
}

impl MsgStream {
    /// Wraps a connected message-mode handle; `server` for a server end.
    pub(super) fn new(handle: OwnedHandle, server: bool) -> io::Result<MsgStream> {
        Ok(MsgStream {
            handle,
            server,
            reader: Mutex::new(Reader {
                event: Event::new()?,
                scratch: Vec::new(),
                partial: Vec::new(),
            }),
            write_event: Mutex::new(Event::new()?),
            stop: Event::new()?,
            read_stop: Event::new()?,
        })
    }

    pub(crate) fn connect(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<MsgStream> {
        MsgStream::new(client_handle(ep, opts)?, false)
    }

    /// The pipe handle, lent.
    pub(crate) fn handle(&self) -> std::os::windows::io::BorrowedHandle<'_> {
        self.handle.as_handle()
    }

    /// Adopts `handle`, which the caller vouches is a connected pipe end
    /// opened for overlapped I/O; refuses one that is no named pipe or a
    /// byte-mode one, and reads it in message mode from now on. With the
    /// pipe's name, where the OS tells it.
    pub(crate) fn adopt(handle: OwnedHandle) -> io::Result<(MsgStream, Option<String>)> {
        let end = super::adopt::pipe_end(handle.as_handle())?;
        if !end.message {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the handle is a byte-mode pipe (PIPE_TYPE_BYTE): adopt it as a Stream",
            ));
        }
        read_messages(&handle)?;
        let name = super::adopt::pipe_name(handle.as_handle());
        Ok((MsgStream::new(handle, end.server)?, name))
    }

    pub(crate) fn peer_credentials(&self) -> io::Result<crate::sys::peer::PeerCredentials> {
        super::security::peer_credentials(self.handle.as_handle())
    }

    /// Sends `msg` as one message (one `WriteFile`), giving up at `limit`.
    pub(crate) fn send(&self, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        if u32::try_from(msg.len()).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a message of {} bytes is larger than a named pipe carries in one \
                     message ({} bytes at most)",
                    msg.len(),
                    u32::MAX
                ),
            ));
        }
        let event = lock(&self.write_event);
        let sent = self.write(&event, msg, limit)?;
        if sent >= msg.len() {
            return Ok(());
        }
        if sent == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the pipe took none of the message",
            ));
        }
        // The deadline cancelled the write after the pipe had taken part of the
        // message (`overlapped::run` reports that part). A started message is
        // completed, never torn: the rest is written without the deadline, and
        // a receiver that got the first part with `ERROR_MORE_DATA` reads the
        // rest as its continuation.
        //
        // Wine (seen) reports no count for a cancelled message write, and drops
        // the unread rest of the message even if the reader has taken a first
        // part: then this returns `TimedOut`, and the reader finds the rest gone
        // and fails with `ErrorKind::Protocol` rather than deliver a part. (If
        // another message were already queued behind, the reader could not tell
        // it from the rest.)
        let mut done = sent;
        while done < msg.len() {
            match self.write(&event, &msg[done..], None)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the pipe took none of the rest of the message",
                    ));
                }
                n => done += n,
            }
        }
        Ok(())
    }

    fn write(&self, event: &Event, buf: &[u8], limit: Option<Instant>) -> io::Result<usize> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let raw = self.handle.as_raw_handle();
        let handle = self.handle.as_handle();
        overlapped::run_stoppable(handle, event, &self.stop, limit, "send", &[], |ov| {
            // SAFETY: `raw` is our live overlapped pipe handle; `buf` is valid for
            // `len` bytes and, like `ov`, outlives the operation because `run`
            // waits for it to finish.
            unsafe { WriteFile(raw, buf.as_ptr(), len, ptr::null_mut(), ov) }
        })
        .map(|n| n as usize)
    }

    /// Receives the next whole message into `out` (emptied first); `false` at the
    /// end of the channel. Concurrent calls take turns.
    pub(crate) fn recv(
        &self,
        out: &mut Vec<u8>,
        max: usize,
        limit: Option<Instant>,
    ) -> io::Result<bool> {
        let mut reader = lock(&self.reader);
        let reader = &mut *reader;
        out.clear();
        if !reader.partial.is_empty() {
            *out = std::mem::take(&mut reader.partial);
        }
        let res = self.recv_locked(reader, out, max, limit);
        if res.is_err() && !out.is_empty() {
            // Ran out of time (or failed) in the middle of a message: keep what
            // was read for the next call, so nothing is lost. Errors that end
            // the message have emptied `out`.
            reader.partial = std::mem::take(out);
        }
        res
    }

    /// `recv` with the reader held; `buf` holds the part of the message read so
    /// far (empty at the start of one).
    fn recv_locked(
        &self,
        reader: &mut Reader,
        buf: &mut Vec<u8>,
        max: usize,
        limit: Option<Instant>,
    ) -> io::Result<bool> {
        // Whether the start of the message is still in `scratch`, not in `buf`.
        let mut head = false;
        if buf.is_empty() {
            reader.scratch.clear();
            let more = match self.read_append(&reader.event, &mut reader.scratch, CHUNK, limit) {
                Err(e) if is_end(&e) => return Ok(false),
                // Receiving was shut down: the end, as after `SHUT_RD`.
                Err(_) if self.read_stop.is_set() => return Ok(false),
                other => other?,
            };
            if !more {
                // A whole message (perhaps empty) in one read.
                let len = reader.scratch.len();
                if len > max {
                    return Err(too_large(len as u64, max));
                }
                buf.extend_from_slice(&reader.scratch);
                return Ok(true);
            }
            head = true;
        }
        // The rest of a message larger than one read. The pipe holds all of it
        // already, so these reads do not wait for the peer.
        loop {
            let have = buf.len() + if head { reader.scratch.len() } else { 0 };
            let left = match self.left_in_message() {
                Ok(left) => left,
                Err(e) if is_end(&e) => {
                    buf.clear();
                    return Err(cut_short(have));
                }
                Err(e) => {
                    // Keep the part read so far for the next call.
                    if head {
                        buf.extend_from_slice(&reader.scratch);
                    }
                    return Err(e);
                }
            };
            if left == 0 {
                buf.clear();
                return Err(abandoned(have));
            }
            let total = have as u64 + left as u64;
            if total > max as u64 {
                buf.clear();
                self.discard_rest(&reader.event, left, limit);
                return Err(too_large(total, max));
            }
            buf.reserve_exact(have + left - buf.len());
            if head {
                buf.extend_from_slice(&reader.scratch);
                head = false;
            }
            let want = left.min(u32::MAX as usize);
            let before = buf.len();
            match self.read_append(&reader.event, buf, want, limit) {
                // The read must take exactly the rest `PeekNamedPipe` announced:
                // a shorter or longer message is another one, queued behind a
                // write that was withdrawn part-way.
                Ok(false) if buf.len() - before == left => return Ok(true),
                Ok(true) if want < left => {}
                Ok(_) => {
                    buf.clear();
                    return Err(abandoned(have));
                }
                Err(e) if is_end(&e) => {
                    let read = buf.len();
                    buf.clear();
                    return Err(cut_short(read));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the rest of a refused message into a throwaway buffer, so that the
    /// peer's `WriteFile` of it completes instead of failing when the channel is
    /// closed. Gives up quietly at `limit` or on any error: the channel is being
    /// closed anyway.
    fn discard_rest(&self, event: &Event, left: usize, limit: Option<Instant>) {
        let chunk = left.clamp(1, DISCARD_CHUNK);
        let mut sink = Vec::with_capacity(chunk);
        loop {
            sink.clear();
            match self.read_append(event, &mut sink, chunk, limit) {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
        }
    }

    /// One overlapped `ReadFile` of at most `want` bytes (≤ `u32::MAX`), appended
    /// to `buf`; returns whether the message goes on past them.
    fn read_append(
        &self,
        event: &Event,
        buf: &mut Vec<u8>,
        want: usize,
        limit: Option<Instant>,
    ) -> io::Result<bool> {
        buf.reserve(want);
        let spare: &mut [MaybeUninit<u8>] = &mut buf.spare_capacity_mut()[..want];
        let len = u32::try_from(spare.len()).unwrap_or(u32::MAX);
        let dst = spare.as_mut_ptr().cast::<u8>();
        let raw = self.handle.as_raw_handle();
        let (n, more) = overlapped::run_message(
            self.handle.as_handle(),
            event,
            &self.read_stop,
            limit,
            "receive",
            |ov| {
                // SAFETY: `raw` is our live overlapped pipe handle; `dst` is valid
                // for writes of `len` bytes (spare capacity of `buf`) and, like
                // `ov`, outlives the operation because `run_message` waits for it
                // to finish.
                unsafe { ReadFile(raw, dst, len, ptr::null_mut(), ov) }
            },
        )?;
        let n = (n as usize).min(len as usize);
        // SAFETY: the read initialised the first `n` bytes of the spare capacity
        // (it never reports more than the `len` it was given, and `n` is capped
        // at that anyway), so the first `buf.len() + n` elements are initialised.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(more)
    }

    /// How many bytes of the message being read are still in the pipe.
    fn left_in_message(&self) -> io::Result<usize> {
        let mut left = 0u32;
        // SAFETY: `self.handle` is a live pipe handle; a null buffer of size 0
        // peeks at no data, the null count pointers are optional, and `left` is
        // valid for a write during the call.
        let ok = unsafe {
            PeekNamedPipe(
                self.handle.as_raw_handle(),
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                ptr::null_mut(),
                &mut left,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(left as usize)
    }

    /// Gives up the operations waiting now, and every later one, with
    /// `ConnectionAborted`: the async layer calls it when the last handle to the
    /// channel is dropped, so no call on the blocking pool outlives the channel.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn abort(&self) {
        self.stop.set();
        self.read_stop.set();
    }

    /// `Read` ends every receive, the one waiting now included, with the end
    /// of the channel; the peer is not told. A pipe has no half-close, so
    /// `Write` and `Both` are unsupported.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        super::pipe::shutdown_end(&self.read_stop, how, "channel")
    }

    /// Makes the peer see the end of the channel now: a server end disconnects
    /// its client (which discards what is still unread in the pipe). A client end
    /// cannot; its peer sees the end when the last handle is closed.
    pub(crate) fn close(&self) {
        if self.server {
            // SAFETY: `self.handle` is a live pipe server handle. Failure (already
            // disconnected) changes nothing and is ignored.
            unsafe { DisconnectNamedPipe(self.handle.as_raw_handle()) };
        }
    }
}

/// Opens the client end of the message pipe at `ep`, switched to
/// `PIPE_READMODE_MESSAGE`.
pub(super) fn client_handle(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<OwnedHandle> {
    let handle = connect_handle(ep, opts)?;
    if let Err(err) = read_messages(&handle) {
        // A byte-type pipe cannot be read in message mode.
        return Err(if serves_bytes(&handle) {
            wrong_kind()
        } else {
            err
        });
    }
    Ok(handle)
}

/// Switches `handle`'s end to `PIPE_READMODE_MESSAGE`.
fn read_messages(handle: &OwnedHandle) -> io::Result<()> {
    let mode = PIPE_READMODE_MESSAGE;
    // SAFETY: `handle` is a live pipe handle; `mode` is valid for reads during
    // the call and the two null pointers leave the collection settings alone.
    // The call fails (and changes nothing) without FILE_WRITE_ATTRIBUTES.
    let ok =
        unsafe { SetNamedPipeHandleState(handle.as_raw_handle(), &mode, ptr::null(), ptr::null()) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the pipe behind `handle` is a byte-type pipe.
fn serves_bytes(handle: &OwnedHandle) -> bool {
    super::adopt::pipe_end(handle.as_handle()).is_ok_and(|end| !end.message)
}
