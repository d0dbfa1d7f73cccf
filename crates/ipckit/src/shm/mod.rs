//! Shared memory: named regions, file-backed mappings, and a message channel
//! through a ring buffer that wakes its reader ([`ShmListener`] /
//! [`ShmChannel`], in [`channel`]), and the bare ring it is measured against
//! ([`baseline`]).
//!
//! | | Windows | Unix |
//! |---|---|---|
//! | `shm:NAME` region | the file mapping `Local\NAME` (paging-file backed) | the POSIX object `/NAME` (`shm_open`, mode 0600) |
//! | a file | `CreateFileMappingW` of the file | `mmap` of the file |
//! | the name goes | with the last handle or view | when the creator drops it (configurable), or `SharedMemory::remove` |
//!
//! The names are the ones Python's `multiprocessing.shared_memory.SharedMemory`
//! and .NET's `MemoryMappedFile.CreateNew` use, so a region can be shared with
//! programs in those languages.
//!
//! ```no_run
//! use ipckit::shm::SharedMemory;
//!
//! let mut region = SharedMemory::create("shm:status", 4096)?;
//! region.write_at(0, b"ready")?;
//! let other = SharedMemory::open("shm:status")?; // as another process would
//! let mut word = [0; 5];
//! other.read_at(0, &mut word)?;
//! assert_eq!(&word, b"ready");
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! # Concurrency
//!
//! A region is plain memory shared with other processes: ipckit cannot know
//! who else writes it. [`read_at`](SharedMemory::read_at) and
//! [`write_at`](SharedMemory::write_at) copy bytes; if another process writes
//! the same bytes at the same time, a read may see a mix of old and new bytes.
//! Agree on a protocol (or use the [`channel`], which has one) for anything
//! more.

pub mod baseline;
pub mod channel;
pub(crate) mod core;
mod options;

use std::fmt;
use std::fs::{self, File};
use std::path::Path;

use crate::address::Address;
use crate::error::{Error, ErrorKind, Result};
use crate::security::{self, ServerUser};
use crate::sys;

pub use channel::{ShmChannel, ShmListener, ShmReceiver, ShmSender};

/// Checks that the regions of `shm:NAME` fit this OS's limit on
/// shared-memory names, where ipckit appends `suffix` bytes to `NAME` (a
/// message listener's per-client regions): a name too long fails here with
/// [`ErrorKind::InvalidAddress`] naming the limit, not later with the OS's
/// bare "file name too long".
pub(crate) fn check_name_fits(name: &str, suffix: usize) -> Result<()> {
    name_fits(name, suffix, sys::shm::NAME_LIMIT)
}

/// [`check_name_fits`] under the limit `limit` (the longest NAME, and the
/// OS's rule), if any.
fn name_fits(name: &str, suffix: usize, limit: Option<(usize, &str)>) -> Result<()> {
    let Some((max, rule)) = limit else {
        return Ok(());
    };
    if name.len() + suffix <= max {
        return Ok(());
    }
    let room = max.saturating_sub(suffix);
    let added = if suffix == 0 {
        String::new()
    } else {
        format!(
            ", and a shared-memory message listener adds {suffix} bytes to NAME for each \
             client's region, so NAME may have at most {room} here"
        )
    };
    Err(Error::new(
        ErrorKind::InvalidAddress,
        format!(
            "shm:{name}: the name is {} bytes, too long for a shared-memory region on this \
             OS: {rule}{added}",
            name.len()
        ),
    ))
}

/// Turns `shm:NAME` (or a bare `NAME`) into the name, checked as an address.
pub(crate) fn region_name(text: &str) -> Result<String> {
    let full = if text.starts_with("shm:") {
        text.to_owned()
    } else {
        format!("shm:{text}")
    };
    match full.parse::<Address>()? {
        Address::Shm(name) => {
            check_name_fits(&name, 0)?;
            Ok(name)
        }
        _ => Err(Error::new(
            ErrorKind::InvalidAddress,
            format!("invalid shared-memory name {text:?}"),
        )),
    }
}

