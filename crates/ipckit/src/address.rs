//! Endpoint addresses: one text form for every transport, and how each form maps
//! onto the operating system.
//!
//! | text | meaning |
//! |---|---|
//! | `NAME` or `pipe:NAME` | portable local name: `\\.\pipe\NAME` on Windows, a socket file `NAME.sock` in a private per-user directory on Unix |
//! | `\\.\pipe\NAME`, `\\HOST\pipe\NAME` | a Windows pipe path, as written |
//! | `unix:/path`, or any text with a `/` | a Unix socket file |
//! | `@NAME`, `unix:@NAME` | a Linux abstract socket |
//! | `tcp:HOST:PORT` | TCP (`tcp:[::1]:PORT` for IPv6) |
//! | `mailslot:NAME` | a mailslot (Windows) or datagram name (Unix) |
//! | `shm:NAME` | a shared-memory region |
//! | `dotnet:NAME` | the endpoint a .NET `NamedPipeServerStream("NAME")` uses on this OS |
//! | `service:NAME` | the first live instance of service `NAME` in the [registry](crate::registry) |
//!
//! Parsing is the same on every OS; whether this OS can serve an address is decided
//! when it is used, with an [`ErrorKind::Unsupported`] error that says why.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};
pub(crate) use crate::plain::{Endpoint, Env, Os};

/// The longest Windows pipe path, `\\.\pipe\` included (Win32 `CreateNamedPipeW`).
const MAX_PIPE_PATH: usize = 256;
const PIPE_PREFIX: &str = r"\\.\pipe\";
/// The schemes the parser knows, for error messages.
const SCHEMES: &str = "pipe:, unix:, tcp:, mailslot:, shm:, dotnet:, service:";

/// An endpoint address, parsed from its text form.
///
/// # Examples
///
/// ```
/// use ipckit::Address;
///
/// let a: Address = "pipe:app".parse()?;
/// assert_eq!(a, Address::Name("app".into()));
/// let t: Address = "tcp:127.0.0.1:8080".parse()?;
/// assert_eq!(t.to_string(), "tcp:127.0.0.1:8080");
/// let err = "ftp:x".parse::<Address>().unwrap_err();
/// assert!(err.to_string().contains("unknown scheme"));
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// # Errors
///
/// Parsing fails with [`ErrorKind::InvalidAddress`] for an empty text, a NUL byte,
/// an unknown scheme, a malformed pipe path or TCP address, or a name with a path
/// separator; the message names the rule and shows the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A portable local name (`NAME`, `pipe:NAME`).
    Name(String),
    /// A Windows pipe path `\\HOST\pipe\NAME`; `host` is `.` for this machine.
    PipePath {
        /// The server host; `.` is this machine.
        host: String,
        /// The pipe name after `\pipe\`.
        name: String,
    },
    /// A Unix socket file.
    UnixPath(PathBuf),
    /// A Linux abstract socket name (without the leading `@`).
    Abstract(String),
    /// A TCP host and port.
    Tcp {
        /// Host name or IP address (without IPv6 brackets).
        host: String,
        /// Port number; 0 lets the OS choose when binding.
        port: u16,
    },
    /// A mailslot (Windows) or datagram name (Unix).
    Mailslot(String),
    /// A shared-memory region.
    Shm(String),
    /// The endpoint .NET's `NamedPipeServerStream(NAME)` uses on this OS.
    DotNet(String),
    /// A service registered under this name in the [registry](crate::registry):
    /// connecting reaches its first live instance.
    Service(String),
}

fn invalid(text: &str, rule: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidAddress,
        format!("invalid address {text:?}: {rule}"),
    )
}

fn strip_scheme<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
    let head = text.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &text[scheme.len()..])
}

