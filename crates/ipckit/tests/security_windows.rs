//! Access control and peer identity on Windows: the default DACL read back, SDDL
//! options, the first-instance guard against squatters, the owner and DACL
//! check of shared-memory clients, account names, and peer process ids
//! and SIDs with a real child process (this program re-run,
//! `security_child_entry`, `util::this_test_as_child`).
//!
//! Under Wine everything runs as one user, so refusing a client or a server of
//! another user cannot be tried; the checks are driven with a user that is not
//! ours (SYSTEM) instead. Whether Wine enforces a DACL at all is probed.
#![cfg(windows)]

mod util;

use std::io::{Read, Write};
use std::time::Duration;

use ipckit::os::windows::{CreateOptionsExt, ListenerOptionsExt};
use ipckit::security::UserId;
use ipckit::shm::{CreateOptions, OpenOptions, SharedMemory, ShmChannel, ShmListener};
use ipckit::{ConnectOptions, ErrorKind, Listener, ListenerOptions, MessageListener, Stream};
use util::{Kid, slow_factor, this_test_as_child, unique_name, watchdog};

const SYSTEM: &str = "S-1-5-18";

fn limit() -> Duration {
    Duration::from_secs(30 * u64::from(slow_factor()))
}

fn my_sid() -> String {
    match UserId::current().unwrap() {
        UserId::Sid(sid) => sid,
        other => panic!("Windows names users by SID, got {other}"),
    }
}

