//! Copies in and out of a mapping of shared memory, bounds-checked.
#![allow(unsafe_code)]

use std::io;
use std::ptr;

use super::shm::Mapping;

/// Refuses to map an empty `what` (region or file): no OS maps 0 bytes, and
/// its own error would not say why.
pub(crate) fn check_mappable(len: usize, what: &str) -> io::Result<()> {
    if len == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot map an empty {what} (0 bytes)"),
        ));
    }
    Ok(())
}

/// Copies `buf.len()` bytes at `offset` of `map` into `buf`; `false` if the
/// range is not inside the mapping.
pub(crate) fn read_at(map: &Mapping, offset: usize, buf: &mut [u8]) -> bool {
    if offset
        .checked_add(buf.len())
        .is_none_or(|end| end > map.len())
    {
        return false;
    }
    // SAFETY: `offset + buf.len() <= map.len()`, so the source range is inside
    // the mapping, which `map` keeps mapped for the call; `buf` is a distinct
    // local buffer. Another process writing the same bytes meanwhile can only
    // make the copy mix old and new bytes (documented on `SharedMemory`).
    unsafe {
        ptr::copy_nonoverlapping(
            map.as_ptr().wrapping_add(offset),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    true
}

/// Copies `data` to `offset` of `map`; `false` if the range is not inside the
/// mapping.
pub(crate) fn write_at(map: &Mapping, offset: usize, data: &[u8]) -> bool {
    if offset
        .checked_add(data.len())
        .is_none_or(|end| end > map.len())
    {
        return false;
    }
    // SAFETY: `offset + data.len() <= map.len()`, so the destination range is
    // inside the mapping, which is writable and kept mapped by `map` for the
    // call; `data` cannot overlap it (ipckit never lends out references into
    // a mapping, only its raw pointer).
    unsafe {
        ptr::copy_nonoverlapping(data.as_ptr(), map.as_ptr().wrapping_add(offset), data.len())
    };
    true
}
