//! Users by name, and the owners that stand for the current user.

use std::io;

use crate::sys::peer::UserId;

/// The owners that stand for the current user: its effective uid (Unix gives
/// new objects no other owner).
pub(crate) fn current_owners() -> io::Result<Vec<UserId>> {
    Ok(vec![super::current_user()?])
}

/// The uid of user `name` as the system's user database knows it
/// (`getpwnam_r`: /etc/passwd and whatever NSS adds, such as LDAP or sssd), or
/// `None` when it knows no such user.
pub(crate) fn user_named(name: &str) -> io::Result<Option<UserId>> {
    match nix::unistd::User::from_name(name) {
        Ok(user) => Ok(user.map(|u| UserId::Uid(u.uid.as_raw()))),
        Err(errno) => Err(io::Error::from_raw_os_error(errno as i32)),
    }
}
