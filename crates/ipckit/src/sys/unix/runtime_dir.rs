//! ipckit's private per-user directory for portable names on Unix, mode 0700:
//! `$XDG_RUNTIME_DIR/ipckit/` where that is set; else, on macOS, `ipckit/` in
//! `$TMPDIR` (macOS gives each user a private one, `/var/folders/.../T/`);
//! else `/tmp/ipckit-EUID/`.
//!
//! Servers create it ([`ensure`]); clients only check it ([`check`]), with the
//! same rules, so that a directory another user made (or a symlink) is used by
//! neither side.

use std::fs::{self, DirBuilder, Metadata};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where portable names live for the current user: the effective uid, the one
/// [`ensure`] and [`check`] require as the directory's owner.
pub(super) fn path() -> PathBuf {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
    };
    if let Some(dir) = absolute("XDG_RUNTIME_DIR") {
        return dir.join("ipckit");
    }
    // macOS's per-user temporary directory (a socket path there must still
    // fit the 104 bytes of `sun_path`: the address resolver checks).
    if cfg!(target_vendor = "apple")
        && let Some(dir) = absolute("TMPDIR")
    {
        return dir.join("ipckit");
    }
    PathBuf::from(format!(
        "/tmp/ipckit-{}",
        rustix::process::geteuid().as_raw()
    ))
}

/// `e` with what was being done to which directory in front.
fn failed(what: &str, dir: &Path, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "cannot {what} ipckit's runtime directory {}: {e}",
            dir.display()
        ),
    )
}

/// Creates `dir` (mode 0700) if needed and checks it as [`check`] does; one
/// that others can only list or enter is tightened to 0700.
pub(super) fn ensure(dir: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(failed("create", dir, e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| failed("inspect", dir, e))?;
    let mode = refuse_unless_private(dir, &meta)?;
    if mode & 0o077 != 0 {
        // Our own directory that others could only list or enter (an old umask,
        // a user's chmod): nobody else wrote to it, so tighten it.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| failed(&format!("tighten (mode {mode:#o} to 0o700)"), dir, e))?;
    }
    Ok(())
}

/// For a client, before it connects to or sends to a portable name in `dir`:
/// checks, without creating or changing anything, that `dir` is a directory
/// (not a symlink) owned by the current (effective) user that no one else can
/// write to. A directory that does not exist is `NotFound` (nobody listens);
/// any other directory is `PermissionDenied`, naming the path, the owner found
/// and the rule.
pub(super) fn check(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir).map_err(|e| match e.kind() {
        // What `connect` would have said: the caller reports that nobody
        // listens, and the OS error stays as it was.
        io::ErrorKind::NotFound => e,
        _ => failed("inspect", dir, e),
    })?;
    refuse_unless_private(dir, &meta).map(drop)
}

/// `PermissionDenied` unless `meta` (of `dir`) is a directory owned by the
/// effective user and not writable by its group or others; else its mode bits.
fn refuse_unless_private(dir: &Path, meta: &Metadata) -> io::Result<u32> {
    let uid = rustix::process::geteuid().as_raw();
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing ipckit's runtime directory {}: {why} (it must be a directory owned by \
                 uid {uid}, the user running this process, that only its owner can write to, \
                 mode 0700; otherwise another user could pose as your servers or read what \
                 your clients send)",
                dir.display()
            ),
        ))
    };
    if !meta.is_dir() {
        let what = if meta.file_type().is_symlink() {
            "a symlink"
        } else {
            "some other file"
        };
        return refuse(format!(
            "it is not a directory but {what}, owned by uid {}",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if meta.uid() != uid {
        return refuse(format!(
            "it is owned by uid {}, not by uid {uid} (mode {mode:#o})",
            meta.uid()
        ));
    }
    if mode & 0o022 != 0 {
        // Somebody else could have planted or swapped socket files in it: using
        // it would let them pose as our servers. Tightening it now would not undo
        // that, so refuse and say how to fix it.
        return refuse(format!(
            "it is writable by its group or by others (mode {mode:#o}), owned by uid {uid}. \
             Remove it, or run `chmod 700 {}` if you trust what is in it",
            dir.display()
        ));
    }
    Ok(mode)
}
