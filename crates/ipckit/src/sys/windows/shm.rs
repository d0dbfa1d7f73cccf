//! Shared memory on Windows: named file mappings backed by the paging file in
//! the session's `Local\` namespace (`CreateFileMappingW`), file-backed
//! mappings, named auto-reset events for wake-ups, and watching a peer process
//! for its exit (a process handle opened with `SYNCHRONIZE`).
//!
//! `shm:NAME` is the mapping `Local\NAME`: the name .NET's
//! `MemoryMappedFile.CreateNew("NAME", ...)` and Python's
//! `multiprocessing.shared_memory.SharedMemory(name="NAME")` give a mapping in
//! the session namespace. Windows has no name to remove: a mapping lives while
//! any process has a handle to it or a view of it.

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::windows::io::{AsHandle, AsRawHandle, OwnedHandle};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use windows_sys::Win32::Foundation::{
    ERROR_ALREADY_EXISTS, GetLastError, INVALID_HANDLE_VALUE, WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::READ_CONTROL;
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, FILE_MAP_ALL_ACCESS, MEMORY_BASIC_INFORMATION, MEMORY_MAPPED_VIEW_ADDRESS,
    MapViewOfFile, OpenFileMappingW, PAGE_READWRITE, UnmapViewOfFile, VirtualQuery,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, EVENT_MODIFY_STATE, OpenEventW, OpenProcess, PROCESS_SYNCHRONIZE,
    SYNCHRONIZATION_SYNCHRONIZE, SetEvent, WaitForSingleObject,
};

use super::handle::{owned, wide};
use super::object_owner::{EVENT_WRITE, SECTION_WRITE, object_owner};
use super::security::SecurityAttributes;

/// The longest `NAME` of `shm:NAME` this OS takes beyond the address rules:
/// none (a `Local\NAME` object name may be far longer than an address name).
pub(crate) const NAME_LIMIT: Option<(usize, &str)> = None;

/// A view of a file mapping in this process, unmapped on drop; it holds the
/// mapping's handle, which keeps a named mapping (and its name) alive.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    handle: OwnedHandle,
}

// SAFETY: a `Mapping` is a plain range of shared memory and a handle, neither
// tied to the thread that made them; every access through it goes through raw
// pointers whose users synchronise (atomics) or document the race.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: `&Mapping` only hands out the raw pointer and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps a view of `len` bytes of `mapping` (0: all of it, measured).
    fn view(mapping: OwnedHandle, len: usize) -> io::Result<Mapping> {
        // SAFETY: `mapping` is a live file-mapping handle opened with all access;
        // offset 0 and a length within the mapping (or 0 for all) are valid.
        let view =
            unsafe { MapViewOfFile(mapping.as_raw_handle(), FILE_MAP_ALL_ACCESS, 0, 0, len) };
        let Some(ptr) = NonNull::new(view.Value.cast::<u8>()) else {
            return Err(io::Error::last_os_error());
        };
        let mut map = Mapping {
            ptr,
            len,
            handle: mapping,
        };
        if len == 0 {
            let mut info = MEMORY_BASIC_INFORMATION::default();
            // SAFETY: `ptr` is the base of the view just mapped; `info` is valid
            // for writes of its own size.
            let n = unsafe {
                VirtualQuery(
                    map.ptr.as_ptr().cast::<c_void>(),
                    &mut info,
                    size_of::<MEMORY_BASIC_INFORMATION>(),
                )
            };
            if n == 0 {
                return Err(io::Error::last_os_error());
            }
            map.len = info.RegionSize;
        }
        Ok(map)
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let view = MEMORY_MAPPED_VIEW_ADDRESS {
            Value: self.ptr.as_ptr().cast::<c_void>(),
        };
        // SAFETY: `view` is the base address `MapViewOfFile` returned, unmapped
        // only here; nothing borrows it beyond the `Mapping`.
        let _ = unsafe { UnmapViewOfFile(view) };
    }
}

/// The kernel object name of `shm:NAME`.
fn object_name(name: &str) -> Vec<u16> {
    wide(&format!("Local\\{name}"))
}

/// A named region of shared memory.
#[derive(Debug)]
pub(crate) struct Region {
    map: Mapping,
}

impl Region {
    /// Creates mapping `name` of `len` bytes (zeroed), with the current-user
    /// DACL. A name that exists is `AlreadyExists`.
    pub(crate) fn create(name: &str, len: usize) -> io::Result<Region> {
        Region::create_with(name, len, None)
    }