/// Checks a name used after a scheme or as a portable name.
fn check_name(text: &str, what: &str, name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(invalid(text, format!("the {what} is empty")));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\')) {
        return Err(invalid(
            text,
            format!("a {what} may not contain {c:?} (write a path as unix:/path)"),
        ));
    }
    if PIPE_PREFIX.len() + name.len() > MAX_PIPE_PATH {
        return Err(invalid(
            text,
            format!(
                "the {what} is {} bytes; at most {} are allowed",
                name.len(),
                MAX_PIPE_PATH - PIPE_PREFIX.len()
            ),
        ));
    }
    Ok(name.to_owned())
}

fn parse_pipe_path(text: &str) -> Result<Address> {
    let rest = &text[2..];
    let rule = r"a Windows pipe path has the form \\HOST\pipe\NAME";
    let (host, rest) = rest.split_once('\\').ok_or_else(|| invalid(text, rule))?;
    let name = strip_scheme(rest, "pipe\\").ok_or_else(|| invalid(text, rule))?;
    if host.is_empty() {
        return Err(invalid(text, format!("{rule}, and HOST is empty")));
    }
    if name.is_empty() {
        return Err(invalid(text, format!("{rule}, and NAME is empty")));
    }
    if text.len() > MAX_PIPE_PATH {
        return Err(invalid(
            text,
            format!(
                "a pipe path is at most {MAX_PIPE_PATH} characters; this one has {}",
                text.len()
            ),
        ));
    }
    Ok(Address::PipePath {
        host: host.to_owned(),
        name: name.to_owned(),
    })
}

fn parse_tcp(text: &str, rest: &str) -> Result<Address> {
    let rule = "a TCP address has the form tcp:HOST:PORT";
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| invalid(text, rule))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(invalid(text, format!("{rule}, and HOST is empty")));
    }
    if host.contains(':') && !rest.starts_with('[') {
        return Err(invalid(
            text,
            "write an IPv6 host in brackets: tcp:[::1]:PORT",
        ));
    }
    let port = port.parse::<u16>().map_err(|_| {
        invalid(
            text,
            format!("the port {port:?} is not a number from 0 to 65535"),
        )
    })?;
    Ok(Address::Tcp {
        host: host.to_owned(),
        port,
    })
}

fn parse_unix(text: &str, rest: &str) -> Result<Address> {
    if let Some(name) = rest.strip_prefix('@') {
        return parse_abstract(text, name);
    }
    if rest.is_empty() {
        return Err(invalid(text, "the socket path is empty"));
    }
    Ok(Address::UnixPath(PathBuf::from(rest)))
}

fn parse_abstract(text: &str, name: &str) -> Result<Address> {
    if name.is_empty() {
        return Err(invalid(text, "the abstract socket name after '@' is empty"));
    }
    Ok(Address::Abstract(name.to_owned()))
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(text: &str) -> Result<Address> {
        if text.is_empty() {
            return Err(invalid(text, "the address is empty"));
        }
        if text.contains('\0') {
            return Err(invalid(text, "an address may not contain a NUL byte"));
        }
        if let Some(rest) = strip_scheme(text, "pipe:") {
            return check_name(text, "pipe name", rest).map(Address::Name);
        }
        if let Some(rest) = strip_scheme(text, "unix:") {
            return parse_unix(text, rest);
        }
        if let Some(rest) = strip_scheme(text, "tcp:") {
            return parse_tcp(text, rest);
        }
        if let Some(rest) = strip_scheme(text, "mailslot:") {
            return check_name(text, "mailslot name", rest).map(Address::Mailslot);
        }
        if let Some(rest) = strip_scheme(text, "shm:") {
            return check_name(text, "shared-memory name", rest).map(Address::Shm);
        }
        if let Some(rest) = strip_scheme(text, "dotnet:") {
            return check_name(text, ".NET pipe name", rest).map(Address::DotNet);
        }
        if let Some(rest) = strip_scheme(text, "service:") {
            return check_name(text, "service name", rest).map(Address::Service);
        }
        if text.starts_with(r"\\") {
            return parse_pipe_path(text);
        }
        if let Some(name) = text.strip_prefix('@') {
            return parse_abstract(text, name);
        }
        if text.contains('/') {
            return Ok(Address::UnixPath(PathBuf::from(text)));
        }
        if let Some((scheme, _)) = text.split_once(':') {
            return Err(invalid(
                text,
                format!("unknown scheme {scheme:?}; known schemes are {SCHEMES}"),
            ));
        }
        check_name(text, "pipe name", text).map(Address::Name)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Name(n) => write!(f, "pipe:{n}"),
            Address::PipePath { host, name } => write!(f, r"\\{host}\pipe\{name}"),
            Address::UnixPath(p) => write!(f, "unix:{}", p.display()),
            Address::Abstract(n) => write!(f, "@{n}"),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Address::Mailslot(n) => write!(f, "mailslot:{n}"),
            Address::Shm(n) => write!(f, "shm:{n}"),
            Address::DotNet(n) => write!(f, "dotnet:{n}"),
            Address::Service(n) => write!(f, "service:{n}"),
        }
    }
}

