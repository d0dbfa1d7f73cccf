//! The transports `ipckit bench` knows, and which bare loop each is measured
//! against.

/// The transports `ipckit bench` knows: ipckit's, and the bare loops that
/// are their limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Transport {
    /// The baseline of every row: std's UnixStream (Unix) or std's TcpStream
    /// on 127.0.0.1 (Windows, which has no named pipes in std); always run.
    Std,
    /// ipckit's byte stream at a portable name (a Unix socket / a named pipe).
    Stream,
    /// A bare SOCK_SEQPACKET loop (no credentials, no framing): the message
    /// channel's limit (Linux, FreeBSD).
    Seqpacket,
    /// ipckit's message channel (SOCK_SEQPACKET / a message-mode named pipe).
    Message,
    /// Two mailslots, one each way (SOCK_DGRAM sockets on Unix).
    Datagram,
    /// A bare two-process ring in shared memory, one each way (two
    /// positions and a memcpy, both sides spinning): the shm channel's limit.
    Ring,
    /// ipckit's shared-memory channel.
    Shm,
    /// A bare std TcpStream loop on 127.0.0.1: the TCP transport's limit.
    StdTcp,
    /// ipckit's byte stream over TCP on 127.0.0.1.
    Tcp,
}

impl Transport {
    /// What `ipckit bench` runs when no transport is named (each row's
    /// baseline is added before it).
    pub(super) const DEFAULT: [Transport; 6] = [
        Transport::Std,
        Transport::Stream,
        Transport::Message,
        Transport::Datagram,
        Transport::Shm,
        Transport::Tcp,
    ];

    const ALL: [Transport; 9] = [
        Transport::Std,
        Transport::Stream,
        Transport::Seqpacket,
        Transport::Message,
        Transport::Datagram,
        Transport::Ring,
        Transport::Shm,
        Transport::StdTcp,
        Transport::Tcp,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Transport::Std => "std",
            Transport::Stream => "stream",
            Transport::Seqpacket => "seqpacket",
            Transport::Message => "message",
            Transport::Datagram => "datagram",
            Transport::Ring => "ring",
            Transport::Shm => "shm",
            Transport::StdTcp => "std-tcp",
            Transport::Tcp => "tcp",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The bare loop this transport's ratios are taken against: the OS
    /// mechanism it runs on, without ipckit. `None` for a bare loop itself.
    pub(super) fn baseline(self) -> Option<Transport> {
        match self {
            Transport::Std | Transport::Seqpacket | Transport::Ring | Transport::StdTcp => None,
            Transport::Shm => Some(Transport::Ring),
            // macOS carries messages as frames on a stream socket, Windows
            // on a message-mode pipe (std has no pipes): std's stream there.
            Transport::Message if super::bare::HAS_SEQPACKET => Some(Transport::Seqpacket),
            // Windows' std baseline is TCP already.
            Transport::Tcp if cfg!(unix) => Some(Transport::StdTcp),
            // No bare datagram loop: std's stream.
            Transport::Stream | Transport::Message | Transport::Datagram | Transport::Tcp => {
                Some(Transport::Std)
            }
        }
    }

    /// What the std baseline is on this OS.
    pub(super) fn describe_std() -> &'static str {
        if cfg!(unix) {
            "std::os::unix::net::UnixStream"
        } else {
            "std::net::TcpStream on 127.0.0.1 (std has no named pipes)"
        }
    }
}

/// The transports to measure, in order: std first, then each chosen one
/// after its baseline, each once.
pub(super) fn plan(wanted: &[Transport]) -> Vec<Transport> {
    let wanted = if wanted.is_empty() {
        &Transport::DEFAULT[..]
    } else {
        wanted
    };
    let mut chosen = vec![Transport::Std];
    for &t in wanted {
        for t in t.baseline().into_iter().chain([t]) {
            if !chosen.contains(&t) {
                chosen.push(t);
            }
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_follows_its_baseline_and_std_comes_first() {
        let all = plan(&[]);
        assert_eq!(all[0], Transport::Std);
        for (i, t) in all.iter().enumerate() {
            if let Some(b) = t.baseline() {
                let at = all.iter().position(|x| *x == b).expect("baseline planned");
                assert!(at < i, "{t:?} before its baseline {b:?}: {all:?}");
            }
        }
        assert_eq!(
            plan(&[Transport::Tcp, Transport::Tcp]).len(),
            1 + usize::from(cfg!(unix)) + 1
        );
        for t in Transport::ALL {
            assert_eq!(Transport::from_name(t.name()), Some(t));
        }
    }
}
