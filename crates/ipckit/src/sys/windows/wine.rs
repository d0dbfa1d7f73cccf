//! Detecting Wine: its `ntdll.dll` exports `wine_get_version`, Windows' does not.

use std::ffi::{CStr, c_char};
use std::sync::OnceLock;

use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};

use super::handle::wide;

static VERSION: OnceLock<Option<String>> = OnceLock::new();

/// The Wine version, looked up once.
pub(crate) fn wine_version() -> Option<String> {
    VERSION.get_or_init(lookup).clone()
}

/// Whether this process runs under Wine, without copying the version: for the
/// paths that ask on every call.
pub(crate) fn is_wine() -> bool {
    VERSION.get_or_init(lookup).is_some()
}

fn lookup() -> Option<String> {
    let name = wide("ntdll.dll");
    // SAFETY: `name` is NUL-terminated and outlives the call; ntdll is loaded in
    // every Windows process, and the returned module handle is not owned.
    let ntdll = unsafe { GetModuleHandleW(name.as_ptr()) };
    if ntdll.is_null() {
        return None;
    }
    // SAFETY: `ntdll` is a loaded module for the life of the process and the
    // symbol name is a NUL-terminated literal.
    let symbol = unsafe { GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()) }?;
    // SAFETY: Wine declares `const char *wine_get_version(void)`. On x86-64
    // Windows the "system" and "C" conventions are one ABI, so only the return
    // type differs from FARPROC's, and a pointer is returned in RAX either way.
    let get = unsafe {
        std::mem::transmute::<
            unsafe extern "system" fn() -> isize,
            unsafe extern "C" fn() -> *const c_char,
        >(symbol)
    };
    // SAFETY: the function takes no arguments and returns a pointer to a static
    // string inside ntdll (or null).
    let ptr = unsafe { get() };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` is non-null and points to a NUL-terminated string that ntdll
    // keeps for the life of the process.
    let version = unsafe { CStr::from_ptr(ptr) };
    Some(version.to_string_lossy().into_owned())
}