/// Anything that names an endpoint: an [`Address`] or its text.
pub trait ToAddress {
    /// Parses or clones the address.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAddress`] when the text names nothing valid.
    fn to_address(&self) -> Result<Address>;
}

impl ToAddress for Address {
    fn to_address(&self) -> Result<Address> {
        Ok(self.clone())
    }
}

impl ToAddress for str {
    fn to_address(&self) -> Result<Address> {
        self.parse()
    }
}

impl ToAddress for String {
    fn to_address(&self) -> Result<Address> {
        self.parse()
    }
}

impl<T: ToAddress + ?Sized> ToAddress for &T {
    fn to_address(&self) -> Result<Address> {
        (**self).to_address()
    }
}

impl Os {
    /// Bytes in `sockaddr_un.sun_path`; a path needs one more for its NUL.
    fn sun_path_len(self) -> usize {
        match self {
            Os::Linux => 108,
            _ => 104,
        }
    }
}

impl Address {
    /// Where a byte stream or message channel for this address lives on `env.os`.
    pub(crate) fn stream_endpoint(&self, env: &Env) -> Result<Endpoint> {
        let unsupported = |why: &str| {
            Error::new(
                ErrorKind::Unsupported,
                format!("address {self} cannot be used here: {why}"),
            )
        };
        match (self, env.os) {
            (Address::Tcp { host, port }, _) => Ok(Endpoint::Tcp {
                host: host.clone(),
                port: *port,
            }),
            (Address::Name(name) | Address::DotNet(name), Os::Windows) => {
                Ok(Endpoint::Pipe(format!("{PIPE_PREFIX}{name}")))
            }
            (Address::PipePath { host, name }, Os::Windows) => {
                Ok(Endpoint::Pipe(format!(r"\\{host}\pipe\{name}")))
            }
            (Address::UnixPath(_), Os::Windows) => Err(unsupported(
                "Unix socket files are not served on Windows; use pipe:NAME for a portable name",
            )),
            (Address::Abstract(_), Os::Windows) => Err(unsupported(
                "abstract socket names exist only on Linux; use pipe:NAME for a portable name",
            )),
            (Address::PipePath { .. }, _) => Err(unsupported(
                "a Windows pipe path cannot be served on Unix; use pipe:NAME for a portable name",
            )),
            (Address::Abstract(_), Os::OtherUnix) => Err(unsupported(
                "abstract socket names exist only on Linux, not on macOS or the BSDs; use \
                 unix:/path or pipe:NAME",
            )),
            (Address::Abstract(name), Os::Linux) => {
                let max = env.os.sun_path_len() - 1;
                if name.len() > max {
                    return Err(invalid(
                        &self.to_string(),
                        format!(
                            "an abstract name is at most {max} bytes; this one has {}",
                            name.len()
                        ),
                    ));
                }
                Ok(Endpoint::Abstract(name.as_bytes().to_vec()))
            }
            (Address::Name(name), _) => {
                let path = env.runtime_dir.join(format!("{name}.sock"));
                check_sun_path(self, &path, env.os)?;
                Ok(Endpoint::UnixPath {
                    path,
                    private: true,
                })
            }
            (Address::DotNet(name), _) => {
                let path = env.temp_dir.join(format!("CoreFxPipe_{name}"));
                check_sun_path(self, &path, env.os)?;
                Ok(Endpoint::UnixPath {
                    path,
                    private: false,
                })
            }
            (Address::UnixPath(path), _) => {
                check_sun_path(self, path, env.os)?;
                Ok(Endpoint::UnixPath {
                    path: path.clone(),
                    private: false,
                })
            }
            (Address::Mailslot(_), _) => Err(unsupported(
                "a mailslot carries one-way datagrams, not a stream",
            )),
            (Address::Shm(_), _) => Err(unsupported(
                "a shared-memory region is not a stream endpoint",
            )),
            (Address::Service(_), _) => Err(unsupported(
                "a service name is not an endpoint: connecting resolves it through the \
                 registry; a server binds its own address and registers it",
            )),
        }
    }
}

