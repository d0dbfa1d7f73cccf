//! Access control and peer identity: who may open an endpoint, and who is on the
//! other end of a connection.
//!
//! The defaults are owner-only (see `docs/SECURITY.md` for the threat model):
//!
//! | | Windows | Unix |
//! |---|---|---|
//! | who may open it | a DACL granting only the current user and SYSTEM | socket file mode 0600 (in a 0700 directory for portable names) |
//! | remote clients | refused (`PIPE_REJECT_REMOTE_CLIENTS`) | — (Unix sockets are local) |
//! | squatting | `FILE_FLAG_FIRST_PIPE_INSTANCE`: `bind` fails if another server owns the name | a live socket file is never replaced; ipckit's directory must be the user's own |
//! | clients of portable names | refuse a pipe server of another user (its SID) | refuse a runtime directory that is not the user's own 0700 one, a server of another user (`SO_PEERCRED`), a mailslot or shm object of another user (or shm writable by others) |
//!
//! [`ListenerOptions`](crate::ListenerOptions) opens them up on purpose
//! (`mode` through [`os::unix::ListenerOptionsExt`](crate::os),
//! `security_descriptor` and `accept_remote_clients` through
//! `os::windows::ListenerOptionsExt`) or
//! closes them further ([`current_user_only`](crate::ListenerOptions::current_user_only));
//! [`ConnectOptions::require_server_user`](crate::ConnectOptions::require_server_user)
//! lets a client refuse a server run by somebody else, and
//! [`ConnectOptions::server_user_any`](crate::ConnectOptions::server_user_any)
//! turns off the check clients of portable names make by default.
//!
//! [`PeerCredentials`] say which process and user is on the other end:
//! [`Stream::peer_credentials`](crate::Stream::peer_credentials) and the same
//! method on message streams and the async streams.

use std::fmt;
use std::io;

use crate::address::{Address, Endpoint};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// # Examples
///
/// ```
/// let me = ipckit::security::UserId::current()?;
/// println!("running as {me}");
/// # Ok::<(), ipckit::Error>(())
/// ```
pub use crate::peer::UserId;

impl UserId {
    /// The user this process runs as: the effective uid on Unix (the one the kernel
    /// reports to peers and gives new files), the user SID of the
    /// process token on Windows.
    ///
    /// # Errors
    ///
    /// The OS error if the process token cannot be read (Windows).
    #[doc(alias = "getuid")]
    #[doc(alias = "GetTokenInformation")]
    pub fn current() -> Result<UserId> {
        sys::current_user().map_err(|e| Error::io("find the current user", e))
    }

    /// The user named `name`: on Unix a user name as the system's user
    /// database knows it (`getpwnam_r`: `/etc/passwd` and NSS sources such as
    /// LDAP or sssd); on Windows an account name (`NAME`, `DOMAIN\\NAME`, `NAME@DOMAIN`),
    /// looked up with `LookupAccountNameW`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] naming `name` when no user has it, and the OS
    /// error of the lookup otherwise.
    #[doc(alias = "LookupAccountNameW")]
    #[doc(alias = "getpwnam")]
    pub fn lookup(name: &str) -> Result<UserId> {
        let what = || format!("look up the user {name:?}");
        match sys::user_named(name) {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(Error::new(
                ErrorKind::NotFound,
                format!("{}: no such user on this machine", what()),
            )),
            Err(e) => Err(Error::io(what(), e)),
        }
    }