/// Not a test: the entry point of this program when a test re-runs it as a
/// child (`util::this_test_as_child`).
#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn security_child_entry() {
    let Some((role, arg)) = util::child_role() else {
        return;
    };
    match role.as_str() {
        // Connect to `arg`, report the server's credentials, send "hi", read to
        // the end.
        "connect" => match Stream::connect(arg.as_str()) {
            Ok(mut s) => {
                let c = s.peer_credentials().unwrap();
                println!("CONNECTED {:?} {:?}", c.pid, c.sid);
                let _ = s.write_all(b"hi");
                let _ = s.read_to_end(&mut Vec::new());
            }
            Err(e) => println!("REFUSED {e:#}"),
        },
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

fn child(role: &str, arg: &str) -> Kid {
    Kid::spawn(this_test_as_child(&[], "security_child_entry", role, arg))
}

#[test]
fn the_default_dacl_grants_only_the_current_user_and_system() {
    watchdog(limit(), || {
        let sid = my_sid();
        let addr = format!("pipe:{}", unique_name("sec-dacl"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let sddl = listener.access_control().unwrap();
        // An owner (the token's default owner: the user, Administrators for an
        // elevated admin, Wine's users group). DACL: protected, two allow ACEs,
        // SYSTEM and us, nothing else.
        assert!(sddl.starts_with("O:S-1-"), "{sddl}");
        let dacl = &sddl[sddl.find("D:").expect("a DACL")..];
        assert!(dacl.starts_with("D:P"), "{dacl}");
        let aces: Vec<&str> = dacl
            .split('(')
            .skip(1)
            .map(|a| a.trim_end_matches(')'))
            .collect();
        assert_eq!(aces.len(), 2, "{dacl}");
        assert!(aces.iter().all(|a| a.starts_with("A;;")), "{dacl}");
        assert!(aces.iter().any(|a| a.ends_with(";;;SY")), "{dacl}");
        assert!(
            aces.iter().any(|a| a.ends_with(&format!(";;;{sid}"))),
            "{dacl}"
        );

        // The message listener's instances get the same default.
        let maddr = format!("pipe:{}", unique_name("sec-dacl-msg"));
        let _m = MessageListener::bind(maddr.as_str()).unwrap();
        let c = ipckit::MessageStream::connect(maddr.as_str()).unwrap();
        assert_eq!(
            c.peer_credentials().unwrap().sid.as_deref(),
            Some(sid.as_str())
        );
    });
}

#[test]
fn an_sddl_option_replaces_the_dacl_and_invalid_sddl_is_refused_by_name() {
    watchdog(limit(), || {
        let addr = format!("pipe:{}", unique_name("sec-sddl"));
        let listener = ListenerOptions::new()
            .security_descriptor("D:P(A;;GA;;;WD)")
            .bind(addr.as_str())
            .unwrap();
        let sddl = listener.access_control().unwrap();
        assert!(sddl.contains(";;;WD)"), "the Everyone ACE: {sddl}");
        let dacl = &sddl[sddl.find("D:").expect("a DACL")..];
        assert!(!dacl.contains(&my_sid()), "only Everyone: {dacl}");
        assert!(Stream::connect(addr.as_str()).is_ok());

        let bad = "D:(this is not SDDL";
        let mut opts = ListenerOptions::new();
        opts.security_descriptor(bad);
        let name = format!("pipe:{}", unique_name("sec-bad"));
        for err in [
            opts.bind(name.as_str()).unwrap_err(),
            opts.bind_message(name.as_str()).unwrap_err(),
            opts.bind_mailslot(format!("mailslot:{}", unique_name("sec-bad")))
                .unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
            let text = err.to_string();
            assert!(text.contains(&format!("{bad:?}")), "{text}");
            assert!(text.contains("not a valid SDDL"), "{text}");
        }
        // Nothing was created under the name.
        assert_eq!(
            Stream::connect(name.as_str()).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let err = opts.bind_tokio(name.as_str()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
        });
    });
}

#[test]
fn an_empty_dacl_locks_out_even_the_owner_where_the_os_enforces_dacls() {
    watchdog(limit(), || {
        let addr = format!("pipe:{}", unique_name("sec-empty"));
        let _listener = ListenerOptions::new()
            .security_descriptor("D:P")
            .bind(addr.as_str())
            .unwrap();
        match Stream::connect(addr.as_str()) {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
                assert_eq!(e.raw_os_error(), Some(5), "{e}");
            }
            Ok(_) => {
                assert!(
                    util::skip_under_wine(
                        "an empty DACL refusing the pipe's own user",
                        "probed: Wine opened a pipe whose DACL grants nobody anything \
                         (it does not check pipe DACLs on open)"
                    ),
                    "Windows opened a pipe whose DACL grants nobody anything"
                );
            }
        }
    });
}

#[test]
fn a_squatter_holding_the_name_makes_bind_fail_loudly() {
    watchdog(limit(), || {
        let addr = format!("pipe:{}", unique_name("sec-squat"));
        let _squatter = ListenerOptions::new()
            .security_descriptor("D:P(A;;GA;;;WD)")
            .bind(addr.as_str())
            .unwrap();
        for err in [
            Listener::bind(addr.as_str()).unwrap_err(),
            MessageListener::bind(addr.as_str()).unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
            let text = err.to_string();
            assert!(
                text.contains("another server already owns this pipe name"),
                "{text}"
            );
            assert!(text.contains("FILE_FLAG_FIRST_PIPE_INSTANCE"), "{text}");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let err = ipckit::tokio::Listener::bind(addr.as_str()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        });
    });
}

#[test]
fn peer_credentials_name_the_real_client_and_server_processes() {
    watchdog(limit(), || {
        let sid = my_sid();
        let addr = format!("pipe:{}", unique_name("sec-pid"));
        let listener = ListenerOptions::new()
            .current_user_only(true)
            .bind(addr.as_str())
            .unwrap();
        let mut kid = child("connect", &addr);
        let mut served = listener.accept().unwrap();
        let creds = served.peer_credentials().unwrap();
        assert_eq!(creds.pid, Some(kid.pid()));
        assert_eq!(creds.sid.as_deref(), Some(sid.as_str()));
        assert_eq!((creds.uid, creds.gid), (None, None));
        assert_eq!(
            kid.line(),
            format!("CONNECTED Some({}) Some({sid:?})", std::process::id())
        );
        let mut hi = [0; 2];
        served.read_exact(&mut hi).unwrap();
        assert_eq!(&hi, b"hi");
    });
}

#[test]
fn a_client_refuses_a_server_that_is_not_run_by_the_required_user() {
    watchdog(limit(), || {
        let sid = my_sid();
        let addr = format!("pipe:{}", unique_name("sec-owner"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let ok = ConnectOptions::new()
            .server_user_is_current()
            .connect(addr.as_str())
            .unwrap();
        assert_eq!(ok.peer_credentials().unwrap().pid, Some(std::process::id()));
        drop(listener.accept().unwrap());

        let err = ConnectOptions::new()
            .require_server_user(UserId::Sid(SYSTEM.into()))
            .connect(addr.as_str())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        // The refused client was connected (and then closed): take that instance
        // off the listener so a later client finds a free one.
        drop(listener.accept().unwrap());
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "the server on pipe:{} runs as SID {sid} (pid {}), not as SID {SYSTEM}",
                addr.trim_start_matches("pipe:"),
                std::process::id()
            )),
            "{text}"
        );
        // A uid cannot name a Windows user: refused before connecting.
        let err = ConnectOptions::new()
            .require_server_user(UserId::Uid(0))
            .timeout(Duration::from_secs(1))
            .connect(addr.as_str())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
        assert!(
            err.to_string().contains("this OS names users like SID"),
            "{err}"
        );

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let aaddr = format!("pipe:{}", unique_name("sec-owner-async"));
            let al = ListenerOptions::new()
                .current_user_only(true)
                .bind_tokio(aaddr.as_str())
                .unwrap();
            let mut opts = ConnectOptions::new();
            opts.server_user_is_current();
            let (c, s) = tokio::join!(opts.connect_tokio(aaddr.as_str()), al.accept());
            let (c, s) = (c.unwrap(), s.unwrap());
            assert_eq!(
                c.peer_credentials().unwrap().sid.as_deref(),
                Some(sid.as_str())
            );
            assert_eq!(s.peer_credentials().unwrap().pid, Some(std::process::id()));
            let err = ConnectOptions::new()
                .require_server_user(UserId::Sid(SYSTEM.into()))
                .connect_message_tokio(aaddr.as_str())
                .await
                .unwrap_err();
            // A byte-stream server: the message connect is refused for its kind
            // or for its user, never accepted.
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::PermissionDenied | ErrorKind::Protocol
                ),
                "{err}"
            );
        });
    });
}