/// Options for opening an existing region, like [`std::fs::OpenOptions`]:
/// whom to trust.
///
/// # Examples
///
/// ```no_run
/// // A region a system service (another user) shares on purpose.
/// let region = ipckit::shm::OpenOptions::new()
///     .allow_foreign(true)
///     .open("shm:service-status")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    allow_foreign: bool,
}

impl OpenOptions {
    /// The default options: only the current user's own regions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to open a region that another user owns, or that other users
    /// can write to (default false: refused with
    /// [`ErrorKind::PermissionDenied`], naming the owner and the mode or ACE
    /// found). Such a region may have been made by another user to read or
    /// change what you share; allow it only for a region shared on purpose.
    ///
    /// # Platform-specific behavior
    ///
    /// Unix: the owner and mode come from `fstat` on the `shm_open` descriptor;
    /// refused: another owner than the effective uid, or a mode that lets group
    /// or others write. Windows: the owner and DACL come from
    /// `GetSecurityInfo` on the mapping handle; refused: an owner that is
    /// neither the user's SID nor the default owner of its new objects
    /// (`TokenOwner`: `BUILTIN\Administrators` when elevated), a NULL DACL, or
    /// an ACE that grants write to another SID than the owner, the user, that
    /// default owner, SYSTEM, Administrators and the logon session.
    pub fn allow_foreign(&mut self, yes: bool) -> &mut Self {
        self.allow_foreign = yes;
        self
    }

    /// Opens the existing region `name` with these options.
    ///
    /// # Errors
    ///
    /// See [`SharedMemory::open`].
    pub fn open(&self, name: &str) -> Result<SharedMemory> {
        SharedMemory::open_with(name, self)
    }
}

/// Options for creating a region, like [`std::fs::OpenOptions`]: who may
/// open it.
///
/// # Examples
///
/// ```no_run
/// // A region every authenticated user of this machine may read (Windows).
/// # #[cfg(windows)] {
/// use ipckit::os::windows::CreateOptionsExt;
/// let region = ipckit::shm::CreateOptions::new()
///     .security_descriptor("D:P(A;;GA;;;SY)(A;;GA;;;OW)(A;;GR;;;AU)")
///     .create("shm:service-status", 4096)?;
/// # }
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Windows: set by `os::windows::CreateOptionsExt::security_descriptor`.
    pub(crate) sddl: Option<String>,
}

impl CreateOptions {
    /// The default options: a region only the current user can open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates the region `name` of `size` bytes with these options.
    ///
    /// # Errors
    ///
    /// See [`SharedMemory::create`]; also [`ErrorKind::InvalidOption`] for
    /// SDDL that Windows cannot parse, naming it.
    pub fn create(&self, name: &str, size: usize) -> Result<SharedMemory> {
        SharedMemory::create_with(name, size, self)
    }
}

enum Backing {
    Named(sys::shm::Region),
    File { map: sys::shm::Mapping, _file: File },
}

/// A region of shared memory mapped into this process: a named region
/// (`shm:NAME`) or a file.
///
/// This corresponds to `CreateFileMappingW` + `MapViewOfFile` on Windows and
/// `shm_open` + `mmap` on Unix.
pub struct SharedMemory {
    backing: Backing,
    /// The name, for named regions.
    name: Option<String>,
    /// Remove the name when dropped (Unix; the creator's default).
    remove_on_drop: bool,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("len", &self.len())
            .field("remove_on_drop", &self.remove_on_drop)
            .finish_non_exhaustive()
    }
}

impl SharedMemory {
    /// Creates the region `name` (`shm:NAME` or `NAME`) of `size` bytes, all
    /// zero, which only the current user can open. Dropping it removes the name
    /// (see [`set_remove_on_drop`](SharedMemory::set_remove_on_drop)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AddrInUse`] when a region of that name exists,
    /// [`ErrorKind::InvalidAddress`] for a bad name,
    /// [`ErrorKind::InvalidOption`] for a size of 0, and the OS error otherwise.
    #[doc(alias = "CreateFileMappingW")]
    #[doc(alias = "shm_open")]
    pub fn create(name: &str, size: usize) -> Result<SharedMemory> {
        CreateOptions::new().create(name, size)
    }

