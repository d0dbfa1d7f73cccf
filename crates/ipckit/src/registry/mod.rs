//! Local service discovery: services register themselves under a name, and
//! clients find them, or wait for them, by that name.
//!
//! A service that serves any ipckit address (`pipe:`, `unix:`, `@`, `tcp:`,
//! `shm:`, a message channel, a mailslot) creates a [`Registration`]: a
//! record of its name, address, [`Kind`], owner process and free metadata
//! (`version = 2`, `protocol = json-rpc`, ...). The record lives as long as
//! the guard. Several instances may register one name.
//!
//! A client calls [`lookup`] for the live instances of a name, [`wait_for`]
//! to block until one is there (woken by the OS's change notification, not
//! by polling), or [`watch`] for added and removed instances. The address
//! `service:NAME` connects to the first live instance wherever an address is
//! accepted ([`Stream::connect`](crate::Stream::connect),
//! [`MessageStream::connect`](crate::MessageStream::connect), the tokio faces,
//! [`ShmChannel::connect`](crate::shm::ShmChannel::connect),
//! [`MailslotSender::connect`](crate::MailslotSender::connect)).
//!
//! ```no_run
//! use std::time::Duration;
//! use ipckit::registry::{self, Kind, Registration};
//!
//! // The service.
//! let listener = ipckit::Listener::bind("pipe:billing-1")?;
//! let _reg = Registration::builder("billing", "pipe:billing-1", Kind::Stream)
//!     .meta("version", "2")
//!     .register()?;
//!
//! // A client, maybe started first.
//! let found = registry::wait_for("billing", Duration::from_secs(10))?;
//! let stream = ipckit::Stream::connect(found.address())?; // or "service:billing"
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! # Liveness
//!
//! A record names its owner process by pid *and* start time, so a process
//! that got the pid of a dead owner is not taken for it. A record whose
//! owner is gone is never returned, and the next registration (of any name)
//! removes it. [`Service::probe`] tells whether the address still answers.
//!
//! # Security
//!
//! The registry is per user and private to it. A record file not owned by the
//! current user is ignored and reported as a [`Problem`], as is a record that
//! cannot be read (corrupt, truncated, of an unknown version).
//!
//! # Platform-specific behavior
//!
//! See `docs/DISCOVERY.md` for the record format.
//!
//! ### Unix
//!
//! The registry is the directory `services/` in ipckit's runtime directory
//! ([`platform::runtime_dir`](crate::platform::runtime_dir)), checked like it
//! (owned by the effective uid, mode 0700, not a symlink). Waiting uses
//! inotify on Linux; on other Unix systems (no notification is used there yet)
//! a waiter re-reads the directory every 100 ms. The owner's start time is
//! field 22 of `/proc/PID/stat` on Linux; elsewhere only the pid is checked.
//!
//! ### Windows
//!
//! The registry is `%LOCALAPPDATA%\ipckit\services`, created with a DACL that
//! grants only the current user and SYSTEM, and its owner is checked.
//! Waiting uses `FindFirstChangeNotificationW`; the start time is the
//! creation time from `GetProcessTimes`.

pub(crate) mod connect;
mod record;
#[cfg(feature = "tokio")]
pub mod tokio;
mod watch;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use record::Record;
pub use watch::{Event, Watch, wait_for, watch};

use crate::address::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::{Address, ToAddress, sys};

/// What a registered address serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A byte stream ([`Listener`](crate::Listener)).
    Stream,
    /// A message channel ([`MessageListener`](crate::MessageListener)).
    Message,
    /// JSON-RPC (`ipckit-rpc`) over a stream.
    Rpc,
    /// A shared-memory channel ([`ShmListener`](crate::shm::ShmListener)).
    Shm,
    /// A mailslot receiver ([`MailslotReceiver`](crate::MailslotReceiver)).
    Mailslot,
}

