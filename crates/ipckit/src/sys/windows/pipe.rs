//! Byte streams over named pipes, all I/O overlapped, and the server and client
//! plumbing that message channels (`message.rs`) share with them.

use std::io;
use std::net::Shutdown;
use std::os::windows::io::{AsHandle, AsRawHandle, OwnedHandle};
use std::ptr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_BROKEN_PIPE, ERROR_FILE_NOT_FOUND, ERROR_PIPE_BUSY, ERROR_SEM_TIMEOUT, GENERIC_READ,
    GENERIC_WRITE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_OVERLAPPED, OPEN_EXISTING, ReadFile, SECURITY_IDENTIFICATION,
    SECURITY_SQOS_PRESENT, WriteFile,
};
use windows_sys::Win32::System::Pipes::{ConnectNamedPipe, WaitNamedPipeW};

use super::handle::{Event, owned};
use super::pipe_instances::{CLIENT_CAME, Instances, pipe_path};
use super::security::{describe, peer_credentials};
use super::{overlapped, timed_out};
use crate::sys::peer::PeerCredentials;
use crate::sys::plain::Endpoint;
use crate::sys::plain::{ConnectConfig, ListenConfig, RetrySchedule, deadline};

/// Refuses to bind a name that already has instances (another server's, maybe a
/// squatter's). `FILE_FLAG_FIRST_PIPE_INSTANCE` is the guard that holds against
/// races; this check comes first because Wine (8) ignores that flag (see
/// `first_instance`, which calls it).
/// `WaitNamedPipeW` tells a name with instances (free: success; all busy:
/// `ERROR_SEM_TIMEOUT`) from a free name (`ERROR_FILE_NOT_FOUND`) without
/// taking an instance.
pub(super) fn refuse_existing(path: &[u16]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let exists = unsafe { WaitNamedPipeW(path.as_ptr(), 1) } != 0
        || io::Error::last_os_error().raw_os_error() == Some(ERROR_SEM_TIMEOUT as i32);
    if exists {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another server already owns this pipe name ({}; it has instances, so \
                 FILE_FLAG_FIRST_PIPE_INSTANCE would be refused): it may be a squatter; \
                 this listener did not start",
                server_pid(path)
            ),
        ));
    }
    Ok(())
}

/// What a refused first instance of `path` means: another server owns the name.
pub(super) fn first_instance_error(path: &[u16], e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(windows_sys::Win32::Foundation::ERROR_ACCESS_DENIED as i32) {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another server already owns this pipe name ({}; \
                 FILE_FLAG_FIRST_PIPE_INSTANCE refused): it may be a squatter; this \
                 listener did not start",
                server_pid(path)
            ),
        )
    } else {
        e
    }
}

/// Why the refusal does not name the pipe server's pid. It could be read only
/// by opening the pipe as a client (`GetNamedPipeServerProcessId` takes a
/// client handle), which takes one of its instances: a server that serves one
/// client (`ipckit listen`) would take that probe for its client and end its
/// session when it closes. Binding a name must not disturb its live owner.
fn server_pid(_path: &[u16]) -> &'static str {
    "its pid is not read: on Windows that would take a connection to it"
}

pub(super) use crate::sys::sync::lock;

pub(super) use super::pipe_instances::PipeKind;

/// A named-pipe server that always keeps one instance waiting for a client.
#[derive(Debug)]
pub(crate) struct Listener {
    instances: Instances,
    /// The instance clients connect to next; `None` only after creating the next
    /// instance failed (for example at the instance limit).
    waiting: Mutex<Option<OwnedHandle>>,
    event: Event,
    /// Signalled to give up a waiting `accept` for good (see `abort`).
    stop: Event,
}

impl Listener {
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<Listener> {
        Listener::bind_kind(ep, opts, PipeKind::Bytes)
    }

    /// Creates the first instance of a pipe whose instances carry `kind`.
    pub(super) fn bind_kind(
        ep: &Endpoint,
        opts: &ListenConfig,
        kind: PipeKind,
    ) -> io::Result<Listener> {
        let (instances, first) = Instances::first(ep, opts, kind)?;
        Ok(Listener {
            instances,
            waiting: Mutex::new(Some(first)),
            event: Event::new()?,
            stop: Event::new()?,
        })
    }