    /// [`create`](Self::create) with the security descriptor `sddl` (SDDL)
    /// instead of the current-user DACL.
    pub(crate) fn create_with(name: &str, len: usize, sddl: Option<&str>) -> io::Result<Region> {
        crate::sys::mem::check_mappable(len, "region")?;
        let wide = object_name(name);
        let size = len as u64;
        let security = SecurityAttributes::new(sddl)?;
        let (raw, existed) = security.with(|sa| {
            // SAFETY: `wide` is NUL-terminated and outlives the call; the paging
            // file backs the mapping (INVALID_HANDLE_VALUE); `sa` points to
            // SECURITY_ATTRIBUTES whose descriptor `security` owns for the whole
            // call. The result is checked by `owned`.
            let raw = unsafe {
                CreateFileMappingW(
                    INVALID_HANDLE_VALUE,
                    sa,
                    PAGE_READWRITE,
                    (size >> 32) as u32,
                    size as u32,
                    wide.as_ptr(),
                )
            };
            // SAFETY: reads this thread's last-error value; no pointers involved.
            (raw, unsafe { GetLastError() } == ERROR_ALREADY_EXISTS)
        });
        let handle = owned(raw)?;
        if existed {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a mapping of that name exists (CreateFileMappingW: ERROR_ALREADY_EXISTS)",
            ));
        }
        Ok(Region {
            map: Mapping::view(handle, len)?,
        })
    }

    /// Opens mapping `name`, mapping all of it (its size rounded up to whole
    /// pages: Windows does not keep a mapping's exact size where a view can
    /// read it). A name that does not exist is `NotFound`.
    pub(crate) fn open(name: &str) -> io::Result<Region> {
        let wide = object_name(name);
        // SAFETY: `wide` is NUL-terminated and outlives the call. The result is
        // checked by `owned`.
        let raw = unsafe { OpenFileMappingW(FILE_MAP_ALL_ACCESS, 0, wide.as_ptr()) };
        let handle = owned(raw)?;
        Ok(Region {
            map: Mapping::view(handle, 0)?,
        })
    }

    /// Who owns the mapping, and whether its DACL lets others write it
    /// (`GetSecurityInfo` on the mapping handle: see `object_owner`).
    pub(crate) fn owner(&self) -> io::Result<crate::sys::ObjectOwner> {
        object_owner(self.map.handle.as_handle(), SECTION_WRITE)
    }

    pub(crate) fn mapping(&self) -> &Mapping {
        &self.map
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Windows names go with their last handle: nothing to remove.
pub(crate) fn unlink(_name: &str) -> io::Result<()> {
    Ok(())
}

/// Maps all of `file` (opened for reading and writing), shared: writes reach
/// the file and every other mapping of it.
pub(crate) fn map_file(file: &File) -> io::Result<Mapping> {
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| io::Error::other("file too large to map"))?;
    crate::sys::mem::check_mappable(len, "file")?;
    // SAFETY: `file` is a live file handle opened for reading and writing; a
    // zero maximum size maps the whole file; no name, default security.
    let raw = unsafe {
        CreateFileMappingW(
            file.as_raw_handle(),
            ptr::null(),
            PAGE_READWRITE,
            0,
            0,
            ptr::null(),
        )
    };
    Mapping::view(owned(raw)?, len)
}

/// How many wake-up events a channel has (see `shm::channel`'s word indices).
const EVENTS: usize = 5;

/// A channel's wake-ups: one named auto-reset event per word of the header
/// that a side may wait on, `Local\NAME.ipckit-wake-I`.
#[derive(Debug)]
pub(crate) struct Wakers {
    events: Vec<OwnedHandle>,
}

fn event_name(name: &str, i: usize) -> Vec<u16> {
    wide(&format!("Local\\{name}.ipckit-wake-{i}"))
}