impl Kind {
    /// The name the record file and the CLI use: `stream`, `message`, `rpc`,
    /// `shm`, `mailslot`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stream => "stream",
            Kind::Message => "message",
            Kind::Rpc => "rpc",
            Kind::Shm => "shm",
            Kind::Mailslot => "mailslot",
        }
    }

    /// The kind named `text` (as [`as_str`](Kind::as_str) gives it).
    pub fn from_name(text: &str) -> Option<Kind> {
        [
            Kind::Stream,
            Kind::Message,
            Kind::Rpc,
            Kind::Shm,
            Kind::Mailslot,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One live instance of a registered service, as read from its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    record: Record,
    path: PathBuf,
}

impl Service {
    /// The service name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Where the instance serves.
    pub fn address(&self) -> &Address {
        &self.record.address
    }

    /// What it serves there.
    pub fn kind(&self) -> Kind {
        self.record.kind
    }

    /// The id of the process that registered it (and still runs).
    pub fn pid(&self) -> u32 {
        self.record.pid
    }

    /// The name of that process's program (its executable's file name).
    pub fn process_name(&self) -> &str {
        &self.record.process
    }

    /// The metadata it was registered with.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.record.metadata
    }

    /// When it was registered.
    pub fn registered_at(&self) -> SystemTime {
        self.record.registered_at
    }

    /// The record file.
    pub fn record_path(&self) -> &Path {
        &self.path
    }

    /// Whether the address still answers: [`probe`] of it.
    pub fn probe(&self) -> State {
        probe(&self.record.address)
    }
}

/// Whether something serves `addr`, told without connecting where a connection
/// would take the place of a real client (a server of one client would take
/// the probe for it): a listening socket in `/proc/net/unix` (Linux) or a
/// socket file (other Unix), pipe instances (`WaitNamedPipeW`, Windows), a
/// shared-memory channel whose creator runs, a mailslot that opens for
/// sending. A TCP address is connected to (and closed at once), within one
/// second. A `service:` name is resolved first. [`State::Unknown`] where this
/// cannot be told.
pub fn probe(addr: &Address) -> State {
    let present = match addr {
        Address::Tcp { host, port } => Some(tcp_answers(host, *port)),
        Address::Shm(name) => {
            Some(crate::sys::shm_join::creator(name).is_some_and(|(_, live)| live))
        }
        Address::Mailslot(_) => Some(
            addr.mailslot_endpoint(&sys::env())
                .is_ok_and(|ep| sys::MailslotSender::connect(&ep).is_ok()),
        ),
        Address::Service(_) => match resolve(addr) {
            Ok(addr) => return probe(&addr),
            Err(_) => Some(false),
        },
        addr => match addr.stream_endpoint(&sys::env()) {
            Ok(ep @ (Endpoint::UnixPath { .. } | Endpoint::Abstract(_) | Endpoint::Pipe(_))) => {
                sys::registry::endpoint_present(&ep)
            }
            _ => None,
        },
    };
    match present {
        Some(true) => State::Answering,
        Some(false) => State::NotAnswering,
        None => State::Unknown,
    }
}

fn tcp_answers(host: &str, port: u16) -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// Whether a registered address answers ([`Service::probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Something serves the address.
    Answering,
    /// Nothing serves it: the owner runs but closed or never opened it.
    NotAnswering,
    /// It cannot be told without side effects.
    Unknown,
}

impl State {
    /// `live`, `not answering`, `unknown`: what `ipckit services` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Answering => "live",
            State::NotAnswering => "not answering",
            State::Unknown => "unknown",
        }
    }
}

/// A record file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The record file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "skipped service record {}: {}",
            self.path.display(),
            self.reason
        )
    }
}

/// Everything the registry holds: the live instances of every service, and
/// the record files that were skipped.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Listing {
    /// Live instances, oldest registration first.
    pub services: Vec<Service>,
    /// Records ignored: not the user's own, unreadable, corrupt.
    pub problems: Vec<Problem>,
}

/// The registry directory of the current user (it may not exist yet).
///
/// # Errors
///
/// Windows: [`ErrorKind::NotFound`] when `%LOCALAPPDATA%` is not set.
pub fn dir() -> Result<PathBuf> {
    sys::registry::dir().map_err(|e| Error::io("find the service registry", e))
}

/// Checks and creates the registry directory.
fn ensure_dir() -> Result<PathBuf> {
    let dir = dir()?;
    sys::registry::ensure_dir(&dir).map_err(|e| registry_error("use", &dir, e))?;
    Ok(dir)
}