#[test]
fn remote_clients_are_an_explicit_opt_in_and_pipe_options_are_refused_elsewhere() {
    watchdog(limit(), || {
        let addr = format!("pipe:{}", unique_name("sec-opts"));
        let listener = ListenerOptions::new()
            .accept_remote_clients(true)
            .bind(addr.as_str())
            .unwrap();
        // The default DACL stays: admitting remote clients does not widen it.
        let sddl = listener.access_control().unwrap();
        assert!(sddl.contains(&format!(";;;{})", my_sid())), "{sddl}");
        let t = std::thread::spawn({
            let addr = addr.clone();
            move || Stream::connect(addr.as_str()).unwrap()
        });
        listener.accept().unwrap();
        t.join().unwrap();
        // A pipe option where there is no pipe is refused, naming the option
        // and the kind, not ignored.
        let err = ListenerOptions::new()
            .max_instances(4)
            .bind("tcp:127.0.0.1:0")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        assert!(err.to_string().contains("max_instances"), "{err}");
        assert!(err.to_string().contains("a byte stream over TCP"), "{err}");
        let err = ListenerOptions::new()
            .accept_remote_clients(true)
            .bind_mailslot(format!("mailslot:{}", unique_name("sec-ms-remote")))
            .unwrap_err();
        assert!(err.to_string().contains("a mailslot receiver"), "{err}");
    });
}

#[test]
fn account_names_are_looked_up_and_an_unknown_one_is_named() {
    watchdog(limit(), || {
        // USERNAME holds the account name GetUserNameW returns (Windows and
        // Wine set it at logon); a test cannot call the API itself.
        let name = std::env::var("USERNAME").expect("USERNAME is set at logon");
        assert_eq!(
            UserId::lookup(&name).unwrap(),
            UserId::current().unwrap(),
            "{name}"
        );
        assert_eq!(
            UserId::lookup("SYSTEM").unwrap(),
            UserId::Sid(SYSTEM.into())
        );
        let err = UserId::lookup("no-such-account-here").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(
            err.to_string()
                .contains("look up the user \"no-such-account-here\": no such user"),
            "{err}"
        );
    });
}

// Shared memory: the owner and DACL check of clients (docs/SECURITY.md, "What a
// client checks"). The foreign regions are made by this user with
// `CreateOptions::security_descriptor` (Wine runs everything as one user): what
// the client reads back is the OS's descriptor, whoever wrote it.

/// Creates region `name` with descriptor `sddl`.
fn region_with(name: &str, sddl: &str) -> SharedMemory {
    CreateOptions::new()
        .security_descriptor(sddl)
        .create(name, 4096)
        .unwrap_or_else(|e| panic!("create {name} with {sddl}: {e}"))
}

fn assert_denied(err: &ipckit::Error, parts: &[&str]) {
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    let text = err.to_string();
    for part in parts {
        assert!(text.contains(part), "{part:?} not in: {text}");
    }
}

