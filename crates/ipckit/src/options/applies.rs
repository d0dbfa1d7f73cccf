//! Which option applies to which kind of endpoint: the options builders
//! remember what was set, and each finisher refuses an option its kind cannot
//! use ([`ErrorKind::InvalidOption`] naming the option and the kind) instead of
//! ignoring it.

use std::fmt;

use crate::address::Address;
use crate::error::{Error, ErrorKind, Result};

/// An option a caller can set on [`ListenerOptions`](crate::ListenerOptions) or
/// [`ConnectOptions`](crate::ConnectOptions) (through an OS extension trait
/// for the OS-specific ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each OS's extension trait sets its own
pub(crate) enum Opt {
    MaxInstances,
    BufferSizes,
    SecurityDescriptor,
    AcceptRemoteClients,
    Mode,
    Backlog,
    ReplaceStale,
    MaxMessageSize,
    ShmCapacity,
    Timeout,
    RetryNotFound,
}

impl Opt {
    /// Every option, in the order the errors name them.
    const ALL: [Opt; 11] = [
        Opt::MaxInstances,
        Opt::BufferSizes,
        Opt::SecurityDescriptor,
        Opt::AcceptRemoteClients,
        Opt::Mode,
        Opt::Backlog,
        Opt::ReplaceStale,
        Opt::MaxMessageSize,
        Opt::ShmCapacity,
        Opt::Timeout,
        Opt::RetryNotFound,
    ];

    /// The setter's path as the caller wrote it.
    fn name(self) -> &'static str {
        match self {
            Opt::MaxInstances => "os::windows::ListenerOptionsExt::max_instances",
            Opt::BufferSizes => "os::windows::ListenerOptionsExt::buffer_sizes",
            Opt::SecurityDescriptor => "os::windows::ListenerOptionsExt::security_descriptor",
            Opt::AcceptRemoteClients => "os::windows::ListenerOptionsExt::accept_remote_clients",
            Opt::Mode => "os::unix::ListenerOptionsExt::mode",
            Opt::Backlog => "os::unix::ListenerOptionsExt::backlog",
            Opt::ReplaceStale => "os::unix::ListenerOptionsExt::replace_stale",
            Opt::MaxMessageSize => "max_message_size",
            Opt::ShmCapacity => "ListenerOptions::shm_capacity",
            Opt::Timeout => "ConnectOptions::timeout",
            Opt::RetryNotFound => "ConnectOptions::retry_not_found",
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// The options set on one builder.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Set(u16);

impl Set {
    pub(crate) fn add(&mut self, opt: Opt) {
        self.0 |= opt.bit();
    }

    /// Marks `opt` set when `on`, unset otherwise: for a switch whose `false`
    /// is the default, so that turning it off (or back off) is never refused.
    pub(crate) fn switch(&mut self, opt: Opt, on: bool) {
        if on {
            self.add(opt);
        } else {
            self.0 &= !opt.bit();
        }
    }

    fn has(self, opt: Opt) -> bool {
        self.0 & opt.bit() != 0
    }
}

/// What a finisher makes, as far as the options are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A local byte-stream listener or client (named pipe, Unix socket).
    Stream,
    /// A local message listener or client (message-mode pipe, `SOCK_SEQPACKET`).
    Message,
    /// A byte stream over `tcp:`.
    TcpStream,
    /// A message channel over `tcp:` (length-prefixed frames).
    TcpMessage,
    /// A mailslot receiver (`CreateMailslotW`, a Unix datagram socket).
    Mailslot,
    /// A member of a broadcast group.
    MailslotGroup,
    /// A mailslot sender.
    MailslotSender,
    /// A shared-memory channel.
    Shm,
}

impl Kind {
    /// A byte stream at `addr`.
    pub(crate) fn stream(addr: &Address) -> Kind {
        match addr {
            Address::Tcp { .. } => Kind::TcpStream,
            _ => Kind::Stream,
        }
    }

    /// A message channel at `addr` (a shared-memory one for `shm:`).
    pub(crate) fn message(addr: &Address) -> Kind {
        match addr {
            Address::Tcp { .. } => Kind::TcpMessage,
            Address::Shm(_) => Kind::Shm,
            _ => Kind::Message,
        }
    }