    /// The owner and DACL of the pipe, as SDDL, read from the waiting instance.
    pub(crate) fn describe_access(&self) -> io::Result<String> {
        match &*lock(&self.waiting) {
            Some(instance) => describe(instance.as_handle()),
            None => Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "no pipe instance is waiting (the instance limit is reached) to read the descriptor from",
            )),
        }
    }

    pub(crate) fn accept(&self) -> io::Result<Stream> {
        Stream::new(self.accept_handle()?)
    }

    /// Waits for the next client and returns the connected server instance.
    pub(super) fn accept_handle(&self) -> io::Result<OwnedHandle> {
        let mut waiting = lock(&self.waiting);
        let instance = match waiting.take() {
            Some(h) => h,
            None => self.instances.next()?,
        };
        let connected = overlapped::run_stoppable(
            instance.as_handle(),
            &self.event,
            &self.stop,
            None,
            "accept",
            &CLIENT_CAME,
            |ov| {
                // SAFETY: `instance` is a live pipe server handle opened with
                // FILE_FLAG_OVERLAPPED; `ov` stays in place until `run` has waited
                // for the operation to finish.
                unsafe { ConnectNamedPipe(instance.as_raw_handle(), ov) }
            },
        );
        if let Err(e) = connected {
            *waiting = Some(instance);
            return Err(e);
        }
        // Put the next instance in place before handing this one out, so the name
        // never disappears between accepts. At the instance limit there is none
        // to create yet; the next accept creates it.
        *waiting = self.instances.next().ok();
        Ok(instance)
    }

    /// Gives up the `accept` waiting now, if any, and every later one, with
    /// `ConnectionAborted` (the async layer, when its listener is dropped).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn abort(&self) {
        self.stop.set();
    }
}

/// A connected named-pipe handle (either end).
#[derive(Debug)]
pub(crate) struct Stream {
    handle: OwnedHandle,
    read_event: Mutex<Event>,
    write_event: Mutex<Event>,
    /// Signalled by `shutdown(Read)`: reads of this handle and of its clones
    /// (which share it) end, now and later.
    read_stop: Arc<Event>,
}

impl Stream {
    fn new(handle: OwnedHandle) -> io::Result<Stream> {
        Stream::with_read_stop(handle, Arc::new(Event::new()?))
    }

    fn with_read_stop(handle: OwnedHandle, read_stop: Arc<Event>) -> io::Result<Stream> {
        Ok(Stream {
            handle,
            read_event: Mutex::new(Event::new()?),
            write_event: Mutex::new(Event::new()?),
            read_stop,
        })
    }

    pub(crate) fn connect(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<Stream> {
        Stream::new(connect_handle(ep, opts)?)
    }

    /// A stream over `handle`, a connected pipe end opened for overlapped I/O.
    pub(super) fn from_handle(handle: OwnedHandle) -> io::Result<Stream> {
        Stream::new(handle)
    }

    /// The pipe handle, lent.
    pub(crate) fn handle(&self) -> std::os::windows::io::BorrowedHandle<'_> {
        self.handle.as_handle()
    }

    /// Adopts `handle`, which the caller vouches is a connected pipe end
    /// opened for overlapped I/O; refuses one that is no named pipe or a
    /// message-mode one. With the pipe's name, where the OS tells it.
    pub(crate) fn adopt(handle: OwnedHandle) -> io::Result<(Stream, Option<String>)> {
        if super::adopt::pipe_end(handle.as_handle())?.message {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the handle is a message-mode pipe (PIPE_TYPE_MESSAGE): adopt it as a \
                 MessageStream",
            ));
        }
        let name = super::adopt::pipe_name(handle.as_handle());
        Ok((Stream::new(handle)?, name))
    }

    pub(crate) fn read(&self, buf: &mut [u8], limit: Option<Instant>) -> io::Result<usize> {
        let event = lock(&self.read_event);
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let raw = self.handle.as_raw_handle();
        let handle = self.handle.as_handle();
        let stop = &self.read_stop;
        let res = overlapped::run_stoppable(handle, &event, stop, limit, "read", &[], |ov| {
            // SAFETY: `raw` is our live overlapped pipe handle; `buf` is valid for
            // `len` bytes and, like `ov`, outlives the operation because `run`
            // waits for it to finish.
            unsafe { ReadFile(raw, buf.as_mut_ptr(), len, ptr::null_mut(), ov) }
        });
        match res {
            Err(e) if e.raw_os_error() == Some(ERROR_BROKEN_PIPE as i32) => Ok(0),
            // Reading was shut down: the end, as after `SHUT_RD` on a socket.
            Err(_) if self.read_stop.is_set() => Ok(0),
            other => other.map(|n| n as usize),
        }
    }

    pub(crate) fn write(&self, buf: &[u8], limit: Option<Instant>) -> io::Result<usize> {
        let event = lock(&self.write_event);
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let raw = self.handle.as_raw_handle();
        overlapped::run(self.handle.as_handle(), &event, limit, "write", &[], |ov| {
            // SAFETY: `raw` is our live overlapped pipe handle; `buf` is valid for
            // `len` bytes and, like `ov`, outlives the operation because `run`
            // waits for it to finish.
            unsafe { WriteFile(raw, buf.as_ptr(), len, ptr::null_mut(), ov) }
        })
        .map(|n| n as usize)
    }

    /// Writes are handed to the pipe as they are made; there is nothing to flush.
    /// (`FlushFileBuffers` would instead block until the peer has read everything.)
    pub(crate) fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Stream::with_read_stop(self.handle.try_clone()?, Arc::clone(&self.read_stop))
    }

    pub(crate) fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        peer_credentials(self.handle.as_handle())
    }

    /// `Read` ends every read of this handle and its clones, the one waiting
    /// now included, with the end of the stream (0 bytes); the peer is not
    /// told. A pipe has no half-close, so `Write` and `Both` are unsupported.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        shutdown_end(&self.read_stop, how, "stream")
    }
}