    /// Whether `other` names the same user (string SIDs compare without regard to
    /// case, as Windows does).
    fn same_as(&self, other: &UserId) -> bool {
        match (self, other) {
            (UserId::Uid(a), UserId::Uid(b)) => a == b,
            (UserId::Sid(a), UserId::Sid(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserId::Uid(uid) => write!(f, "uid {uid}"),
            UserId::Sid(sid) => write!(f, "SID {sid}"),
        }
    }
}

pub use crate::peer::PeerCredentials;

impl PeerCredentials {
    /// The peer's user: its uid on Unix, its SID on Windows.
    pub fn user(&self) -> Option<UserId> {
        match (&self.uid, &self.sid) {
            (Some(uid), _) => Some(UserId::Uid(*uid)),
            (None, Some(sid)) => Some(UserId::Sid(sid.clone())),
            (None, None) => None,
        }
    }
}

/// Which server a client accepts (`ConnectOptions::require_server_user`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum ServerUser {
    /// The default: the current user for a portable name (see
    /// [`Address::is_portable_name`]), any server elsewhere.
    #[default]
    Default,
    /// Any server the OS lets us reach (`server_user_any`).
    Any,
    /// Only a server run by the user this process runs as.
    Current,
    /// Only a server run by this user.
    Is(UserId),
    /// [`Default`](Self::Default) as [`precheck`](Self::precheck) resolves it
    /// for a portable name: the current user, with the default named in errors.
    CurrentByDefault,
}

/// How errors name the default rule, with how to turn it off (`opt_out`).
fn default_rule(opt_out: &str) -> String {
    format!(
        "ipckit's default check that a portable name is served by the current user \
         (turn it off with {opt_out})"
    )
}

/// How to turn the default check off for a connection.
pub(crate) const CONNECT_OPT_OUT: &str = "ConnectOptions::server_user_any, or --server-user any";

/// How to turn the default check off for a shared-memory region.
pub(crate) const REGION_OPT_OUT: &str = "shm::OpenOptions::allow_foreign, or --allow-foreign";

impl ServerUser {
    /// The rule to check on a connection to `addr`, decided before any
    /// connection is made. `unknown` says why the OS cannot identify the server
    /// on `addr` (a TCP server, a Windows mailslot's creator), `None` if it can.
    /// The default becomes the current user for a portable name whose server
    /// can be identified, and no rule otherwise.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a rule the caller set that cannot be
    /// checked there: any rule where the server is unknown, and a user of the
    /// other OS's kind (a SID on Unix, a uid on Windows).
    pub(crate) fn precheck(&self, addr: &Address, unknown: Option<&str>) -> Result<ServerUser> {
        let user = match (self, unknown) {
            (ServerUser::Default, None) if addr.is_portable_name() => {
                return Ok(ServerUser::CurrentByDefault);
            }
            (ServerUser::Default | ServerUser::Any, _) => return Ok(ServerUser::Any),
            (_, Some(why)) => {
                return Err(Error::new(
                    ErrorKind::InvalidOption,
                    format!("{} cannot be checked on {addr}: {why}", self.rule()),
                ));
            }
            (ServerUser::Is(user), None) => user,
            (_, None) => return Ok(self.clone()),
        };
        let here = UserId::current()?;
        if std::mem::discriminant(user) != std::mem::discriminant(&here) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!(
                    "require_server_user({user}): this OS names users like {here}, so no server on {addr} can run as {user}"
                ),
            ));
        }
        Ok(self.clone())
    }

    /// The rule as the caller set it, for error messages.
    fn rule(&self) -> String {
        self.rule_or_default(CONNECT_OPT_OUT)
    }

    /// The rule as the caller set it; the default named with `opt_out`.
    fn rule_or_default(&self, opt_out: &str) -> String {
        match self {
            ServerUser::Is(user) => format!("require_server_user({user})"),
            ServerUser::Current => "server_user_is_current".to_owned(),
            ServerUser::Any => "server_user_any".to_owned(),
            ServerUser::Default | ServerUser::CurrentByDefault => default_rule(opt_out),
        }
    }

    /// Checks the `who` ("server", "receiver", ...) of a new connection on
    /// `addr` against a rule [`precheck`](Self::precheck) returned; `found`
    /// reads its credentials (only called when there is a rule).
    pub(crate) fn verify(
        &self,
        addr: &Address,
        who: &str,
        found: impl FnOnce() -> io::Result<PeerCredentials>,
    ) -> Result<()> {
        let wanted = match self {
            ServerUser::Any | ServerUser::Default => return Ok(()),
            ServerUser::Current | ServerUser::CurrentByDefault => None,
            ServerUser::Is(user) => Some(user),
        };
        check_peer(found(), wanted, who, &self.rule(), addr)
    }
}

