//! The OS calls behind the safe API, one file per platform; all `unsafe` of the
//! crate is here.
//!
//! - Windows (`windows.rs`): the console calls of `crate::ctrl_c` —
//!   `FreeConsole`, `AttachConsole`, `SetConsoleCtrlHandler`,
//!   `GenerateConsoleCtrlEvent` — and the `CREATE_NEW_CONSOLE` flag.
//! - Unix: nothing; the tests send signals with `kill(1)`.

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