/// Opens the client end of the pipe at `ep`: waits (within the connect timeout)
/// while every instance is busy, and with `retry_not_found` while no server
/// exists yet. The handle is overlapped and in byte read mode.
pub(super) fn connect_handle(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<OwnedHandle> {
    let path = pipe_path(ep)?;
    let limit = deadline(opts.timeout);
    let mut pauses = RetrySchedule::until(limit);
    loop {
        let err = match open_client(&path) {
            Ok(h) => return Ok(h),
            Err(e) => e,
        };
        match err.raw_os_error().map(|c| c as u32) {
            Some(ERROR_PIPE_BUSY) => wait_for_instance(&path, limit)?,
            Some(ERROR_FILE_NOT_FOUND) if opts.retry_not_found => match pauses.next() {
                Some(pause) => std::thread::sleep(pause),
                None => return Err(timed_out("connect (no server yet)")),
            },
            _ => return Err(err),
        }
    }
}

/// `shutdown` of a pipe end, byte (a `what` of "stream") or message
/// ("channel"): `Read` sets `read_stop`, which ends every read of the end;
/// a pipe has no half-close, so `Write` and `Both` are unsupported.
pub(super) fn shutdown_end(read_stop: &Event, how: Shutdown, what: &str) -> io::Result<()> {
    match how {
        Shutdown::Read => {
            read_stop.set();
            Ok(())
        }
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("a named pipe has no half-close; drop every handle to the {what} to close it"),
        )),
    }
}

fn open_client(path: &[u16]) -> io::Result<OwnedHandle> {
    // SQOS + identification: the server may learn who we are but cannot act as us.
    let flags = FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION;
    // SAFETY: `path` is NUL-terminated and outlives the call; null security
    // attributes and template handle are allowed. The result is checked by `owned`.
    let raw = unsafe {
        CreateFileW(
            path.as_ptr(),
            GENERIC_READ | GENERIC_WRITE,
            0,
            ptr::null(),
            OPEN_EXISTING,
            flags,
            ptr::null_mut(),
        )
    };
    owned(raw)
}

/// The longest single `WaitNamedPipeW` of a connect. A server that goes away
/// while a client waits for one of its busy instances (it stops: its free
/// instance closes first, then the connected ones) may never end that wait
/// (under Wine it did not: a connect to a stopping server hung for ever), so
/// the client waits in slices and opens the pipe again after each: a name
/// that has gone is then `ERROR_FILE_NOT_FOUND`.
const BUSY_SLICE: Duration = Duration::from_millis(200);

/// Waits (bounded by `limit`, and by [`BUSY_SLICE`] at a time) until an
/// instance of a busy pipe may be free; the caller opens the pipe again.
fn wait_for_instance(path: &[u16], limit: Option<Instant>) -> io::Result<()> {
    let slice = match limit {
        None => BUSY_SLICE,
        Some(limit) => {
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "every pipe instance stayed busy until the connect timeout",
                ));
            }
            left.min(BUSY_SLICE)
        }
    };
    let ms = u32::try_from(slice.as_millis().max(1)).unwrap_or(u32::MAX - 1);
    // SAFETY: `path` is NUL-terminated and outlives the call.
    if unsafe { WaitNamedPipeW(path.as_ptr(), ms) } != 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error().map(|c| c as u32) {
        // Still busy after this slice: the caller tries again, and the next
        // wait says whether the connect timeout has passed.
        Some(ERROR_SEM_TIMEOUT) => Ok(()),
        // The server went away or is between instances: let the caller retry.
        Some(ERROR_FILE_NOT_FOUND) => Ok(()),
        // The wait is only a hint; the next open says what is there. Wine
        // fails it with code 676 while a pipe's last instances close. A short
        // pause keeps a wait that keeps failing from spinning.
        _ => {
            std::thread::sleep(BUSY_RETRY);
            Ok(())
        }
    }
}

/// The pause after a `WaitNamedPipeW` that failed for another reason than
/// a timeout or a name that has gone.
const BUSY_RETRY: Duration = Duration::from_millis(10);
