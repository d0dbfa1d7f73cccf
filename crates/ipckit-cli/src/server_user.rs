//! `--server-user USER|any` of `connect`, `call` and `send`: which user the
//! server (or mailslot receiver, or shared-memory region) must belong to.

use ipckit::ConnectOptions;
use ipckit::security::UserId;
use ipckit_rpc::ClientOptions;

/// The option, flattened into the subcommands that connect.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerUserArg {
    /// Which user the server must run as: a uid or user name (Unix), a SID
    /// such as S-1-5-21-... (Windows), or `any` to accept a server of any
    /// user. Without it, a portable name (NAME, pipe:NAME, mailslot:NAME,
    /// shm:NAME, dotnet:NAME) must be served by the current user; an address
    /// written out in full (unix:/path, @NAME, \\.\pipe\NAME) by anyone; tcp:
    /// cannot tell, nor can a Windows mailslot. On Unix a runtime directory of
    /// another user is refused whatever this says.
    #[arg(long = "server-user", value_name = "USER|any", value_parser = parse)]
    server_user: Option<ServerUser>,
}

#[derive(Debug, Clone)]
enum ServerUser {
    Any,
    Is(UserId),
}

impl ServerUserArg {
    /// Whether the option was given.
    pub(crate) fn is_set(&self) -> bool {
        self.server_user.is_some()
    }

    /// Sets the rule on transport options.
    pub(crate) fn apply(&self, opts: &mut ConnectOptions) {
        match &self.server_user {
            None => {}
            Some(ServerUser::Any) => {
                opts.server_user_any();
            }
            Some(ServerUser::Is(user)) => {
                opts.require_server_user(user.clone());
            }
        }
    }

    /// Sets the rule on RPC client options.
    pub(crate) fn apply_rpc(&self, opts: &mut ClientOptions) {
        match &self.server_user {
            None => {}
            Some(ServerUser::Any) => {
                opts.server_user_any();
            }
            Some(ServerUser::Is(user)) => {
                opts.require_server_user(user.clone());
            }
        }
    }
}

/// `any`, a uid, a SID (`S-...`), or on Unix a user name from /etc/passwd.
fn parse(text: &str) -> Result<ServerUser, String> {
    if text == "any" {
        return Ok(ServerUser::Any);
    }
    if let Ok(uid) = text.parse::<u32>() {
        return Ok(ServerUser::Is(UserId::Uid(uid)));
    }
    if text.len() > 2 && text[..2].eq_ignore_ascii_case("S-") {
        return Ok(ServerUser::Is(UserId::Sid(text.to_owned())));
    }
    if cfg!(windows) {
        return Err(format!(
            "{text:?} is not a SID: give the user's SID (S-1-5-21-..., as `whoami /user` \
             shows it) or `any`; account names are not looked up"
        ));
    }
    uid_of(text).map(|uid| ServerUser::Is(UserId::Uid(uid)))
}

/// The uid of user `name` in /etc/passwd.
fn uid_of(name: &str) -> Result<u32, String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd to find user {name:?}: {e}"))?;
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let user = fields.next()?;
            let uid = fields.nth(1)?.parse::<u32>().ok()?;
            (user == name).then_some(uid)
        })
        .next()
        .ok_or_else(|| {
            format!(
                "no user {name:?} in /etc/passwd: give a uid, a user name from /etc/passwd, \
                 or `any`"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_uids_sids_and_names_parse() {
        assert!(matches!(parse("any"), Ok(ServerUser::Any)));
        assert!(matches!(parse("0"), Ok(ServerUser::Is(UserId::Uid(0)))));
        assert!(matches!(
            parse("S-1-5-18"),
            Ok(ServerUser::Is(UserId::Sid(_)))
        ));
        if cfg!(unix) {
            assert!(matches!(parse("root"), Ok(ServerUser::Is(UserId::Uid(0)))));
            let err = parse("no-such-user-here").unwrap_err();
            assert!(err.contains("no user \"no-such-user-here\""), "{err}");
        }
    }
}