    /// Whether this kind uses `opt`. The OS-specific options can only be set
    /// on their OS, so a local kind takes those of both.
    fn uses(self, opt: Opt) -> bool {
        use Opt::*;
        let local_listener = matches!(
            opt,
            MaxInstances
                | BufferSizes
                | SecurityDescriptor
                | AcceptRemoteClients
                | Mode
                | Backlog
                | ReplaceStale
        );
        match self {
            Kind::Stream => local_listener || matches!(opt, Timeout | RetryNotFound),
            Kind::Message => {
                local_listener || matches!(opt, MaxMessageSize | Timeout | RetryNotFound)
            }
            Kind::TcpStream => matches!(opt, Timeout | RetryNotFound),
            Kind::TcpMessage => matches!(opt, MaxMessageSize | Timeout | RetryNotFound),
            Kind::Mailslot => matches!(
                opt,
                MaxMessageSize | SecurityDescriptor | Mode | ReplaceStale
            ),
            Kind::MailslotGroup => matches!(opt, MaxMessageSize | SecurityDescriptor),
            Kind::MailslotSender => false,
            Kind::Shm => matches!(opt, MaxMessageSize | ShmCapacity | Timeout | RetryNotFound),
        }
    }

    /// Why an option does not apply, for the error.
    fn why(self) -> &'static str {
        match self {
            Kind::Stream => "a byte stream has no message boundaries and no ring",
            Kind::Message => "a pipe or socket channel has no shared-memory ring",
            Kind::TcpStream | Kind::TcpMessage => {
                "TCP has no pipe instances, buffers, file mode or descriptor to set"
            }
            Kind::Mailslot => "a mailslot has no instances, backlog or remote-client flag",
            Kind::MailslotGroup => {
                "a group member's socket or mailslot has a name of its own, in the group's \
                 private directory"
            }
            Kind::MailslotSender => "opening a mailslot neither waits nor receives",
            Kind::Shm => "a shared-memory channel is no pipe, socket or file",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Stream => "a byte stream",
            Kind::Message => "a message channel",
            Kind::TcpStream => "a byte stream over TCP",
            Kind::TcpMessage => "a message channel over TCP",
            Kind::Mailslot => "a mailslot receiver",
            Kind::MailslotGroup => "a broadcast group member",
            Kind::MailslotSender => "a mailslot sender",
            Kind::Shm => "a shared-memory channel",
        })
    }
}

/// Refuses the first option of `set` that `kind` cannot use, naming it, the
/// kind and `place` (the address), rather than ignoring it.
pub(crate) fn refuse_unused(set: Set, kind: Kind, place: &dyn fmt::Display) -> Result<()> {
    match Opt::ALL.into_iter().find(|&o| set.has(o) && !kind.uses(o)) {
        None => Ok(()),
        Some(opt) => Err(Error::new(
            ErrorKind::InvalidOption,
            format!(
                "{} was set, but it does not apply to {kind} ({place}): {}; unset it rather \
                 than have it ignored",
                opt.name(),
                kind.why()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_option_a_kind_cannot_use_is_named_with_the_kind() {
        let mut set = Set::default();
        set.add(Opt::MaxMessageSize);
        let addr: Address = "pipe:x".parse().unwrap();
        let err = refuse_unused(set, Kind::stream(&addr), &addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        let text = err.to_string();
        assert!(text.contains("max_message_size"), "{text}");
        assert!(text.contains("a byte stream (pipe:x)"), "{text}");
        assert!(refuse_unused(set, Kind::message(&addr), &addr).is_ok());

        // A ring capacity is for shared-memory channels only.
        let mut ring = Set::default();
        ring.add(Opt::ShmCapacity);
        let shm: Address = "shm:x".parse().unwrap();
        assert!(refuse_unused(ring, Kind::message(&shm), &shm).is_ok());
        let err = refuse_unused(ring, Kind::message(&addr), &addr).unwrap_err();
        assert!(err.to_string().contains("shm_capacity"), "{err}");
        assert!(err.to_string().contains("a message channel"), "{err}");
    }

    #[test]
    fn tcp_refuses_every_local_listener_option() {
        let tcp: Address = "tcp:127.0.0.1:0".parse().unwrap();
        let local_only = Opt::ALL.into_iter().filter(|o| {
            !matches!(
                o,
                Opt::MaxMessageSize | Opt::ShmCapacity | Opt::Timeout | Opt::RetryNotFound
            )
        });
        for opt in local_only {
            let mut set = Set::default();
            set.add(opt);
            for kind in [Kind::stream(&tcp), Kind::message(&tcp)] {
                let err = refuse_unused(set, kind, &tcp).unwrap_err();
                assert!(err.to_string().contains(opt.name()), "{err}");
                assert!(err.to_string().contains("over TCP"), "{err}");
            }
        }
    }

    #[test]
    fn a_switch_turned_off_is_never_refused() {
        let group: Address = "mailslot:g".parse().unwrap();
        let mut set = Set::default();
        set.switch(Opt::RetryNotFound, true);
        let err = refuse_unused(set, Kind::MailslotSender, &group).unwrap_err();
        assert!(err.to_string().contains("retry_not_found"), "{err}");
        set.switch(Opt::RetryNotFound, false);
        assert!(refuse_unused(set, Kind::MailslotSender, &group).is_ok());
    }
}
