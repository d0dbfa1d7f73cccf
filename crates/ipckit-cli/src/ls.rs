//! `ipckit ls`: the live IPC endpoints on this machine.
//!
//! - Unix: the entries of ipckit's per-user runtime directory (socket files of
//!   portable names, the rendezvous `NAME.shm.sock` of shared-memory message
//!   listeners, mailslot receivers, broadcast groups and their members);
//!   on Linux also every listening Unix socket in `/proc/net/unix` (its path or
//!   `@abstract` name, and the owning process where `/proc/PID/fd` can be read),
//!   and the ipckit shared-memory channels in `/dev/shm`. A socket file that no
//!   socket is bound to is *stale*: its listener died without removing it.
//! - Windows: the entries of `\\.\pipe\`, and the members of ipckit's mailslot
//!   broadcast groups (their marker files), each checked by opening its
//!   mailslot. A plain mailslot cannot be listed: Windows has no directory of
//!   mailslots.

use std::fmt::Write as _;
use std::io::{self, Write};

use anyhow::Result;
use serde_json::json;

use crate::stdout_error;

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    /// `stream`, `message`, `datagram`, `mailslot`, `group`, `member`, `pipe`,
    /// `shm-channel`, `socket` (a socket file of a type we could not tell).
    pub(crate) kind: &'static str,
    /// How to name it to ipckit (`pipe:NAME`, `unix:/path`, `@NAME`, ...).
    pub(crate) address: String,
    /// `listening`, `bound` (a datagram receiver), `stale`, `live`, `empty` (a
    /// group without members), or `-` where it cannot be told.
    pub(crate) state: &'static str,
    /// The owning process, where it can be read.
    pub(crate) pid: Option<u32>,
    /// That process's command name.
    pub(crate) process: Option<String>,
    /// The file behind it, if any.
    pub(crate) path: Option<String>,
    /// The services registered at its address (`--register`), comma-separated.
    pub(crate) service: Option<String>,
}

impl Entry {
    fn new(kind: &'static str, address: String, state: &'static str) -> Entry {
        Entry {
            kind,
            address,
            state,
            pid: None,
            process: None,
            path: None,
            service: None,
        }
    }
}

/// What could be listed, and the part that could not (then the command
/// prints the rest and fails with that error).
type Listing = (Vec<Entry>, Option<anyhow::Error>);

/// What `ls` cannot tell on this OS, and where to look instead (printed to
/// stderr, so the listing itself stays the same shape everywhere).
const NOT_TOLD: Option<&str> = if cfg!(target_vendor = "apple") {
    Some(
        "macOS has no /proc/net/unix or /dev/shm: a socket's state (listening or stale) and \
         its owning process show as '-', and shared-memory regions are not listed \
         (`lsof -U` lists the Unix sockets and their processes)",
    )
} else if cfg!(target_os = "freebsd") {
    Some(
        "FreeBSD has no /proc/net/unix or /dev/shm: a socket's state (listening or stale) and \
         its owning process show as '-', and shared-memory regions are not listed \
         (`sockstat -u` lists the Unix sockets and their processes; `posixshmcontrol ls` the regions)",
    )
} else {
    None
};

/// `ipckit ls [--json]`.
pub(crate) fn run(json: bool) -> Result<()> {
    if let Some(note) = NOT_TOLD {
        eprintln!("ipckit ls: not shown on this OS: {note}");
    }
    let (mut entries, missing) = os::entries()?;
    entries.sort();
    entries.dedup();
    let services = crate::services::names_by_address();
    for e in &mut entries {
        e.service = services.get(&e.address).map(|names| names.join(","));
    }
    let text = if json {
        let list: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "kind": e.kind,
                    "address": e.address,
                    "state": e.state,
                    "pid": e.pid,
                    "process": e.process,
                    "path": e.path,
                    "service": e.service,
                })
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&list)?;
        text.push('\n');
        text
    } else {
        table(&entries)
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
    match missing {
        Some(missing) => Err(missing.context("the list above is incomplete")),
        None => Ok(()),
    }
}