/// Checks a shared-memory region or one of its objects (`what`, e.g.
/// `shm:NAME`) opened by a client against a rule [`ServerUser::precheck`]
/// returned: unless the rule is [`ServerUser::Any`], it must belong to the user
/// the rule wants (for the current user: its uid; on Windows its user SID or
/// the default owner its new objects get) and be writable by no other user
/// (Unix: mode `& 0o022 == 0`; Windows: no allow-ACE granting write to another
/// SID, see `sys::windows::object_owner`). The error names the object, the
/// owner and mode or ACE found, and the rule (the default one with how to turn
/// it off, `opt_out`).
pub(crate) fn check_object_owner(
    rule: &ServerUser,
    what: &str,
    found: io::Result<crate::sys::ObjectOwner>,
    opt_out: &str,
) -> Result<()> {
    let wanted = match rule {
        ServerUser::Any | ServerUser::Default => return Ok(()),
        ServerUser::Current | ServerUser::CurrentByDefault => None,
        ServerUser::Is(user) => Some(user.clone()),
    };
    let wanted = match wanted {
        Some(user) if !user.same_as(&UserId::current()?) => vec![user],
        _ => sys::current_owners().map_err(|e| Error::io("find the current user", e))?,
    };
    let rule = rule.rule_or_default(opt_out);
    let owner = found.map_err(|e| Error::io(format!("{rule}: cannot tell who owns {what}"), e))?;
    let mode = owner
        .mode
        .map(|m| format!(" with mode {m:#o}"))
        .unwrap_or_default();
    let names = wanted
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" or ");
    let refuse = |why: String| {
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{rule}: refusing {what}: {why}; it must be owned by {names} and writable by \
                 no other user, or another user could have made it to read or change what \
                 you share"
            ),
        ))
    };
    match owner.user.user() {
        Some(user) if !wanted.iter().any(|w| user.same_as(w)) => {
            refuse(format!("it is owned by {user}{mode}"))
        }
        Some(user) if owner.mode.is_some_and(|m| m & 0o022 != 0) => refuse(format!(
            "it is owned by {user}{mode}, so its group or others can write to it"
        )),
        Some(user) => match owner.others_write {
            Some(why) => refuse(format!("it is owned by {user}, but {why}")),
            None => Ok(()),
        },
        None => refuse("the OS does not say who owns it".to_owned()),
    }
}

/// Why the server of a stream or message connection to `ep` cannot be
/// identified (TCP), or `None` when the OS tells (a local socket or pipe).
pub(crate) fn unknown_server(ep: &Endpoint) -> Option<&'static str> {
    match ep {
        Endpoint::Tcp { .. } => Some("a TCP server's user is unknown"),
        _ => None,
    }
}

/// With `current_user_only`, checks the client of a connection just accepted on
/// `addr`.
pub(crate) fn verify_client(
    current_user_only: bool,
    addr: &Address,
    found: impl FnOnce() -> io::Result<PeerCredentials>,
) -> Result<()> {
    if current_user_only {
        check_peer(found(), None, "client", "current_user_only", addr)
    } else {
        Ok(())
    }
}

/// Refuses `current_user_only` on an address whose clients cannot be identified
/// (TCP).
pub(crate) fn refuse_current_user_only(current_user_only: bool, addr: &Address) -> Result<()> {
    refuse_identity_rule(
        current_user_only,
        "current_user_only",
        addr,
        "TCP clients have no user",
    )
}

/// Refuses an identity rule (`rule`, if `set`) on `what`, where the OS gives no
/// peer identity (`why`): a rule the caller asked for is never skipped silently.
pub(crate) fn refuse_identity_rule(
    set: bool,
    rule: &str,
    what: impl fmt::Display,
    why: &str,
) -> Result<()> {
    if set {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!("{rule} cannot be checked on {what}: {why}"),
        ));
    }
    Ok(())
}

/// The credentials of the peer of a connection on `addr`, as an ipckit error
/// when the OS cannot tell.
pub(crate) fn credentials(
    found: io::Result<PeerCredentials>,
    addr: &Address,
) -> Result<PeerCredentials> {
    found.map_err(|e| Error::io(format!("read the peer credentials on {addr}"), e))
}

/// Checks that the peer of a connection on `addr` (the `who`: "server",
/// "client", ...) runs as `wanted`; `None` means "the current user". The error
/// names `rule`, the user found and the one wanted.
pub(crate) fn check_peer(
    found: io::Result<PeerCredentials>,
    wanted: Option<&UserId>,
    who: &str,
    rule: &str,
    addr: &Address,
) -> Result<()> {
    let current;
    let wanted = match wanted {
        Some(user) => user,
        None => {
            current = UserId::current()?;
            &current
        }
    };
    let creds = found.map_err(|e| {
        Error::io(
            format!("{rule}: cannot tell which user runs the {who} on {addr}"),
            e,
        )
    })?;
    match creds.user() {
        Some(user) if user.same_as(wanted) => Ok(()),
        Some(user) => Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{rule}: the {who} on {addr} runs as {user}{pid}, not as {wanted}; the connection was closed",
                pid = creds.pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
            ),
        )),
        None => Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{rule}: the OS does not say which user runs the {who} on {addr}; the connection was closed"
            ),
        )),
    }
}

