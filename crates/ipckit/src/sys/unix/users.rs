//! Users by name, and the owners that stand for the current user.

use std::io;

use crate::peer::UserId;

/// The owners that stand for the current user: its effective uid (Unix gives
/// new objects no other owner).
pub(crate) fn current_owners() -> io::Result<Vec<UserId>> {
    Ok(vec![super::current_user()?])
}

/// The uid of user `name` in /etc/passwd, or `None` when no line names it
/// (users known only to NSS, e.g. LDAP, are not found).
pub(crate) fn user_named(name: &str) -> io::Result<Option<UserId>> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    Ok(passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let user = fields.next()?;
            let uid = fields.nth(1)?.parse::<u32>().ok()?;
            (user == name).then_some(UserId::Uid(uid))
        })
        .next())
}