fn registry_error(what: &str, dir: &Path, e: io::Error) -> Error {
    Error::io(format!("{what} the service registry {}", dir.display()), e)
}

/// Every live instance of every service, and the records that were skipped.
///
/// # Errors
///
/// [`ErrorKind::PermissionDenied`] when the registry directory is not the
/// user's own private directory (see the module docs); the OS error when it
/// cannot be read. A registry that does not exist yet is empty.
pub fn list() -> Result<Listing> {
    let dir = dir()?;
    match sys::registry::check_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Listing::default()),
        Err(e) => return Err(registry_error("use", &dir, e)),
    }
    scan(&dir).map(|(listing, _)| listing)
}

/// The live instances of service `name`, oldest registration first.
///
/// # Errors
///
/// As [`list`]; [`ErrorKind::InvalidAddress`] for a name `service:NAME` could
/// not hold.
pub fn lookup(name: &str) -> Result<Vec<Service>> {
    check_service_name(name)?;
    let mut all = list()?.services;
    all.retain(|s| s.name() == name);
    Ok(all)
}

fn check_service_name(name: &str) -> Result<()> {
    format!("service:{name}").parse::<Address>().map(drop)
}

/// The records of `dir` whose owner is gone (pid with its start time), that
/// this process may remove: the second part of the result.
fn scan(dir: &Path) -> Result<(Listing, Vec<PathBuf>)> {
    let entries = fs::read_dir(dir).map_err(|e| registry_error("list", dir, e))?;
    let mut listing = Listing::default();
    let mut dead = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| registry_error("list", dir, e))?;
        let path = entry.path();
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(tmp) = file.strip_prefix('.').and_then(|f| f.strip_suffix(".tmp")) {
            // A record being written; one whose writer is gone (killed between
            // the write and the rename) is removed like a dead owner's record.
            let ours = matches!(sys::registry::foreign_record(&path), Ok(None));
            if ours && record::owner_of(tmp).is_some_and(|(pid, start)| !owner_runs(pid, start)) {
                dead.push(path);
            }
            continue;
        }
        if !file.ends_with(".json") {
            continue; // not a record
        }
        let problem = |reason: String| Problem {
            path: path.clone(),
            reason,
        };
        match sys::registry::foreign_record(&path) {
            Ok(None) => {}
            Ok(Some(why)) => {
                listing.problems.push(problem(format!("ignored: {why}")));
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                listing
                    .problems
                    .push(problem(format!("cannot inspect it: {e}")));
                continue;
            }
        }
        // The owner named by the file name: a record that cannot be read is
        // still removed once its writer is gone.
        if let Some((pid, start)) = record::owner_of(&file)
            && !owner_runs(pid, start)
        {
            dead.push(path);
            continue;
        }
        let text = match fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                listing
                    .problems
                    .push(problem(format!("cannot read it: {e}")));
                continue;
            }
        };
        match Record::parse(&text) {
            Ok(record) if owner_runs(record.pid, record.start_time) => {
                listing.services.push(Service { record, path });
            }
            Ok(_) => dead.push(path),
            Err(why) => listing.problems.push(problem(why)),
        }
    }
    listing
        .services
        .sort_by_key(|s| (s.registered_at(), s.pid()));
    Ok((listing, dead))
}

/// Whether process `pid`, started at `start`, still runs (a process that has
/// its pid but started at another time is not it).
fn owner_runs(pid: u32, start: u64) -> bool {
    match sys::registry::process_start(pid) {
        Ok(Some(now)) => now == start,
        Ok(None) => false,
        // Cannot tell (e.g. no right to query it): assume it runs.
        Err(_) => true,
    }
}

/// The address of the first live instance (oldest registration) of the
/// service a `service:NAME` address names; any other address as it is. Every
/// connect entry point of ipckit does this first.
///
/// # Errors
///
/// [`ErrorKind::NotFound`] when the service has no live instance, naming it;
/// the errors of [`lookup`].
pub fn resolve(addr: &Address) -> Result<Address> {
    let Address::Service(name) = addr else {
        return Ok(addr.clone());
    };
    let found = lookup(name)?;
    match found.into_iter().next() {
        Some(s) => Ok(s.record.address),
        None => Err(not_registered(name)),
    }
}