/// Checks a Unix socket file mode given to `os::unix::ListenerOptionsExt::mode`: permission
/// bits only, and the owner keeps read and write.
pub(crate) fn check_mode(mode: u32) -> Result<()> {
    if mode & !0o777 != 0 {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!(
                "mode {mode:#o}: only permission bits (0o777) are allowed, not setuid, setgid, sticky or file-type bits"
            ),
        ));
    }
    if mode & 0o600 != 0o600 {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!("mode {mode:#o}: the owner must keep read and write (0o600)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_keep_owner_rw_and_only_permission_bits() {
        assert!(check_mode(0o600).is_ok());
        assert!(check_mode(0o660).is_ok());
        assert!(check_mode(0o666).is_ok());
        assert!(check_mode(0o777).is_ok());
        let err = check_mode(0o400).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        assert!(
            err.to_string().contains("owner must keep read and write"),
            "{err}"
        );
        assert!(check_mode(0o060).is_err());
        let err = check_mode(0o4600).unwrap_err();
        assert!(err.to_string().contains("0o4600"), "{err}");
        assert!(check_mode(0o140600).is_err());
    }

    #[test]
    fn users_compare_by_kind_and_sids_ignore_case() {
        assert!(UserId::Uid(5).same_as(&UserId::Uid(5)));
        assert!(!UserId::Uid(5).same_as(&UserId::Uid(6)));
        assert!(UserId::Sid("S-1-5-18".into()).same_as(&UserId::Sid("s-1-5-18".into())));
        assert!(!UserId::Sid("S-1-5-18".into()).same_as(&UserId::Uid(18)));
        assert_eq!(UserId::Uid(0).to_string(), "uid 0");
    }

    #[test]
    fn a_peer_of_another_user_is_refused_with_both_users_named() {
        let addr: Address = "pipe:svc".parse().unwrap();
        let creds = PeerCredentials {
            pid: Some(42),
            uid: Some(1001),
            gid: Some(1001),
            sid: None,
        };
        let rule = ServerUser::Is(UserId::Uid(0)).rule();
        let err = check_peer(
            Ok(creds.clone()),
            Some(&UserId::Uid(0)),
            "server",
            &rule,
            &addr,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        let text = err.to_string();
        assert!(
            text.contains("runs as uid 1001 (pid 42), not as uid 0"),
            "{text}"
        );
        assert!(text.contains("require_server_user(uid 0): "), "{text}");
        // The rule named is the one set: server_user_is_current names itself.
        let me = match UserId::current().unwrap() {
            UserId::Uid(uid) => uid,
            UserId::Sid(_) => return,
        };
        let other = PeerCredentials {
            uid: Some(me.wrapping_add(1)),
            ..creds.clone()
        };
        let rule = ServerUser::Current.rule();
        let text = check_peer(Ok(other), None, "server", &rule, &addr)
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("server_user_is_current: the server on pipe:svc"),
            "{text}"
        );
        assert!(
            check_peer(
                Ok(creds),
                Some(&UserId::Uid(1001)),
                "client",
                "current_user_only",
                &addr
            )
            .is_ok()
        );
    }

    #[test]
    fn the_default_checks_portable_names_only_and_any_turns_it_off() {
        let name: Address = "pipe:svc".parse().unwrap();
        let path: Address = "unix:/tmp/svc.sock".parse().unwrap();
        let tcp: Address = "tcp:127.0.0.1:1".parse().unwrap();
        let default = ServerUser::Default;
        assert_eq!(
            default.precheck(&name, None).unwrap(),
            ServerUser::CurrentByDefault
        );
        assert_eq!(default.precheck(&path, None).unwrap(), ServerUser::Any);
        assert_eq!(
            default.precheck(&tcp, Some("unknown")).unwrap(),
            ServerUser::Any
        );
        assert_eq!(
            ServerUser::Any.precheck(&name, None).unwrap(),
            ServerUser::Any
        );
        // A rule the caller set is never dropped where it cannot be checked.
        let err = ServerUser::Current
            .precheck(&tcp, Some("a TCP server's user is unknown"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        // The default names itself and its opt-out.
        let other = PeerCredentials {
            pid: None,
            uid: Some(u32::MAX - 1),
            gid: None,
            sid: Some("S-1-5-18".into()),
        };
        let err = ServerUser::CurrentByDefault
            .verify(&name, "server", || Ok(other))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("server_user_any"), "{err}");
    }
}