impl Address {
    /// Where the rendezvous of `shm:NAME` lives: the portable name
    /// `NAME.shm` (a Unix socket file or a named pipe).
    pub(crate) fn shm_rendezvous(name: &str, env: &Env) -> Result<Endpoint> {
        Address::Name(format!("{name}.shm")).stream_endpoint(env)
    }

    /// Where a mailslot (datagram) address lives on this OS: `mailslot:NAME` is
    /// `\\.\mailslot\NAME` on Windows and a datagram socket file `NAME.dgram`
    /// in the private per-user directory on Unix; on Unix a socket file
    /// (`unix:/path`) or an abstract name serves as well.
    pub(crate) fn mailslot_endpoint(&self, env: &Env) -> Result<Endpoint> {
        match (self, env.os) {
            (Address::Mailslot(name), Os::Windows) => {
                Ok(Endpoint::Mailslot(format!(r"\\.\mailslot\{name}")))
            }
            (Address::Mailslot(name), _) => {
                let path = env.runtime_dir.join(format!("{name}.dgram"));
                check_sun_path(self, &path, env.os)?;
                Ok(Endpoint::UnixPath {
                    path,
                    private: true,
                })
            }
            (Address::UnixPath(_) | Address::Abstract(_), os) if os != Os::Windows => {
                self.stream_endpoint(env)
            }
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "address {self} cannot be used for datagrams: use mailslot:NAME{}",
                    if env.os == Os::Windows {
                        ""
                    } else {
                        ", unix:/path or @NAME"
                    }
                ),
            )),
        }
    }
}

impl Address {
    /// The address as error messages show it: its text, and, for a name whose
    /// place on this OS the text does not show, that place too, e.g.
    /// `pipe:app (socket file /run/user/1000/ipckit/app.sock)`.
    pub(crate) fn describe(&self, ep: &Endpoint) -> String {
        match self {
            Address::Name(_) | Address::DotNet(_) | Address::Mailslot(_) => {
                format!("{self} ({ep})")
            }
            _ => self.to_string(),
        }
    }