impl Wakers {
    pub(crate) fn create(name: &str) -> io::Result<Wakers> {
        let security = SecurityAttributes::new(None)?;
        let events = (0..EVENTS)
            .map(|i| {
                let wide = event_name(name, i);
                let (raw, existed) = security.with(|sa| {
                    // SAFETY: `wide` is NUL-terminated and outlives the call; an
                    // auto-reset event that starts non-signalled; `sa` points to
                    // SECURITY_ATTRIBUTES whose descriptor (current user and
                    // SYSTEM only) `security` owns for the whole call. The result
                    // is checked by `owned`.
                    let raw = unsafe { CreateEventW(sa, 0, 0, wide.as_ptr()) };
                    // SAFETY: reads this thread's last-error value; no pointers.
                    (raw, unsafe { GetLastError() } == ERROR_ALREADY_EXISTS)
                });
                let event = owned(raw)?;
                if existed {
                    // Someone holds an event of this name already (it lives
                    // only while a handle does): never share its state, whose
                    // DACL is not ours.
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "the wake-up event Local\\{name}.ipckit-wake-{i} exists already \
                             (CreateEventW: ERROR_ALREADY_EXISTS)"
                        ),
                    ));
                }
                Ok(event)
            })
            .collect::<io::Result<_>>()?;
        Ok(Wakers { events })
    }

    pub(crate) fn open(name: &str) -> io::Result<Wakers> {
        let events = (0..EVENTS)
            .map(|i| {
                let wide = event_name(name, i);
                // SAFETY: `wide` is NUL-terminated and outlives the call. The
                // result is checked by `owned`.
                let raw = unsafe {
                    OpenEventW(
                        EVENT_MODIFY_STATE | SYNCHRONIZATION_SYNCHRONIZE | READ_CONTROL,
                        0,
                        wide.as_ptr(),
                    )
                };
                owned(raw)
            })
            .collect::<io::Result<_>>()?;
        Ok(Wakers { events })
    }

    /// The owner (and DACL verdict) of each event, for a client to check, as
    /// it checks the region's.
    pub(crate) fn owners(&self) -> Vec<io::Result<crate::sys::ObjectOwner>> {
        self.events
            .iter()
            .map(|e| object_owner(e.as_handle(), EVENT_WRITE))
            .collect()
    }

    /// The event of word `index`.
    #[cfg(feature = "tokio")]
    pub(crate) fn event(&self, index: usize) -> std::os::windows::io::BorrowedHandle<'_> {
        self.events[index].as_handle()
    }

    /// Waits for a wake of word `index`, for at most `timeout`. It may return
    /// early (a wake meant for an earlier wait); callers recheck the word.
    pub(crate) fn wait(&self, index: usize, _word: &AtomicU32, _seen: u32, timeout: Duration) {
        let ms = u32::try_from(timeout.as_millis())
            .unwrap_or(u32::MAX - 1)
            .max(1);
        // SAFETY: the event handle is live for `self`'s lifetime.
        let _ = unsafe { WaitForSingleObject(self.events[index].as_raw_handle(), ms) };
    }

    /// Wakes the side waiting on word `index`, if any (and otherwise its next
    /// wait returns at once and rechecks).
    pub(crate) fn wake(&self, index: usize, _word: &AtomicU32) {
        // SAFETY: the event handle is live for `self`'s lifetime.
        let _ = unsafe { SetEvent(self.events[index].as_raw_handle()) };
    }
}

/// The process this process talks to, watched for its exit through a handle,
/// which also keeps its id from being reused while watched.
#[derive(Debug)]
pub(crate) struct Peer {
    pid: u32,
    process: Option<OwnedHandle>,
}

impl Peer {
    pub(crate) fn watch(pid: u32) -> Peer {
        // SAFETY: plain call with an access mask and a process id; the result is
        // checked by `owned`.
        let raw = unsafe { OpenProcess(PROCESS_SYNCHRONIZE, 0, pid) };
        Peer {
            pid,
            process: owned(raw).ok(),
        }
    }

    /// The process handle, signalled once the process has exited.
    #[cfg(feature = "tokio")]
    pub(crate) fn handle(&self) -> Option<std::os::windows::io::BorrowedHandle<'_>> {
        self.process.as_ref().map(AsHandle::as_handle)
    }

    /// Whether the process has exited (or could not be opened at all: it was
    /// gone already).
    pub(crate) fn exited(&self) -> bool {
        match &self.process {
            Some(h) => {
                // SAFETY: the process handle is live for `self`'s lifetime.
                let waited = unsafe { WaitForSingleObject(h.as_raw_handle(), 0) };
                waited == WAIT_OBJECT_0
            }
            None => !pid_alive(self.pid),
        }
    }
}

/// Whether a process with this id exists now.
pub(crate) fn pid_alive(pid: u32) -> bool {
    let peer = Peer::watch(pid);
    peer.process.is_some() && !peer.exited()
}

/// This process's id.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// Windows has no barrier that reaches other processes' cores
/// (`FlushProcessWriteBuffers` reaches this process only): notifiers take full
/// fences.
pub(crate) fn light_barrier() -> bool {
    false
}

/// No peer notifies lightly on Windows: nothing to cover.
pub(crate) fn heavy_barrier() -> bool {
    true
}

/// Whether a mapping opened with length `opened` (what `VirtualQuery` tells:
/// whole pages) was created with `size` bytes.
pub(crate) fn opened_len_matches(opened: usize, size: usize) -> bool {
    let mut info = windows_sys::Win32::System::SystemInformation::SYSTEM_INFO::default();
    // SAFETY: `info` is valid for writes of a SYSTEM_INFO for the call.
    unsafe { windows_sys::Win32::System::SystemInformation::GetSystemInfo(&mut info) };
    let page = (info.dwPageSize as usize).max(1);
    opened == size || opened == size.next_multiple_of(page)
}
