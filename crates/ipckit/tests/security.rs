//! Access-control options on every OS: the identity rules are refused wherever
//! the OS gives no peer identity (TCP, mailslots, shared memory), never skipped
//! silently; bad modes are refused everywhere. The OS-specific tests are in
//! `security_unix.rs` and `security_windows.rs`.

mod util;

use std::time::Duration;

use ipckit::security::UserId;
use ipckit::{ConnectOptions, ErrorKind, Listener, ListenerOptions, Stream};
use util::{slow_factor, unique_name, watchdog};

fn limit() -> Duration {
    Duration::from_secs(30 * u64::from(slow_factor()))
}

fn assert_refused(err: ipckit::Error, rule: &str, why: &str) {
    assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
    let text = err.to_string();
    assert!(text.contains(rule), "{text}");
    assert!(text.contains(why), "{text}");
}

#[test]
fn identity_rules_are_refused_where_the_os_gives_no_identity() {
    watchdog(limit(), || {
        let mut strict = ListenerOptions::new();
        strict.current_user_only(true);
        assert_refused(
            strict.bind("tcp:127.0.0.1:0").unwrap_err(),
            "current_user_only",
            "TCP clients have no user",
        );
        assert_refused(
            strict.bind_message("tcp:127.0.0.1:0").unwrap_err(),
            "current_user_only",
            "TCP clients have no user",
        );
        let mailslot = format!("mailslot:{}", unique_name("sec-ms"));
        assert_refused(
            strict.bind_mailslot(mailslot.as_str()).unwrap_err(),
            "current_user_only",
            "learns nothing about who sent a message",
        );
        assert_refused(
            strict
                .join_mailslot_group(&unique_name("sec-grp"))
                .unwrap_err(),
            "current_user_only",
            "learns nothing about who sent a message",
        );
        let shm = format!("shm:{}", unique_name("sec-shm"));
        assert_refused(
            strict.bind_shm(shm.as_str()).unwrap_err(),
            "current_user_only",
            "reads no peer identity",
        );
        // Nothing was bound by the refused calls: the same names work without
        // the rule.
        let _m = ListenerOptions::new()
            .bind_mailslot(mailslot.as_str())
            .unwrap();
        let _s = ListenerOptions::new().bind_shm(shm.as_str()).unwrap();

        let mut checked = ConnectOptions::new();
        checked.server_user_is_current();
        // The "server" of a channel is the owner of its region (and on Windows
        // of its events): ours.
        drop(checked.connect_shm(shm.as_str()).unwrap());
        let tcp = Listener::bind("tcp:127.0.0.1:0").unwrap();
        assert_refused(
            checked.connect(tcp.local_addr().clone()).unwrap_err(),
            "server_user_is_current cannot be checked on tcp:",
            "a TCP server's user is unknown",
        );
        // The rule named is the one set.
        let err = ConnectOptions::new()
            .require_server_user(UserId::current().unwrap())
            .connect(tcp.local_addr().clone())
            .unwrap_err();
        let me = UserId::current().unwrap();
        assert_refused(
            err,
            &format!("require_server_user({me}) cannot be checked on tcp:"),
            "a TCP server's user is unknown",
        );
        let plain = Stream::connect(tcp.local_addr().clone()).unwrap();
        let err = plain.peer_credentials().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert_eq!(
            tcp.access_control().unwrap_err().kind(),
            ErrorKind::Unsupported
        );
    });
}

#[test]
fn a_user_of_the_other_os_kind_is_refused_before_connecting() {
    watchdog(limit(), || {
        let foreign = match UserId::current().unwrap() {
            UserId::Uid(_) => UserId::Sid("S-1-5-18".into()),
            _ => UserId::Uid(0),
        };
        // Nobody listens here: the refusal comes before any connection.
        let name = format!("pipe:{}", unique_name("sec-kind"));
        let err = ConnectOptions::new()
            .require_server_user(foreign.clone())
            .connect(name.as_str())
            .unwrap_err();
        assert_refused(
            err,
            &format!("require_server_user({foreign})"),
            "this OS names users like",
        );
    });
}

#[test]
#[cfg(unix)]
fn modes_without_owner_rw_or_with_special_bits_are_refused() {
    use ipckit::os::unix::ListenerOptionsExt;
    let name = format!("pipe:{}", unique_name("sec-mode"));
    for bad in [0o400, 0o200, 0o060, 0o4600, 0o1700] {
        let err = ListenerOptions::new()
            .mode(bad)
            .bind(name.as_str())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
        assert!(err.to_string().contains(&format!("{bad:#o}")), "{err}");
    }
}