fn table(entries: &[Entry]) -> String {
    let kind_w = entries
        .iter()
        .map(|e| e.kind.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let state_w = entries
        .iter()
        .map(|e| e.state.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let service_w = entries
        .iter()
        .map(|e| e.service.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(0)
        .max(7);
    let mut text = format!(
        "{:<kind_w$}  {:<state_w$}  {:>7}  {:<15}  {:<service_w$}  ADDRESS\n",
        "KIND", "STATE", "PID", "PROCESS", "SERVICE"
    );
    for e in entries {
        let pid = e.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let process = e.process.as_deref().unwrap_or("-");
        let service = e.service.as_deref().unwrap_or("-");
        writeln!(
            text,
            "{:<kind_w$}  {:<state_w$}  {pid:>7}  {process:<15}  {service:<service_w$}  {}",
            e.kind, e.state, e.address
        )
        .expect("writing to a String cannot fail");
    }
    if entries.is_empty() {
        text.push_str("(no endpoints found)\n");
    }
    text
}

#[cfg(unix)]
mod os {
    use std::collections::HashMap;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::Path;

    use anyhow::{Context, Result};

    use super::{Entry, Listing};

    /// A socket from `/proc/net/unix` that listens (stream, seqpacket) or is a
    /// bound datagram receiver.
    #[derive(Debug)]
    pub(super) struct ProcSocket {
        pub(super) kind: &'static str,
        pub(super) inode: u64,
        /// The path, or `@name` for an abstract socket.
        pub(super) name: String,
    }

    /// Everything, or an error: each source here fails only when `/proc` or
    /// the runtime directory cannot be read.
    pub(super) fn entries() -> Result<Listing> {
        let sockets = proc_sockets()?;
        let owners = if sockets.is_empty() {
            HashMap::new()
        } else {
            socket_owners()
        };
        let by_name: HashMap<&str, &ProcSocket> =
            sockets.iter().map(|s| (s.name.as_str(), s)).collect();
        let live = |path: &Path| -> Option<&ProcSocket> {
            path.to_str().and_then(|p| by_name.get(p).copied())
        };
        let owned = |mut entry: Entry, socket: Option<&ProcSocket>| -> Entry {
            if let Some(&pid) = socket.and_then(|s| owners.get(&s.inode)) {
                entry.pid = Some(pid);
                entry.process = command_name(pid);
            }
            entry
        };

        let mut list = Vec::new();
        let mut shown = Vec::new();
        if let Some(dir) = ipckit::platform::runtime_dir() {
            for (path, meta) in dir_entries(&dir)? {
                let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let file = file.to_owned();
                if is_bind_lock(&path, &meta) || is_registry(&path) {
                    continue;
                }
                if meta.is_dir()
                    && let Some(group) = file.strip_suffix(".group")
                {
                    let mut members = dir_entries(&path)?;
                    members.retain(|(member, meta)| !is_bind_lock(member, meta));
                    let state = if members.is_empty() { "empty" } else { "-" };
                    list.push(Entry {
                        path: Some(path.display().to_string()),
                        ..Entry::new("group", format!("group:{group}"), state)
                    });
                    for (member, meta) in members {
                        let socket = live(&member);
                        let state = socket_state(&meta, socket);
                        let name = member.file_name().map_or_else(String::new, |n| {
                            n.to_string_lossy().trim_end_matches(".dgram").to_owned()
                        });
                        shown.push(member.clone());
                        list.push(owned(
                            Entry {
                                path: Some(member.display().to_string()),
                                ..Entry::new("member", format!("group:{group}/{name}"), state)
                            },
                            socket,
                        ));
                    }
                    continue;
                }
                let socket = live(&path);
                let (kind, address) = if let Some(name) = file.strip_suffix(".shm.sock") {
                    // The rendezvous of a shared-memory message listener.
                    ("shm-channel", format!("shm:{name}"))
                } else if let Some(name) = file.strip_suffix(".sock") {
                    let kind = socket.map_or("socket", |s| s.kind);
                    (kind, format!("pipe:{name}"))
                } else if let Some(name) = file.strip_suffix(".dgram") {
                    ("mailslot", format!("mailslot:{name}"))
                } else if meta.file_type().is_socket() {
                    (socket.map_or("socket", |s| s.kind), path_address(&path))
                } else {
                    ("file", path_address(&path))
                };
                let state = if meta.file_type().is_socket() {
                    socket_state(&meta, socket)
                } else {
                    "-"
                };
                shown.push(path.clone());
                list.push(owned(
                    Entry {
                        path: Some(path.display().to_string()),
                        ..Entry::new(kind, address, state)
                    },
                    socket,
                ));
            }
        }

        for socket in &sockets {
            if shown
                .iter()
                .any(|p| p.to_str() == Some(socket.name.as_str()))
            {
                continue;
            }
            let (address, path) = if socket.name.starts_with('@') {
                (socket.name.clone(), None)
            } else {
                (format!("unix:{}", socket.name), Some(socket.name.clone()))
            };
            let state = if socket.kind == "datagram" {
                "bound"
            } else {
                "listening"
            };
            list.push(owned(
                Entry {
                    path,
                    ..Entry::new(socket.kind, address, state)
                },
                Some(socket),
            ));
        }

        list.extend(shm_channels()?);
        Ok((list, None))
    }

    fn path_address(path: &Path) -> String {
        format!("unix:{}", path.display())
    }

    /// `listening`/`bound` when a socket is bound to the file; `stale` when the
    /// file is a socket nobody is bound to; `-` where `/proc/net/unix` cannot
    /// tell (not Linux).
    fn socket_state(meta: &fs::Metadata, socket: Option<&ProcSocket>) -> &'static str {
        if !meta.file_type().is_socket() {
            return "-";
        }
        match socket {
            Some(s) if s.kind == "datagram" => "bound",
            Some(_) => "listening",
            None if cfg!(any(target_os = "linux", target_os = "android")) => "stale",
            None => "-",
        }
    }

    /// The service registry's directory: its records are shown by `ipckit
    /// services`, and as the SERVICE of their endpoints.
    fn is_registry(path: &Path) -> bool {
        ipckit::registry::dir().is_ok_and(|d| d == path)
    }

    /// A bind lock file (`SOCKET.lock`): the library holds one beside a socket
    /// file only while it binds it, and removes it after; one is left only by a
    /// process killed in that instant. Not an endpoint, so not listed.
    fn is_bind_lock(path: &Path, meta: &fs::Metadata) -> bool {
        meta.is_file() && path.extension().is_some_and(|e| e == "lock")
    }

    /// The entries of `dir`, with their metadata (not following links); none if
    /// it does not exist.
    fn dir_entries(dir: &Path) -> Result<Vec<(std::path::PathBuf, fs::Metadata)>> {
        let read = match fs::read_dir(dir) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("list {}", dir.display())),
        };
        let mut list = Vec::new();
        for entry in read {
            let entry = entry.with_context(|| format!("list {}", dir.display()))?;
            // An entry removed while we list is simply gone.
            if let Ok(meta) = fs::symlink_metadata(entry.path()) {
                list.push((entry.path(), meta));
            }
        }
        Ok(list)
    }

    /// The listening (stream, seqpacket) and bound datagram Unix sockets of
    /// this network namespace. Empty where `/proc/net/unix` does not exist.
    fn proc_sockets() -> Result<Vec<ProcSocket>> {
        let text = match fs::read_to_string("/proc/net/unix") {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).context("read /proc/net/unix"),
        };
        Ok(parse_proc_net_unix(&text))
    }

    /// Parses `/proc/net/unix`: `Num RefCount Protocol Flags Type St Inode Path`.
    pub(super) fn parse_proc_net_unix(text: &str) -> Vec<ProcSocket> {
        /// `__SO_ACCEPTCON`: the socket listens.
        const ACCEPTCON: u32 = 0x0001_0000;
        /// `SS_UNCONNECTED`.
        const UNCONNECTED: &str = "01";
        let mut list = Vec::new();
        for line in text.lines().skip(1) {
            let mut fields = line.splitn(8, ' ').filter(|f| !f.is_empty());
            let (Some(_num), Some(_refs), Some(_proto), Some(flags), Some(kind), Some(state)) = (
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
            ) else {
                continue;
            };
            // The path may itself hold spaces: take the rest of the line.
            let rest = fields.collect::<Vec<_>>().join(" ");
            let (inode, name) = match rest.split_once(' ') {
                Some((inode, name)) => (inode, name.to_owned()),
                None => (rest.as_str(), String::new()),
            };
            let (Ok(flags), Ok(inode)) = (u32::from_str_radix(flags, 16), inode.parse::<u64>())
            else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let kind = match kind {
                "0001" if flags & ACCEPTCON != 0 => "stream",
                "0005" if flags & ACCEPTCON != 0 => "message",
                "0002" if state == UNCONNECTED => "datagram",
                _ => continue,
            };
            list.push(ProcSocket { kind, inode, name });
        }
        list
    }

    /// Socket inode -> owning process, from the `socket:[INODE]` links in
    /// `/proc/*/fd` that this user may read.
    fn socket_owners() -> HashMap<u64, u32> {
        let mut owners = HashMap::new();
        let Ok(procs) = fs::read_dir("/proc") else {
            return owners;
        };
        for proc in procs.flatten() {
            let Some(pid) = proc
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(fds) = fs::read_dir(proc.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(link) = fs::read_link(fd.path()) else {
                    continue;
                };
                let link = link.to_string_lossy();
                if let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|l| l.strip_suffix(']'))
                    .and_then(|i| i.parse::<u64>().ok())
                {
                    owners.entry(inode).or_insert(pid);
                }
            }
        }
        owners
    }

    fn command_name(pid: u32) -> Option<String> {
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|c| c.trim_end().to_owned())
    }

    /// The ipckit channels among this user's regions in `/dev/shm` (Linux's
    /// POSIX shared memory); stale when their creator has exited.
    fn shm_channels() -> Result<Vec<Entry>> {
        let dir = Path::new("/dev/shm");
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            return Ok(Vec::new());
        }
        let uid = fs::metadata("/proc/self").map(|m| m.uid()).ok();
        let mut list = Vec::new();
        for (path, meta) in dir_entries(dir)? {
            if !meta.is_file() || Some(meta.uid()) != uid {
                continue;
            }
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some((pid, alive)) = ipckit::platform::shm_channel_creator(name) {
                list.push(Entry {
                    pid: Some(pid),
                    process: if alive { command_name(pid) } else { None },
                    path: Some(path.display().to_string()),
                    ..Entry::new(
                        "shm-channel",
                        format!("shm:{name}"),
                        if alive { "live" } else { "stale" },
                    )
                });
            }
        }
        Ok(list)
    }
}

