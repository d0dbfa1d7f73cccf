//! Broadcast groups of mailslot receivers on this machine.
//!
//! A member of group `NAME` is a mailslot of its own,
//! `\\.\mailslot\ipckit\group\NAME\<pid>-<counter>`, registered by a marker
//! file `<temp dir>\ipckit-mailslot-groups\NAME\<pid>-<counter>`. Joining
//! creates the mailslot first and the marker second (so a marker always names
//! a mailslot that existed); dropping the receiver removes the marker first. A
//! broadcast lists the markers and writes to each member's mailslot; a member
//! whose mailslot is gone (its process died without removing its marker) is
//! dead, and its marker is removed.
//!
//! (Windows' own broadcast, `\\*\mailslot\NAME`, reaches one mailslot per
//! machine of a domain, at most 424 bytes a message; it is not used.)

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND};

use super::handle::wide;
use super::mailslot::{MailslotReceiver, MailslotSender};
use super::security::SecurityAttributes;
use crate::sys::plain::Broadcast;
use crate::sys::plain::ListenConfig;

/// The directory of every group's markers, under the temp dir.
const GROUPS_DIR: &str = "ipckit-mailslot-groups";

/// The directory of every group's marker directory.
pub(crate) fn groups_dir() -> PathBuf {
    std::env::temp_dir().join(GROUPS_DIR)
}

/// The directory of group `name`'s markers.
fn group_dir(name: &str) -> PathBuf {
    groups_dir().join(name)
}

/// The mailslot of member `member` of group `name`, NUL-terminated.
fn member_path(name: &str, member: &str) -> Vec<u16> {
    wide(&format!(r"\\.\mailslot\ipckit\group\{name}\{member}"))
}

/// Joins broadcast group `name`: a receiver on a mailslot of its own, taking
/// messages of up to `max` bytes (as `MailslotReceiver::bind`).
/// `name` is checked by the portable layer: one plain file-name component.
pub(crate) fn join_group(name: &str, opts: &ListenConfig) -> io::Result<MailslotReceiver> {
    let max = opts.max_message_size;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = group_dir(name);
    fs::create_dir_all(&dir)?;
    let member = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let marker = dir.join(&member);
    let security = SecurityAttributes::new(opts.sddl.as_deref())?;
    let receiver = MailslotReceiver::create(
        &member_path(name, &member),
        max,
        Some(marker.clone()),
        &security,
    )?;
    // A marker left by a dead process whose id this one now has is reused.
    fs::write(&marker, b"")?;
    Ok(receiver)
}

/// Sends `msg` to every live member of group `name`; returns how many got it
/// and how many dead members were found (and their markers removed). A
/// mailslot write never waits for its receiver, so no member is ever `full`.
///
/// Every member is tried: a member that cannot take the message (e.g. it is
/// over that member's maximum) does not keep it from the others, and the
/// first such error is returned after all were tried.
pub(crate) fn broadcast(name: &str, msg: &[u8]) -> io::Result<Broadcast> {
    let dir = group_dir(name);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Broadcast::default()),
        Err(e) => return Err(e),
    };
    let mut done = Broadcast::default();
    let mut first_error = None;
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let Some(member) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let member_error = |e: io::Error| io::Error::new(e.kind(), format!("member {member}: {e}"));
        let sent = MailslotSender::open(&member_path(name, &member)).and_then(|s| s.send(msg));
        match sent {
            Ok(()) => done.delivered += 1,
            Err(e) if is_gone(&e) => match fs::remove_file(entry.path()) {
                Ok(()) => done.dead += 1,
                // It left (and removed its marker) since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(member_error(e));
                }
            },
            Err(e) => {
                first_error.get_or_insert(member_error(e));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// No mailslot of that name: its receiver is gone.
fn is_gone(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|c| c as u32 == ERROR_FILE_NOT_FOUND || c as u32 == ERROR_PATH_NOT_FOUND)
}