    /// Where this address lives on this OS, as the OS names it: the socket
    /// file of a portable name (`NAME`, `pipe:NAME`, `dotnet:NAME`) or of a
    /// `unix:` path, `@NAME` for an abstract socket, `\\.\pipe\NAME` on
    /// Windows, `HOST:PORT` for TCP; for `mailslot:NAME` the receiver's socket
    /// file (Unix) or `\\.\mailslot\NAME` (Windows); for `shm:NAME` the
    /// shared-memory object (`/NAME` on Unix, `Local\NAME` on Windows). This
    /// is what a foreign peer (Python, Go, socat) must be given.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] for an address this OS cannot serve, and the
    /// errors of finding ipckit's runtime directory (Unix).
    ///
    /// # Examples
    ///
    /// ```
    /// let addr: ipckit::Address = "tcp:127.0.0.1:7000".parse()?;
    /// assert_eq!(addr.os_name()?, "127.0.0.1:7000");
    /// # Ok::<(), ipckit::Error>(())
    /// ```
    pub fn os_name(&self) -> Result<String> {
        let env = crate::sys::env();
        let ep = match self {
            Address::Shm(name) if env.os == Os::Windows => return Ok(format!("Local\\{name}")),
            Address::Shm(name) => return Ok(format!("/{name}")),
            Address::Mailslot(_) => self.mailslot_endpoint(&env)?,
            _ => self.stream_endpoint(&env)?,
        };
        Ok(match ep {
            Endpoint::Pipe(path) | Endpoint::Mailslot(path) => path,
            Endpoint::UnixPath { path, .. } => path.display().to_string(),
            Endpoint::Abstract(name) => format!("@{}", String::from_utf8_lossy(&name)),
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
        })
    }

    /// Whether this is a name whose place ipckit (or .NET) chose, rather than a
    /// path, abstract name, pipe path or TCP address the caller wrote out:
    /// `NAME`/`pipe:NAME`, `mailslot:NAME`, `shm:NAME` and `dotnet:NAME`.
    /// Clients check by default that such a name is served by the current user.
    pub(crate) fn is_portable_name(&self) -> bool {
        matches!(
            self,
            Address::Name(_) | Address::Mailslot(_) | Address::Shm(_) | Address::DotNet(_)
        )
    }
}

/// The longest name a member of a broadcast group takes on Unix: `PID-N.dgram`
/// with a pid of 10 digits (any `u32`) and N, the process's count of joins,
/// below 1000.
const LONGEST_MEMBER: &str = "4294967295-999.dgram";

/// Checks that the member sockets of broadcast group `group` fit in
/// `sun_path` on Unix (`RUNTIME_DIR/GROUP.group/PID-N.dgram`), so that a name
/// no member could join with is refused by senders and receivers alike.
pub(crate) fn check_group_name_len(group: &str, env: &Env) -> Result<()> {
    if env.os == Os::Windows {
        return Ok(());
    }
    let dir = env.runtime_dir.join(format!("{group}.group"));
    let max = env.os.sun_path_len() - 1;
    let len = dir.join(LONGEST_MEMBER).as_os_str().len();
    if len > max {
        let room = max.saturating_sub(len - group.len());
        return Err(Error::new(
            ErrorKind::InvalidAddress,
            format!(
                "invalid broadcast group name {group:?}: it is {} bytes, and here at most \
                 {room} fit (each member is a socket file {}/PID-N.dgram, and \
                 sockaddr_un.sun_path holds at most {max} bytes)",
                group.len(),
                dir.display()
            ),
        ));
    }
    Ok(())
}