#[test]
fn own_regions_and_channels_are_joined_whatever_owner_the_token_gives() {
    watchdog(limit(), || {
        let name = format!("shm:{}", unique_name("own-win"));
        let region = SharedMemory::create(&name, 4096).unwrap();
        region.write_at(0, b"mine").unwrap();
        let other = SharedMemory::open(&name).unwrap();
        let mut word = [0; 4];
        other.read_at(0, &mut word).unwrap();
        assert_eq!(&word, b"mine");
        // Everyone may read, only we may write: still ours.
        let me = my_sid();
        let read_only = format!("shm:{}", unique_name("own-win-ro"));
        let _r = region_with(
            &read_only,
            &format!("D:P(A;;FA;;;SY)(A;;FA;;;{me})(A;;0x4;;;WD)"),
        );
        drop(SharedMemory::open(&read_only).unwrap());
        // The channel's region and events: checked by default and by the
        // explicit rule alike.
        let chan = format!("shm:{}", unique_name("own-win-chan"));
        let _l = ShmListener::bind(chan.as_str()).unwrap();
        drop(
            ConnectOptions::new()
                .server_user_is_current()
                .connect_shm(chan.as_str())
                .unwrap(),
        );
        let chan2 = format!("shm:{}", unique_name("own-win-chan2"));
        let _l2 = ShmListener::bind(chan2.as_str()).unwrap();
        drop(ShmChannel::connect(chan2.as_str()).unwrap());
    });
}

#[test]
fn a_region_others_may_write_is_refused_by_name_unless_allowed() {
    watchdog(limit(), || {
        let me = my_sid();
        let name = format!("shm:{}", unique_name("foreign-win"));
        let _r = region_with(
            &name,
            &format!("D:P(A;;FA;;;SY)(A;;FA;;;{me})(A;;0x2;;;WD)"),
        );
        let err = SharedMemory::open(&name).unwrap_err();
        println!("refused: {err}");
        assert_denied(
            &err,
            &[
                &format!("refusing {name}"),
                "its DACL lets S-1-1-0",
                "(A;;0x00000002;;;S-1-1-0)",
                "SYSTEM",
                "allow_foreign",
            ],
        );
        // Everyone with all rights (GA), as a careless creator gives it.
        let all = format!("shm:{}", unique_name("foreign-win-ga"));
        let _a = region_with(&all, "D:(A;;GA;;;WD)");
        assert_denied(
            &SharedMemory::open(&all).unwrap_err(),
            &[&format!("refusing {all}"), ";;;S-1-1-0)"],
        );
        // A NULL DACL: everyone may do anything.
        let null = format!("shm:{}", unique_name("foreign-win-null"));
        let _n = region_with(&null, "D:NO_ACCESS_CONTROL");
        let err = SharedMemory::open(&null).unwrap_err();
        if format!("{err:#}").contains("os error 5") {
            // Wine grants nothing on a NULL DACL, where Windows grants all.
            println!("SKIPPED the NULL DACL case: the OS denies opening it: {err}");
        } else {
            assert_denied(&err, &[&format!("refusing {null}"), "NULL DACL"]);
        }
        // Opted out: joined, and shared.
        let opened = OpenOptions::new().allow_foreign(true).open(&name).unwrap();
        opened.write_at(0, b"ok").unwrap();

        // A channel name held by such a region is refused before anything in
        // it is read, by default and with the explicit rule.
        let chan = format!("shm:{}", unique_name("foreign-win-chan"));
        let _c = region_with(&chan, "D:(A;;GA;;;WD)");
        let err = ShmChannel::connect(chan.as_str()).unwrap_err();
        assert_denied(&err, &[&format!("refusing {chan}"), "server_user_any"]);
        let err = ConnectOptions::new()
            .server_user_is_current()
            .connect_shm(chan.as_str())
            .unwrap_err();
        assert_denied(&err, &["server_user_is_current: refusing", ";;;S-1-1-0)"]);
    });
}

#[test]
fn a_region_owned_by_another_sid_is_refused_naming_the_owner() {
    watchdog(limit(), || {
        let me = my_sid();
        let name = format!("shm:{}", unique_name("owner-win"));
        // Owner SYSTEM: Windows lets only a process with SeRestorePrivilege set
        // an owner other than its own; where it refuses, say so.
        let made = CreateOptions::new()
            .security_descriptor(&format!("O:SYD:P(A;;FA;;;SY)(A;;FA;;;{me})"))
            .create(&name, 4096);
        let _r = match made {
            Ok(r) => r,
            Err(e) => {
                println!("SKIPPED: cannot create a region owned by SYSTEM here: {e}");
                return;
            }
        };
        let err = SharedMemory::open(&name).unwrap_err();
        println!("refused: {err}");
        assert_denied(
            &err,
            &[
                &format!("refusing {name}: it is owned by SID S-1-5-18"),
                &format!("it must be owned by SID {me}"),
            ],
        );
        drop(OpenOptions::new().allow_foreign(true).open(&name).unwrap());
    });
}
