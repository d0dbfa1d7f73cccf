//! `--server-user USER|any` of `connect`, `call` and `send`: which user the
//! server (or mailslot receiver, or shared-memory region) must belong to.

use ipckit::ConnectOptions;
use ipckit::security::UserId;
use ipckit_rpc::ClientOptions;

/// The option, flattened into the subcommands that connect.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerUserArg {
    /// Which user the server must run as: a uid or user name (Unix), an
    /// account name or a SID such as S-1-5-21-... (Windows), or `any` to
    /// accept a server of any user. Without it, a portable name (NAME, pipe:NAME, mailslot:NAME,
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

/// Options that take the rule: the transport's and the RPC client's.
pub(crate) trait TakesServerUser {
    fn any(&mut self);
    fn is(&mut self, user: UserId);
}

impl TakesServerUser for ConnectOptions {
    fn any(&mut self) {
        self.server_user_any();
    }
    fn is(&mut self, user: UserId) {
        self.require_server_user(user);
    }
}

impl TakesServerUser for ClientOptions {
    fn any(&mut self) {
        self.server_user_any();
    }
    fn is(&mut self, user: UserId) {
        self.require_server_user(user);
    }
}

impl ServerUserArg {
    /// Whether the option was given.
    pub(crate) fn is_set(&self) -> bool {
        self.server_user.is_some()
    }

    /// Sets the rule on transport or RPC client options.
    pub(crate) fn apply(&self, opts: &mut impl TakesServerUser) {
        match &self.server_user {
            None => {}
            Some(ServerUser::Any) => opts.any(),
            Some(ServerUser::Is(user)) => opts.is(user.clone()),
        }
    }
}

/// `any`, a uid, a SID (`S-...`), or a user name: on Unix from the user database (getpwnam: /etc/passwd, NSS),
/// on Windows an account name (`LookupAccountNameW`).
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
    UserId::lookup(text).map(ServerUser::Is).map_err(|e| {
        let how = if cfg!(windows) {
            "give an account name (NAME or DOMAIN\\NAME), a SID (S-1-5-21-..., as \
             `whoami /user` shows it)"
        } else {
            "give a user name the system knows (getent passwd), a uid"
        };
        format!("{e:#}; {how} or `any`")
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
        }
        // The current user by name (Windows: the account name GetUserNameW
        // gives, which the OS also puts in USERNAME; Unix: USER or LOGNAME).
        let name = ["USERNAME", "USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()));
        if let Some(name) = name {
            match parse(&name) {
                Ok(ServerUser::Is(user)) => assert_eq!(user, UserId::current().unwrap(), "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        let err = parse("no-such-user-here").unwrap_err();
        assert!(
            err.contains("look up the user \"no-such-user-here\": no such user"),
            "{err}"
        );
        assert!(err.contains("or `any`"), "{err}");
    }
}