fn check_sun_path(addr: &Address, path: &Path, os: Os) -> Result<()> {
    let len = path.as_os_str().len();
    let max = os.sun_path_len() - 1;
    if len > max {
        return Err(invalid(
            &addr.to_string(),
            format!(
                "the socket path {} is {len} bytes; sockaddr_un.sun_path holds at most {max}",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// The errors of a failed `bind` or `connect`, which name the address and
/// where it lives on this OS (here, not in `error`, which names no address).
impl Error {
    /// A failed `bind` of `addr`, which lives at `ep` on this OS.
    pub(crate) fn bind(addr: &Address, ep: &Endpoint, source: io::Error) -> Error {
        Error::io(format!("bind {}", addr.describe(ep)), source)
    }

    /// A failed `connect` to `addr`, which lives at `ep` on this OS; says so
    /// plainly when nobody listens there.
    pub(crate) fn connect(addr: &Address, ep: &Endpoint, source: io::Error) -> Error {
        let mut context = format!("connect to {}", addr.describe(ep));
        if matches!(
            source.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
        ) {
            context.push_str(": nobody listens there");
        }
        Error::io(context, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Address {
        text.parse()
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn reject(text: &str, needle: &str) {
        let err = text.parse::<Address>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidAddress, "{text:?}");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{text:?}: {msg:?} lacks {needle:?}");
    }

    fn env(os: Os) -> Env {
        Env {
            os,
            runtime_dir: PathBuf::from("/run/user/1000/ipckit"),
            temp_dir: PathBuf::from("/tmp"),
        }
    }

    #[test]
    fn refuses_a_group_name_no_member_socket_path_could_hold() {
        // /run/user/1000/ipckit/G.group/4294967295-999.dgram: 49 bytes + G.
        let linux = env(Os::Linux);
        assert!(check_group_name_len(&"g".repeat(58), &linux).is_ok());
        let err = check_group_name_len(&"g".repeat(59), &linux).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidAddress);
        let msg = err.to_string();
        assert!(msg.contains("59 bytes, and here at most 58 fit"), "{msg}");
        assert!(msg.contains("sun_path holds at most 107"), "{msg}");
        assert!(check_group_name_len(&"g".repeat(56), &env(Os::OtherUnix)).is_err());
        assert!(check_group_name_len(&"g".repeat(60), &env(Os::Windows)).is_ok());
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("app"), Address::Name("app".into()));
        assert_eq!(parse("pipe:app"), Address::Name("app".into()));
        assert_eq!(parse("PIPE:app"), Address::Name("app".into()));
        assert_eq!(
            parse(r"\\.\pipe\app"),
            Address::PipePath {
                host: ".".into(),
                name: "app".into()
            }
        );
        assert_eq!(
            parse(r"\\srv\PIPE\a b"),
            Address::PipePath {
                host: "srv".into(),
                name: "a b".into()
            }
        );
        assert_eq!(
            parse("unix:/run/x.sock"),
            Address::UnixPath("/run/x.sock".into())
        );
        assert_eq!(parse("./x.sock"), Address::UnixPath("./x.sock".into()));
        assert_eq!(parse("@abs"), Address::Abstract("abs".into()));
        assert_eq!(parse("unix:@abs"), Address::Abstract("abs".into()));
        assert_eq!(
            parse("tcp:localhost:80"),
            Address::Tcp {
                host: "localhost".into(),
                port: 80
            }
        );
        assert_eq!(
            parse("tcp:[::1]:0"),
            Address::Tcp {
                host: "::1".into(),
                port: 0
            }
        );
        assert_eq!(parse("mailslot:m"), Address::Mailslot("m".into()));
        assert_eq!(parse("shm:s"), Address::Shm("s".into()));
        assert_eq!(parse("dotnet:d"), Address::DotNet("d".into()));
        assert_eq!(parse("service:billing"), Address::Service("billing".into()));
        assert_eq!(parse("SERVICE:b.v2"), Address::Service("b.v2".into()));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "pipe:app",
            r"\\.\pipe\app",
            "unix:/run/x.sock",
            "@abs",
            "tcp:127.0.0.1:9",
            "tcp:[::1]:9",
            "mailslot:m",
            "shm:s",
            "dotnet:d",
            "service:s",
        ] {
            assert_eq!(parse(text).to_string(), text);
            assert_eq!(parse(&parse(text).to_string()), parse(text));
        }
    }

    #[test]
    fn rejects_invalid_forms_naming_the_rule() {
        reject("", "empty");
        reject("a\0b", "NUL");
        reject("ftp:x", "unknown scheme \"ftp\"");
        reject("pipe:", "pipe name is empty");
        reject(r"pipe:a\b", "may not contain");
        reject("unix:", "socket path is empty");
        reject("service:", "service name is empty");
        reject("service:a/b", "may not contain");
        reject("@", "empty");
        reject("tcp:host", "tcp:HOST:PORT");
        reject("tcp::80", "HOST is empty");
        reject("tcp:h:99999", "not a number");
        reject("tcp:::1:80", "brackets");
        reject(r"\\.\notpipe\x", r"\\HOST\pipe\NAME");
        reject(r"\\.\pipe\", "NAME is empty");
        reject(&"n".repeat(300), "at most 247");
        reject(&format!(r"\\.\pipe\{}", "n".repeat(250)), "at most 256");
    }

    #[test]
    fn maps_names_per_os() {
        let name = parse("app");
        assert_eq!(
            name.stream_endpoint(&env(Os::Windows)).unwrap(),
            Endpoint::Pipe(r"\\.\pipe\app".into())
        );
        assert_eq!(
            name.stream_endpoint(&env(Os::Linux)).unwrap(),
            Endpoint::UnixPath {
                path: "/run/user/1000/ipckit/app.sock".into(),
                private: true
            }
        );
        assert_eq!(
            parse("dotnet:svc")
                .stream_endpoint(&env(Os::Linux))
                .unwrap(),
            Endpoint::UnixPath {
                path: "/tmp/CoreFxPipe_svc".into(),
                private: false
            }
        );
        assert_eq!(
            parse("dotnet:svc")
                .stream_endpoint(&env(Os::Windows))
                .unwrap(),
            Endpoint::Pipe(r"\\.\pipe\svc".into())
        );
        assert_eq!(
            parse("@a").stream_endpoint(&env(Os::Linux)).unwrap(),
            Endpoint::Abstract(b"a".to_vec())
        );
    }

    #[test]
    fn descriptions_show_where_a_name_lives() {
        let name = parse("app");
        let ep = name.stream_endpoint(&env(Os::Linux)).unwrap();
        // Joined as the host joins paths, so the Linux mapping reads the same
        // when this pure test runs on Windows.
        let file = Path::new("/run/user/1000/ipckit").join("app.sock");
        assert_eq!(
            name.describe(&ep),
            format!("pipe:app (socket file {})", file.display())
        );
        let ep = name.stream_endpoint(&env(Os::Windows)).unwrap();
        assert_eq!(name.describe(&ep), r"pipe:app (\\.\pipe\app)");
        let path = parse("unix:/x.sock");
        let ep = path.stream_endpoint(&env(Os::Linux)).unwrap();
        assert_eq!(path.describe(&ep), "unix:/x.sock");
    }

    #[test]
    fn refuses_forms_of_the_other_os() {
        let cases = [
            (r"\\.\pipe\x", Os::Linux, "cannot be served on Unix"),
            ("unix:/x.sock", Os::Windows, "not served on Windows"),
            ("@x", Os::Windows, "only on Linux"),
            ("@x", Os::OtherUnix, "only on Linux"),
            ("mailslot:x", Os::Linux, "not a stream"),
            ("shm:x", Os::Windows, "not a stream"),
            ("service:x", Os::Linux, "not an endpoint"),
        ];
        for (text, os, needle) in cases {
            let err = parse(text).stream_endpoint(&env(os)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{text}");
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn refuses_paths_longer_than_sun_path() {
        let long = format!("unix:/{}", "p".repeat(107));
        let err = parse(&long).stream_endpoint(&env(Os::Linux)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidAddress);
        assert!(err.to_string().contains("at most 107"), "{err}");
        let fits = format!("unix:/{}", "p".repeat(106));
        assert!(parse(&fits).stream_endpoint(&env(Os::Linux)).is_ok());
        let mac = format!("unix:/{}", "p".repeat(103));
        assert!(parse(&mac).stream_endpoint(&env(Os::OtherUnix)).is_err());
        let name = parse(&"n".repeat(120));
        assert!(name.stream_endpoint(&env(Os::Linux)).is_err());
        assert!(name.stream_endpoint(&env(Os::Windows)).is_ok());
        let abs = parse(&format!("@{}", "a".repeat(108)));
        assert!(abs.stream_endpoint(&env(Os::Linux)).is_err());
    }
}