#[cfg(windows)]
mod os {
    use std::fs;

    use anyhow::{Context, Result};

    use super::{Entry, Listing};

    /// The pipes, then the broadcast groups; a pipe list that fails (it does
    /// under Wine) leaves the groups still listed.
    pub(super) fn entries() -> Result<Listing> {
        let (mut list, missing) = match ipckit::platform::pipe_names() {
            Ok(names) => (
                names
                    .into_iter()
                    .map(|name| Entry {
                        path: Some(format!(r"\\.\pipe\{name}")),
                        ..Entry::new("pipe", format!("pipe:{name}"), "listening")
                    })
                    .collect(),
                None,
            ),
            Err(e) => (
                Vec::new(),
                Some(
                    anyhow::Error::new(e).context(r"list \\.\pipe\ (FindFirstFileW on \\.\pipe\*)"),
                ),
            ),
        };
        let Some(groups) = ipckit::platform::mailslot_groups_dir() else {
            return Ok((list, missing));
        };
        let read = match fs::read_dir(&groups) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((list, missing)),
            Err(e) => return Err(e).with_context(|| format!("list {}", groups.display())),
        };
        for group in read.flatten() {
            let gname = group.file_name().to_string_lossy().into_owned();
            list.push(Entry {
                path: Some(group.path().display().to_string()),
                ..Entry::new("group", format!("group:{gname}"), "-")
            });
            let members: Vec<_> = match fs::read_dir(group.path()) {
                Ok(members) => members.flatten().collect(),
                Err(_) => Vec::new(),
            };
            if members.is_empty()
                && let Some(last) = list.last_mut()
            {
                last.state = "empty";
            }
            for member in members {
                let mname = member.file_name().to_string_lossy().into_owned();
                let slot = format!(r"\\.\mailslot\ipckit\group\{gname}\{mname}");
                // Opening a mailslot for writing succeeds only while its
                // receiver holds it: a marker without one is stale.
                let state = match fs::OpenOptions::new().write(true).open(&slot) {
                    Ok(_) => "live",
                    Err(_) => "stale",
                };
                list.push(Entry {
                    pid: mname.split('-').next().and_then(|p| p.parse().ok()),
                    path: Some(slot),
                    ..Entry::new("member", format!("group:{gname}/{mname}"), state)
                });
            }
        }
        Ok((list, missing))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::os::parse_proc_net_unix;

    #[test]
    fn proc_net_unix_listeners_and_receivers_are_found() {
        let text = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 1001 /run/a.sock
0000000000000000: 00000002 00000000 00010000 0005 01 1002 @abstract-name
0000000000000000: 00000002 00000000 00000000 0002 01 1003 /tmp/with space.dgram
0000000000000000: 00000003 00000000 00000000 0001 03 1004 /run/a.sock
0000000000000000: 00000003 00000000 00000000 0001 03 1005
0000000000000000: 00000002 00000000 00000000 0002 03 1006 /tmp/sender
";
        let found = parse_proc_net_unix(text);
        let got: Vec<_> = found
            .iter()
            .map(|s| (s.kind, s.inode, s.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("stream", 1001, "/run/a.sock"),
                ("message", 1002, "@abstract-name"),
                ("datagram", 1003, "/tmp/with space.dgram"),
            ]
        );
    }
}
