//! A real Ctrl-C for a child process on Windows.
//!
//! Windows delivers Ctrl-C to a console, not to a process: every process
//! attached to the console gets it. So the process to interrupt is started on a
//! console of its own ([`new_console`]), and a sender process attaches to that
//! console and raises the event there ([`send_to_console_of`]), ignoring it
//! itself. Attaching leaves the sender's own console for good and the choice to
//! ignore Ctrl-C is inherited by its later children, so the sender must be a
//! process of its own that does nothing else: a test program runs itself again
//! for it. Sending from the test program itself would hit every other process
//! on its console, the test program among them.
//!
//! `CTRL_BREAK_EVENT` to a process group (`CREATE_NEW_PROCESS_GROUP`) is the
//! other way Windows offers, but Wine 8 refuses it (`GenerateConsoleCtrlEvent`
//! fails with `ERROR_INVALID_HANDLE`), and Ctrl-C itself is disabled in a new
//! process group. The way taken here works under Wine 8 and on Windows.

use std::io;
use std::os::windows::process::CommandExt;
use std::process::Command;

use crate::sys;

/// Makes `cmd` start its process on a new console of its own
/// (`CREATE_NEW_CONSOLE`), so that a Ctrl-C sent there reaches that process
/// (and any children it starts) and nothing else.
///
/// This sets the creation flags of `cmd` (std's
/// [`CommandExt::creation_flags`]), replacing any set before. Standard handles
/// that `cmd` redirects (`Stdio::piped()`, `Stdio::null()`) stay redirected; on
/// Windows the new console also shows a window.
pub fn new_console(cmd: &mut Command) -> &mut Command {
    cmd.creation_flags(sys::CREATE_NEW_CONSOLE)
}

/// Sends Ctrl-C (`CTRL_C_EVENT`) to the console of process `pid`, as a user
/// typing Ctrl-C at it would: every process attached to it gets the event.
///
/// This changes the calling process for good: it leaves its own console
/// (`FreeConsole`), attaches to that of `pid` (`AttachConsole`) and ignores
/// Ctrl-C from then on (`SetConsoleCtrlHandler(NULL, TRUE)`, inherited by the
/// processes it starts later), then raises the event
/// (`GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0)`). Call it only in a process
/// started for it, which exits right after; see the [module docs](self).
///
/// # Errors
///
/// The step that failed, with the OS error: most often `AttachConsole`, when
/// `pid` has exited or has no console.
pub fn send_to_console_of(pid: u32) -> io::Result<()> {
    // Failing to leave is no error of its own: a process with no console has
    // nothing to leave, and one still attached makes AttachConsole fail.
    let _ = sys::free_console();
    sys::attach_console(pid).map_err(|e| step(&format!("AttachConsole({pid})"), e))?;
    sys::ignore_ctrl_c().map_err(|e| step("SetConsoleCtrlHandler(NULL, TRUE)", e))?;
    sys::raise_ctrl_c().map_err(|e| step("GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0)", e))
}

/// `err` with the call that failed in front.
fn step(call: &str, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{call}: {err}"))
}
