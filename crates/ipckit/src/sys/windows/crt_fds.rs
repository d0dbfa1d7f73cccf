//! Handing a C runtime descriptor table to a child that was created suspended.
//!
//! A C or C++ program (Node among them) finds the descriptors it inherited in
//! the `cbReserved2`/`lpReserved2` bytes of its `STARTUPINFO`: a 32-bit count,
//! a flag byte per descriptor, then a handle per descriptor, packed. Its C
//! runtime reads them once, at startup, through `GetStartupInfoW`, which reads
//! the `RuntimeData` string of the process parameters in the child's PEB.
//! `std::process::Command` passes no such bytes, so for Node's channel the
//! child is created suspended, the table is written into its address space and
//! named in its process parameters, and only then is the child resumed.
//!
//! Two layouts are used that the Windows SDK does not publish in full, both
//! fixed since the first 64-bit Windows and the same under Wine: the PEB holds
//! the address of the process parameters at offset 0x20, and the process
//! parameters hold `RuntimeData` (a `UNICODE_STRING`) at offset 0xE0. Only
//! 64-bit children are handled; a 32-bit (WOW64) child is refused.

use std::ffi::c_void;
use std::io;
use std::mem::size_of;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;

use windows_sys::Wdk::System::Threading::{NtQueryInformationProcess, ProcessBasicInformation};
use windows_sys::Win32::Foundation::{FALSE, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Diagnostics::Debug::{ReadProcessMemory, WriteProcessMemory};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::Memory::{MEM_COMMIT, MEM_RESERVE, PAGE_READWRITE, VirtualAllocEx};
use windows_sys::Win32::System::Threading::{
    IsWow64Process, OpenProcess, OpenThread, PROCESS_BASIC_INFORMATION, PROCESS_QUERY_INFORMATION,
    PROCESS_TERMINATE, PROCESS_VM_OPERATION, PROCESS_VM_READ, PROCESS_VM_WRITE, ResumeThread,
    THREAD_SUSPEND_RESUME, TerminateProcess,
};

/// The descriptor is open.
const FOPEN: u8 = 0x01;
/// The descriptor is a pipe.
const FPIPE: u8 = 0x08;
/// Where the PEB keeps the address of the process parameters (64-bit).
const PEB_PROCESS_PARAMETERS: usize = 0x20;
/// Where the process parameters keep `RuntimeData` (64-bit).
const PARAMS_RUNTIME_DATA: usize = 0xE0;

/// A table with descriptors 0 to `pipes.len() - 1`: the first three left to the
/// standard handles (marked not inherited, so the runtime takes them from
/// `STARTUPINFO`'s standard handles as usual), then one pipe handle each.
pub(super) fn pipe_table(fd: usize, pipe: HANDLE) -> Vec<u8> {
    let count = fd + 1;
    let mut table = Vec::with_capacity(4 + count * (1 + size_of::<HANDLE>()));
    table.extend_from_slice(&(count as u32).to_le_bytes());
    table.extend((0..count).map(|i| if i == fd { FOPEN | FPIPE } else { 0 }));
    for i in 0..count {
        let handle = if i == fd { pipe } else { INVALID_HANDLE_VALUE };
        table.extend_from_slice(&(handle as usize).to_le_bytes());
    }
    table
}

/// A process that was created suspended and is not resumed yet: killed if it
/// is dropped before [`Suspended::resume`].
pub(super) struct Suspended {
    pid: u32,
    process: OwnedHandle,
    resumed: bool,
}

impl Suspended {
    /// Opens process `pid`, which must have been created suspended by this
    /// process a moment ago (so the id cannot have been reused).
    pub(super) fn open(pid: u32) -> io::Result<Suspended> {
        let access = PROCESS_QUERY_INFORMATION
            | PROCESS_VM_OPERATION
            | PROCESS_VM_READ
            | PROCESS_VM_WRITE
            | PROCESS_TERMINATE;
        // SAFETY: plain call with no pointers; the result is checked.
        let raw = unsafe { OpenProcess(access, FALSE, pid) };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a process handle just opened and owned by no one else.
        let process = unsafe { OwnedHandle::from_raw_handle(raw) };
        Ok(Suspended {
            pid,
            process,
            resumed: false,
        })
    }

    /// Writes `table` into the child and names it as the child's
    /// `STARTUPINFO.lpReserved2`.
    pub(super) fn give_table(&self, table: &[u8]) -> io::Result<()> {
        let h = self.process.as_raw_handle();
        let len = u16::try_from(table.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a C runtime descriptor table is at most 65,535 bytes",
            )
        })?;
        let mut wow = FALSE;
        // SAFETY: `h` is our open process handle; `wow` is a live local.
        if unsafe { IsWow64Process(h, &mut wow) } == 0 {
            return Err(io::Error::last_os_error());
        }
        if wow != FALSE {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the child is a 32-bit program: Node's channel can be handed only to \
                 a 64-bit child",
            ));
        }
        let mut info = PROCESS_BASIC_INFORMATION::default();
        // SAFETY: `info` is a live PROCESS_BASIC_INFORMATION of the size passed,
        // which the call fills in; the return-length pointer may be null.
        let status = unsafe {
            NtQueryInformationProcess(
                h,
                ProcessBasicInformation,
                (&raw mut info).cast(),
                size_of::<PROCESS_BASIC_INFORMATION>() as u32,
                ptr::null_mut(),
            )
        };
        if status < 0 || info.PebBaseAddress.is_null() {
            return Err(io::Error::other(format!(
                "could not find the child's process environment block (NTSTATUS {status:#x})"
            )));
        }
        let mut params = 0usize;
        self.read(
            info.PebBaseAddress as usize + PEB_PROCESS_PARAMETERS,
            &mut params,
        )?;
        if params == 0 {
            return Err(io::Error::other(
                "the child's process parameters are not in place yet",
            ));
        }
        // SAFETY: `h` is our process handle with PROCESS_VM_OPERATION; a new
        // region is reserved and committed anywhere in the child. The result is
        // checked.
        let remote = unsafe {
            VirtualAllocEx(
                h,
                ptr::null(),
                table.len(),
                MEM_COMMIT | MEM_RESERVE,
                PAGE_READWRITE,
            )
        };
        if remote.is_null() {
            return Err(io::Error::last_os_error());
        }
        self.write(remote as usize, table)?;
        // UNICODE_STRING: Length, MaximumLength, 4 bytes of padding, Buffer.
        let mut runtime_data = [0u8; 16];
        runtime_data[..2].copy_from_slice(&len.to_le_bytes());
        runtime_data[2..4].copy_from_slice(&len.to_le_bytes());
        runtime_data[8..].copy_from_slice(&(remote as usize).to_le_bytes());
        self.write(params + PARAMS_RUNTIME_DATA, &runtime_data)
    }

    fn read(&self, at: usize, value: &mut usize) -> io::Result<()> {
        let mut done = 0usize;
        // SAFETY: the destination is `value`, a live usize of the size passed;
        // the source is an address in the child, which the system checks (a bad
        // one fails the call).
        let ok = unsafe {
            ReadProcessMemory(
                self.process.as_raw_handle(),
                at as *const c_void,
                (value as *mut usize).cast(),
                size_of::<usize>(),
                &mut done,
            )
        };
        if ok == 0 || done != size_of::<usize>() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn write(&self, at: usize, bytes: &[u8]) -> io::Result<()> {
        let mut done = 0usize;
        // SAFETY: the source is `bytes`, live for the call; the destination is
        // an address in the child, which the system checks (a bad one fails).
        let ok = unsafe {
            WriteProcessMemory(
                self.process.as_raw_handle(),
                at as *const c_void,
                bytes.as_ptr().cast(),
                bytes.len(),
                &mut done,
            )
        };
        if ok == 0 || done != bytes.len() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Resumes the child's threads (a suspended new process has one).
    pub(super) fn resume(mut self) -> io::Result<()> {
        // SAFETY: plain call; the result is checked and owned below.
        let snap = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) };
        if snap == INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `snap` is a snapshot handle just made and owned by no one else.
        let snap = unsafe { OwnedHandle::from_raw_handle(snap) };
        let mut entry = THREADENTRY32 {
            dwSize: size_of::<THREADENTRY32>() as u32,
            ..Default::default()
        };
        let mut resumed = 0;
        // SAFETY: `snap` is a live snapshot and `entry` a live THREADENTRY32
        // with its size set, which the call fills in.
        let mut more = unsafe { Thread32First(snap.as_raw_handle(), &mut entry) } != 0;
        while more {
            if entry.th32OwnerProcessID == self.pid {
                resume_thread(entry.th32ThreadID)?;
                resumed += 1;
            }
            // SAFETY: as for Thread32First.
            more = unsafe { Thread32Next(snap.as_raw_handle(), &mut entry) } != 0;
        }
        if resumed == 0 {
            return Err(io::Error::other(format!(
                "process {} has no thread to resume",
                self.pid
            )));
        }
        self.resumed = true;
        Ok(())
    }
}

fn resume_thread(tid: u32) -> io::Result<()> {
    // SAFETY: plain call with no pointers; the result is checked and owned.
    let raw = unsafe { OpenThread(THREAD_SUSPEND_RESUME, FALSE, tid) };
    if raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a thread handle just opened and owned by no one else.
    let thread = unsafe { OwnedHandle::from_raw_handle(raw) };
    // SAFETY: `thread` is open with THREAD_SUSPEND_RESUME.
    if unsafe { ResumeThread(thread.as_raw_handle()) } == u32::MAX {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Suspended {
    fn drop(&mut self) {
        if !self.resumed {
            // SAFETY: our open process handle with PROCESS_TERMINATE.
            unsafe { TerminateProcess(self.process.as_raw_handle(), 1) };
        }
    }
}

impl std::fmt::Debug for Suspended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suspended").field("pid", &self.pid).finish()
    }
}
