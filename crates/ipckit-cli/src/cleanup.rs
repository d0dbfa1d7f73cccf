//! Ctrl-C (SIGINT; SIGTERM and SIGHUP on Unix too): remove what this command
//! created, then exit with 130.
//!
//! A signal ends the process without running destructors, so a listener's
//! socket file or a shared-memory channel's name would be left behind. Each
//! command that creates one registers it here right after creating it; the
//! handler removes every registered thing that is still the one this process
//! made (the same socket file by device and inode; a channel region whose
//! creator is this process), never a newer one of the same name.
//!
//! A signal between the bind and the registration would find nothing to
//! remove. So a command takes a [`Pending`] before it binds and registers
//! through it: until then the handler (which runs on a thread of its own)
//! waits, then removes what was registered. A bind that fails releases it; a
//! signal that came first holds it until the process exits, so nothing is
//! bound behind the handler's back.
//!
//! Windows removes a pipe, a mailslot and a file mapping with the last handle to
//! it, so there is nothing to register there but broadcast-group markers and,
//! on every OS, the service record of `--register`.

use std::sync::{Mutex, MutexGuard, Once, PoisonError};

/// Something to remove on an interrupt.
#[derive(Debug)]
enum Leftover {
    /// A socket file, as it was when registered (device, inode).
    #[cfg(unix)]
    Socket {
        path: std::path::PathBuf,
        dev: u64,
        ino: u64,
    },
    /// The name of a shared-memory channel this process created.
    ShmChannel(String),
    /// A broadcast group member's marker file (Windows): named after this
    /// process's id, so it is this process's.
    #[cfg(windows)]
    Marker(std::path::PathBuf),
    /// This process's service record (`--register`).
    ServiceRecord(std::path::PathBuf),
}

static LEFTOVERS: Mutex<Vec<Leftover>> = Mutex::new(Vec::new());

/// Held from before a bind until its endpoint is registered (by the command),
/// and from the signal to the exit (by the handler).
static GATE: Mutex<()> = Mutex::new(());

/// An endpoint about to be created: take it before the bind, register the
/// endpoint through it right after. Until then an interrupt waits.
#[must_use = "register the endpoint through it after the bind"]
pub(crate) struct Pending(#[allow(dead_code)] MutexGuard<'static, ()>);

/// Takes the gate before creating an endpoint (see [`Pending`]).
pub(crate) fn pending() -> Pending {
    Pending(GATE.lock().unwrap_or_else(PoisonError::into_inner))
}

/// The exit code after an interrupt: 128 + SIGINT, as shells report it.
const INTERRUPTED: i32 = 130;

/// Installs the handler (once; later calls do nothing). Without it the
/// default action of the signal applies.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Failing to install (a handler set by someone else) leaves the
        // default action: the command still stops, only without cleaning up.
        let _ = ctrlc::set_handler(|| {
            // Held until the exit: no bind starts after the removal.
            let _gate = GATE.lock().unwrap_or_else(PoisonError::into_inner);
            remove_all();
            std::process::exit(INTERRUPTED);
        });
    });
}

impl Pending {
    /// Removes the socket file behind `addr` on an interrupt, if binding `addr`
    /// made one (Unix); call it right after the bind.
    pub(crate) fn socket_of(self, addr: &ipckit::Address) {
        #[cfg(unix)]
        if let Some(path) = ipckit::platform::socket_file(addr) {
            use std::os::unix::fs::MetadataExt;
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                push(Leftover::Socket {
                    path,
                    dev: meta.dev(),
                    ino: meta.ino(),
                });
            }
        }
        #[cfg(not(unix))]
        let _ = addr;
    }

    /// Removes shared-memory channel `addr` (`shm:NAME`) on an interrupt while
    /// this process is still its creator; call it right after the bind.
    pub(crate) fn shm_channel(self, addr: &ipckit::Address) {
        if cfg!(unix)
            && let ipckit::Address::Shm(name) = addr
        {
            push(Leftover::ShmChannel(name.clone()));
        }
    }

    /// Removes this process's member of broadcast group `group` on an interrupt;
    /// call it right after joining. Members are named `PID-N` by the library (Unix:
    /// a socket file `PID-N.dgram` in `GROUP.group/` of the runtime directory;
    /// Windows: a marker file `PID-N` in the group's directory).
    pub(crate) fn group_member(self, group: &str) {
        let Some(dir) = ipckit::platform::mailslot_group_dir(group) else {
            return;
        };
        let ours = format!("{}-", std::process::id());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&ours) {
                continue;
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                if let Ok(meta) = std::fs::symlink_metadata(entry.path()) {
                    push(Leftover::Socket {
                        path: entry.path(),
                        dev: meta.dev(),
                        ino: meta.ino(),
                    });
                }
            }
            #[cfg(windows)]
            push(Leftover::Marker(entry.path()));
        }
    }
}

/// Removes this process's service record (`--register`) on an interrupt;
/// call it right after registering.
pub(crate) fn service_record(path: &std::path::Path) {
    push(Leftover::ServiceRecord(path.to_owned()));
}

fn push(leftover: Leftover) {
    LEFTOVERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(leftover);
}

fn remove_all() {
    let leftovers = LEFTOVERS.lock().unwrap_or_else(PoisonError::into_inner);
    for leftover in leftovers.iter() {
        match leftover {
            #[cfg(unix)]
            Leftover::Socket { path, dev, ino } => {
                use std::os::unix::fs::MetadataExt;
                let same = std::fs::symlink_metadata(path)
                    .is_ok_and(|m| m.dev() == *dev && m.ino() == *ino);
                if same {
                    let _ = std::fs::remove_file(path);
                }
            }
            #[cfg(windows)]
            Leftover::Marker(path) => {
                let _ = std::fs::remove_file(path);
            }
            // Named after this process (PID-START-N.json): no one else's.
            Leftover::ServiceRecord(path) => {
                let _ = std::fs::remove_file(path);
            }
            Leftover::ShmChannel(name) => {
                let ours = ipckit::platform::shm_channel_creator(name)
                    .is_some_and(|(pid, _)| pid == std::process::id());
                if ours {
                    let _ = ipckit::shm::SharedMemory::remove(name);
                }
            }
        }
    }
}