/// The error for a service with no live instance.
fn not_registered(name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!(
            "resolve service:{name}: no live instance of service {name:?} is registered \
             (registry {})",
            dir().map_or_else(|_| "-".into(), |d| d.display().to_string())
        ),
    )
}

/// A service registration being built: [`Registration::builder`], then
/// [`meta`](RegistrationBuilder::meta) and [`register`](RegistrationBuilder::register).
#[derive(Debug)]
pub struct RegistrationBuilder {
    name: String,
    address: Result<Address>,
    kind: Kind,
    metadata: BTreeMap<String, String>,
}

impl RegistrationBuilder {
    /// Adds metadata `key = value` (a key given twice keeps the last value).
    pub fn meta(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Writes the record. Records of this user whose owner is gone are removed
    /// first.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAddress`] for a name `service:NAME` could not hold,
    /// or an address that is itself a `service:` name; [`ErrorKind::InvalidOption`]
    /// for an empty metadata key; [`ErrorKind::PermissionDenied`] when the
    /// registry directory is not the user's own private directory; the OS
    /// error when the record cannot be written.
    pub fn register(&self) -> Result<Registration> {
        check_service_name(&self.name)?;
        let address = match &self.address {
            Ok(a) => a.clone(),
            Err(e) => return Err(Error::new(e.kind(), e.to_string())),
        };
        if let Address::Service(_) = address {
            return Err(Error::new(
                ErrorKind::InvalidAddress,
                format!(
                    "cannot register service {:?} at {address}: register the address it serves, \
                     not another service's name",
                    self.name
                ),
            ));
        }
        if self.metadata.keys().any(String::is_empty) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!("service {:?}: a metadata key is empty", self.name),
            ));
        }
        let dir = ensure_dir()?;
        let (_, dead) = scan(&dir)?;
        for path in dead {
            // Gone already (another writer) is fine; anything else would come
            // back on the next scan.
            let _ = fs::remove_file(path);
        }
        let pid = sys::registry::current_pid();
        let start_time = sys::registry::process_start(pid)
            .map_err(|e| Error::io("read this process's start time", e))?
            .unwrap_or(0);
        let record = Record {
            name: self.name.clone(),
            address,
            kind: self.kind,
            pid,
            start_time,
            process: process_name(),
            registered_at: SystemTime::now(),
            metadata: self.metadata.clone(),
        };
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let file = record::file_name(pid, start_time, n);
        let path = dir.join(&file);
        let tmp = dir.join(format!(".{file}.tmp"));
        let write = fs::write(&tmp, record.to_json()).and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = write {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(
                format!("write the service record {}", path.display()),
                e,
            ));
        }
        Ok(Registration {
            service: Service { record, path },
            removed: false,
        })
    }
}

/// This program's name, as `ipckit services` shows it.
fn process_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// A registered service instance: its record exists as long as this guard.
///
/// Dropping it removes the record. A process that is killed cannot; its
/// record is then never returned (its owner is gone) and is removed by the
/// next registration.
#[derive(Debug)]
pub struct Registration {
    service: Service,
    /// Whether `unregister` removed the record already.
    removed: bool,
}

impl Registration {
    /// Starts a registration of service `name` at `address`, which serves
    /// `kind`; finish it with [`RegistrationBuilder::register`].
    pub fn builder(
        name: impl Into<String>,
        address: impl ToAddress,
        kind: Kind,
    ) -> RegistrationBuilder {
        RegistrationBuilder {
            name: name.into(),
            address: address.to_address(),
            kind,
            metadata: BTreeMap::new(),
        }
    }

    /// The instance as clients see it.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Removes the record now.
    ///
    /// # Errors
    ///
    /// The OS error if the record file cannot be removed (a record already
    /// gone is fine).
    pub fn unregister(mut self) -> Result<()> {
        self.removed = true;
        let path = &self.service.path;
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(
                format!("remove the service record {}", path.display()),
                e,
            )),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.removed {
            let _ = fs::remove_file(&self.service.path);
        }
    }
}
