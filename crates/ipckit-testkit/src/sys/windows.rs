//! The Windows console calls of `crate::ctrl_c`.
#![allow(unsafe_code)]

use std::io;

use windows_sys::Win32::Foundation::TRUE;
use windows_sys::Win32::System::Console::{
    AttachConsole, CTRL_C_EVENT, FreeConsole, GenerateConsoleCtrlEvent, SetConsoleCtrlHandler,
};
pub(crate) use windows_sys::Win32::System::Threading::CREATE_NEW_CONSOLE;
use windows_sys::core::BOOL;

/// `Ok` for a call that returned non-zero, else the thread's last OS error.
fn check(ok: BOOL) -> io::Result<()> {
    if ok != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Detaches this process from its console (`FreeConsole`).
pub(crate) fn free_console() -> io::Result<()> {
    // SAFETY: FreeConsole takes no arguments and touches no memory of ours. The
    // standard handles are left as they are (redirected ones keep working; a
    // console one then fails with an OS error, which std reports as such).
    check(unsafe { FreeConsole() })
}

/// Attaches this process, which has no console, to that of process `pid`
/// (`AttachConsole`).
pub(crate) fn attach_console(pid: u32) -> io::Result<()> {
    // SAFETY: AttachConsole takes a process id by value and touches no memory of
    // ours; an unknown or console-less `pid` makes it fail with an error.
    check(unsafe { AttachConsole(pid) })
}

/// Makes this process ignore Ctrl-C (`SetConsoleCtrlHandler(NULL, TRUE)`).
pub(crate) fn ignore_ctrl_c() -> io::Result<()> {
    // SAFETY: no handler routine is passed (None), so the OS is given no code or
    // memory of ours to call; TRUE with none sets the process's ignore-Ctrl-C
    // flag.
    check(unsafe { SetConsoleCtrlHandler(None, TRUE) })
}

/// Raises Ctrl-C on this process's console, for every process attached to it
/// (`GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0)`).
pub(crate) fn raise_ctrl_c() -> io::Result<()> {
    // SAFETY: both arguments are plain values (the event, process group 0: the
    // whole console) and no memory of ours is touched; the handlers run in their
    // own processes' threads.
    check(unsafe { GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0) })
}