    fn create_with(name: &str, size: usize, opts: &CreateOptions) -> Result<SharedMemory> {
        let name = region_name(name)?;
        if size == 0 {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!("cannot create shm:{name} with a size of 0 bytes"),
            ));
        }
        let region =
            sys::shm::Region::create_with(&name, size, opts.sddl.as_deref()).map_err(|e| {
                let e = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    std::io::Error::new(std::io::ErrorKind::AddrInUse, e)
                } else {
                    e
                };
                Error::io(format!("create shm:{name} of {size} bytes"), e)
            })?;
        Ok(SharedMemory {
            backing: Backing::Named(region),
            name: Some(name),
            remove_on_drop: true,
        })
    }

    /// Opens the existing region `name`, mapping all of it, with the default
    /// [`OpenOptions`]: a region another user made, or that other users can
    /// write to, is refused.
    ///
    /// # Platform-specific behavior
    ///
    /// ### Windows
    ///
    /// Windows does not record a mapping's exact size where an opener can read
    /// it: [`len`](SharedMemory::len) is the size rounded up to whole pages
    /// (4 KiB), the extra bytes zero. Use
    /// [`open_sized`](SharedMemory::open_sized) to insist on a size.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no region has the name,
    /// [`ErrorKind::PermissionDenied`] for a region of another user or one other
    /// users can write to (see [`OpenOptions::allow_foreign`]), and
    /// the OS error otherwise.
    #[doc(alias = "OpenFileMappingW")]
    pub fn open(name: &str) -> Result<SharedMemory> {
        OpenOptions::new().open(name)
    }

    fn open_with(name: &str, opts: &OpenOptions) -> Result<SharedMemory> {
        let name = region_name(name)?;
        let rule = if opts.allow_foreign {
            ServerUser::Any
        } else {
            ServerUser::Default
        }
        .precheck(&Address::Shm(name.clone()), None)?;
        let region = sys::shm::Region::open(&name).map_err(|e| {
            let what = format!("open shm:{name}");
            match e.kind() {
                // The OS's own "no such name" (not ipckit's "still being made").
                std::io::ErrorKind::NotFound if e.raw_os_error().is_some() => {
                    Error::io(format!("{what}: no shared-memory region has that name"), e)
                }
                _ => Error::io(what, e),
            }
        })?;
        security::check_object_owner(
            &rule,
            &format!("shm:{name}"),
            region.owner(),
            security::REGION_OPT_OUT,
        )?;
        Ok(SharedMemory {
            backing: Backing::Named(region),
            name: Some(name),
            remove_on_drop: false,
        })
    }

    /// Opens the region `name` and checks that it is `size` bytes (on Windows,
    /// `size` rounded up to whole pages, as [`open`](SharedMemory::open) tells).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] when the sizes differ, naming both, and the
    /// errors of [`open`](SharedMemory::open).
    pub fn open_sized(name: &str, size: usize) -> Result<SharedMemory> {
        let region = SharedMemory::open(name)?;
        let len = region.len();
        if !sys::shm::opened_len_matches(len, size) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!(
                    "shm:{} is {len} bytes, not the {size} bytes expected",
                    region.name.as_deref().unwrap_or_default()
                ),
            ));
        }
        Ok(region)
    }

    /// Maps all of the existing file at `path` for reading and writing:
    /// writes reach the file and every other process that maps it.
    ///
    /// # Errors
    ///
    /// The OS error of opening or mapping the file; [`ErrorKind::InvalidOption`]
    /// for an empty file.
    pub fn map_file(path: impl AsRef<Path>) -> Result<SharedMemory> {
        let path = path.as_ref();
        let what = || format!("map the file {}", path.display());
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(what(), e))?;
        if file.metadata().map_err(|e| Error::io(what(), e))?.len() == 0 {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!("{}: the file is empty (0 bytes)", what()),
            ));
        }
        let map = sys::shm::map_file(&file).map_err(|e| Error::io(what(), e))?;
        Ok(SharedMemory {
            backing: Backing::File { map, _file: file },
            name: None,
            remove_on_drop: false,
        })
    }

    fn mapping(&self) -> &sys::shm::Mapping {
        match &self.backing {
            Backing::Named(region) => region.mapping(),
            Backing::File { map, .. } => map,
        }
    }

    /// The size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.mapping().len()
    }

    /// Always false: a region has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name, for a named region.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The first byte of the mapping, valid for reads and writes of
    /// [`len`](SharedMemory::len) bytes while `self` lives, and aligned to a
    /// page.
    ///
    /// Other processes may read and write these bytes at any time, so a
    /// `&[u8]` or `&mut [u8]` made from this pointer is sound only while the
    /// program's own protocol guarantees that nobody else writes (or, for
    /// `&mut`, touches) the bytes it covers; atomics placed in the region
    /// (`&*ptr.cast::<AtomicU32>()`, suitably aligned) are the tool for
    /// sharing words.
    pub fn as_ptr(&self) -> *mut u8 {
        self.mapping().as_ptr()
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] when the range is not inside the region.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        if sys::mem::read_at(self.mapping(), offset, buf) {
            Ok(())
        } else {
            Err(self.out_of_range("read", offset, buf.len()))
        }
    }

    /// Copies `data` to `offset`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] when the range is not inside the region.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        if sys::mem::write_at(self.mapping(), offset, data) {
            Ok(())
        } else {
            Err(self.out_of_range("write", offset, data.len()))
        }
    }

    fn out_of_range(&self, what: &str, offset: usize, len: usize) -> Error {
        Error::new(
            ErrorKind::InvalidOption,
            format!(
                "cannot {what} {len} bytes at offset {offset} of {}: it is {} bytes",
                self.describe(),
                self.len()
            ),
        )
    }

    fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("shm:{name}"),
            None => "the mapped file".to_owned(),
        }
    }

    /// Whether dropping this region removes its name (Unix; default: true for
    /// the creator, false for openers). Processes that have it mapped keep
    /// their mapping; the name is free for a new region. On Windows a name
    /// lives exactly as long as some process has the region open, and this
    /// changes nothing.
    pub fn set_remove_on_drop(&mut self, yes: bool) -> &mut Self {
        self.remove_on_drop = yes;
        self
    }

    /// Removes the name `name` now (Unix; on Windows there is nothing to
    /// remove, and this succeeds).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no region has the name, and the OS error
    /// otherwise.
    #[doc(alias = "shm_unlink")]
    pub fn remove(name: &str) -> Result<()> {
        let name = region_name(name)?;
        sys::shm::unlink(&name).map_err(|e| Error::io(format!("remove shm:{name}"), e))
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        if let (true, Some(name)) = (self.remove_on_drop, &self.name) {
            let _ = sys::shm::unlink(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// macOS's limit (the one short enough to meet in practice): 30 bytes of
    /// NAME, and 13 for a message listener, whose client regions add 17.
    const MACOS: Option<(usize, &str)> = Some((
        30,
        "macOS takes POSIX shared-memory names of at most 31 bytes",
    ));

    #[test]
    fn names_must_leave_room_for_what_ipckit_adds() {
        assert!(name_fits(&"a".repeat(30), 0, MACOS).is_ok());
        let err = name_fits(&"a".repeat(31), 0, MACOS).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidAddress);
        let text = err.to_string();
        assert!(
            text.contains("is 31 bytes") && text.contains("at most 31 bytes"),
            "{text}"
        );
        assert!(!text.contains("listener"), "{text}");

        assert!(name_fits(&"a".repeat(13), 17, MACOS).is_ok());
        let text = name_fits(&"a".repeat(14), 17, MACOS)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("adds 17 bytes") && text.contains("at most 13 here"),
            "{text}"
        );

        assert!(
            name_fits(&"a".repeat(5000), 17, None).is_ok(),
            "no limit: the address rules decide"
        );
    }
}
