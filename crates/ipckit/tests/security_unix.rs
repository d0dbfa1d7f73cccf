//! Access control and peer identity on Unix, with real processes of other users:
//! this test program re-run under `setpriv` as uid 65534 (`security_child_entry`,
//! `util::this_test_as_child`). Those tests need root (to switch users) and
//! `setpriv` (util-linux); without them they print why and return.
#![cfg(unix)]

mod util;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use ipckit::os::unix::ListenerOptionsExt;
use ipckit::security::UserId;
use ipckit::{ConnectOptions, ErrorKind, Listener, ListenerOptions, MessageListener, Stream};
use util::users::{self, OTHER_GID, OTHER_UID, TempDir, can_switch_users};
use util::{Kid, unique_name, watchdog};

const LIMIT: Duration = Duration::from_secs(60);

/// Not a test: the entry point of this program when a test re-runs it as a
/// child (`util::this_test_as_child`).
#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn security_child_entry() {
    let Some((role, arg)) = util::child_role() else {
        return;
    };
    match role.as_str() {
        // Connect to `arg`, say how that went, send "hi", then read to the end.
        "connect" => match Stream::connect(arg.as_str()) {
            Ok(mut s) => {
                println!("CONNECTED");
                let _ = s.write_all(b"hi");
                let mut rest = Vec::new();
                let got = s.read_to_end(&mut rest);
                println!("READ {:?} {}", got.map_err(|e| e.kind()), rest.len());
            }
            Err(e) => println!("REFUSED {:?} {e:#}", e.raw_os_error()),
        },
        // Connect a message channel to `arg` and wait for a message or the end.
        "connect_message" => match ipckit::MessageStream::connect(arg.as_str()) {
            Ok(m) => {
                println!("CONNECTED");
                println!("RECV {:?}", m.recv().map_err(|e| e.kind()));
            }
            Err(e) => println!("REFUSED {:?} {e:#}", e.raw_os_error()),
        },
        // Serve `arg` (mode 0666), say so, and hold it until stdin closes.
        "serve" => {
            let listener = ListenerOptions::new()
                .mode(0o666)
                .bind(format!("unix:{arg}"))
                .unwrap();
            println!("SERVING");
            std::thread::spawn(move || {
                while let Ok(s) = listener.accept() {
                    std::mem::forget(s);
                }
            });
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
        // Bind the portable name `arg` (with XDG_RUNTIME_DIR set by the parent).
        "bind_portable" => match Listener::bind(format!("pipe:{arg}")) {
            Ok(_) => println!("BOUND"),
            Err(e) => println!("REFUSED {:?} {e:#}", e.kind()),
        },
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// This program as a child in `role` with `arg` (see [`users::child_as`]).
fn child_as(user: Option<&[u32]>, role: &str, arg: &str, env: &[(&str, &Path)]) -> Kid {
    users::child_as("security_child_entry", user, role, arg, env)
}

/// A listener on `s.sock` with `mode`, in a new world-searchable directory (so
/// that only the socket's own mode decides who gets in), and its address.
fn served_with_mode(tag: &str, mode: u32) -> (TempDir, String, Listener) {
    let dir = TempDir::new(tag, 0o755);
    let addr = format!("unix:{}", dir.sock("s.sock").display());
    let listener = ListenerOptions::new()
        .mode(mode)
        .bind(addr.as_str())
        .unwrap();
    (dir, addr, listener)
}

#[test]
fn another_user_is_refused_by_an_owner_only_socket() {
    if !can_switch_users("another_user_is_refused_by_an_owner_only_socket") {
        return;
    }
    watchdog(LIMIT, || {
        // A world-searchable directory, so that only the socket's mode decides.
        let dir = TempDir::new("sec-owner", 0o755);
        let path = dir.sock("s.sock");
        let listener = Listener::bind(format!("unix:{}", path.display())).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(
            listener.access_control().unwrap(),
            format!(
                "mode 0600, owner uid {}, group gid {}",
                meta.uid(),
                meta.gid()
            )
        );
        // Even a member of the socket's group is refused: the mode is owner-only.
        let group = std::fs::metadata(&path).unwrap().gid();
        let mut kid = child_as(
            Some(&[group]),
            "connect",
            &format!("unix:{}", path.display()),
            &[],
        );
        let line = kid.line();
        assert!(line.starts_with("REFUSED Some(13)"), "{line}");
        assert!(line.contains("Permission denied"), "{line}");
    });
}

#[test]
fn a_group_mode_admits_a_member_of_the_group_only() {
    if !can_switch_users("a_group_mode_admits_a_member_of_the_group_only") {
        return;
    }
    watchdog(LIMIT, || {
        let (dir, addr, listener) = served_with_mode("sec-group", 0o660);
        let path = dir.sock("s.sock");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o660);

        let mut member = child_as(Some(&[meta.gid()]), "connect", &addr, &[]);
        let mut served = listener.accept().unwrap();
        assert_eq!(member.line(), "CONNECTED");
        let mut hi = [0; 2];
        served.read_exact(&mut hi).unwrap();
        assert_eq!(&hi, b"hi");
        let creds = served.peer_credentials().unwrap();
        assert_eq!(creds.uid, Some(OTHER_UID));
        drop(served);
        assert_eq!(member.line(), "READ Ok(0) 0");

        let mut outsider = child_as(Some(&[]), "connect", &addr, &[]);
        let line = outsider.line();
        assert!(line.starts_with("REFUSED Some(13)"), "{line}");
    });
}

#[test]
fn peer_credentials_are_the_real_pid_uid_and_gid_of_each_side() {
    if !can_switch_users("peer_credentials_are_the_real_pid_uid_and_gid_of_each_side") {
        return;
    }
    watchdog(LIMIT, || {
        let (_dir, addr, listener) = served_with_mode("sec-cred", 0o666);
        let mut kid = child_as(Some(&[]), "connect", &addr, &[]);
        let served = listener.accept().unwrap();
        assert_eq!(kid.line(), "CONNECTED");
        let creds = served.peer_credentials().unwrap();
        assert_eq!(creds.pid, Some(kid.pid()));
        assert_eq!(creds.uid, Some(OTHER_UID));
        assert_eq!(creds.gid, Some(OTHER_GID));
        assert_eq!(creds.sid, None);
        assert_eq!(creds.user(), Some(UserId::Uid(OTHER_UID)));

        // The client's view: the server is this process, as root.
        let client = Stream::connect(addr.as_str()).unwrap();
        let creds = client.peer_credentials().unwrap();
        assert_eq!(creds.pid, Some(std::process::id()));
        assert_eq!(creds.uid, Some(0));
        assert_eq!(creds.gid, Some(0));
    });
}

#[test]
fn current_user_only_refuses_a_client_of_another_user_and_goes_on() {
    if !can_switch_users("current_user_only_refuses_a_client_of_another_user_and_goes_on") {
        return;
    }
    watchdog(LIMIT, || {
        // An abstract name: no file, no mode, any local process may connect,
        // so the uid check is all that keeps the other user out.
        let addr = format!("@{}", unique_name("sec-cuo"));
        let listener = ListenerOptions::new()
            .current_user_only(true)
            .bind(addr.as_str())
            .unwrap();
        let err = listener.access_control().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(
            format!("{err:#}").contains("any local process may connect"),
            "{err:#}"
        );
        let mut kid = child_as(Some(&[]), "connect", &addr, &[]);
        let err = listener.accept().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        let text = err.to_string();
        assert!(text.contains("current_user_only"), "{text}");
        assert!(
            text.contains(&format!("runs as uid {OTHER_UID} (pid {})", kid.pid())),
            "{text}"
        );
        assert!(text.contains("not as uid 0"), "{text}");
        // The refused client was connected by the kernel and then cut off.
        assert_eq!(kid.line(), "CONNECTED");
        let line = kid.line();
        assert!(line.starts_with("READ "), "{line}");
        assert!(line.ends_with(" 0"), "{line}");

        // The listener goes on: a client of this user is accepted.
        let t = std::thread::spawn({
            let addr = addr.clone();
            move || Stream::connect(addr.as_str()).unwrap()
        });
        let served = listener.accept().unwrap();
        assert_eq!(served.peer_credentials().unwrap().uid, Some(0));
        t.join().unwrap();

        // The same rule on a message listener.
        let maddr = format!("@{}", unique_name("sec-cuo-msg"));
        let mlistener = ListenerOptions::new()
            .current_user_only(true)
            .bind_message(maddr.as_str())
            .unwrap();
        let mut kid = child_as(Some(&[]), "connect_message", &maddr, &[]);
        let err = mlistener.accept().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(
            err.to_string()
                .contains(&format!("runs as uid {OTHER_UID}")),
            "{err}"
        );
        assert_eq!(kid.line(), "CONNECTED");
        assert_eq!(kid.line(), "RECV Ok(None)");
    });
}

#[test]
fn a_client_refuses_a_server_run_by_another_user() {
    if !can_switch_users("a_client_refuses_a_server_run_by_another_user") {
        return;
    }
    watchdog(LIMIT, || {
        // A directory the other user may write to: the squatter binds there.
        let dir = TempDir::new("sec-squat", 0o777);
        let path = dir.sock("svc.sock");
        let addr = format!("unix:{}", path.display());
        let mut squatter = child_as(Some(&[]), "serve", &path.display().to_string(), &[]);
        assert_eq!(squatter.line(), "SERVING");
        assert_eq!(std::fs::metadata(&path).unwrap().uid(), OTHER_UID);

        // Without the check the squatter is reached; with it, refused.
        assert!(Stream::connect(addr.as_str()).is_ok());
        let err = ConnectOptions::new()
            .server_user_is_current()
            .connect(addr.as_str())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "server_user_is_current: the server on {addr} runs as uid {OTHER_UID} (pid {})",
                squatter.pid()
            )),
            "{text}"
        );
        let err = ConnectOptions::new()
            .require_server_user(UserId::Uid(0))
            .connect_message(addr.as_str())
            .unwrap_err();
        // A byte-stream server: the message connect fails on the kind first.
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        // Naming the squatter's uid admits it, so the check reads the real owner.
        let s = ConnectOptions::new()
            .require_server_user(UserId::Uid(OTHER_UID))
            .connect(addr.as_str())
            .unwrap();
        assert_eq!(s.peer_credentials().unwrap().pid, Some(squatter.pid()));

        // And bind refuses to take over the live name.
        let err = Listener::bind(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    });
}

#[test]
fn a_runtime_directory_of_another_owner_or_writable_by_others_is_refused() {
    if !can_switch_users("a_runtime_directory_of_another_owner_or_writable_by_others_is_refused") {
        return;
    }
    watchdog(LIMIT, || {
        let name = unique_name("sec-dir");
        // Another user made `ipckit/` first (a squatter in a shared directory).
        let xdg = TempDir::new("sec-xdg-owner", 0o755);
        let dir = xdg.0.join("ipckit");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&dir, Some(OTHER_UID), Some(OTHER_GID)).unwrap();
        let mut kid = child_as(None, "bind_portable", &name, &[("XDG_RUNTIME_DIR", &xdg.0)]);
        let line = kid.line();
        assert!(line.starts_with("REFUSED PermissionDenied"), "{line}");
        assert!(line.contains(&dir.display().to_string()), "{line}");
        assert!(
            line.contains(&format!("owned by uid {OTHER_UID}, not by uid 0")),
            "{line}"
        );
        drop(kid);

        // Ours, but group-writable: refused, not silently tightened.
        std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
        let mut kid = child_as(None, "bind_portable", &name, &[("XDG_RUNTIME_DIR", &xdg.0)]);
        let line = kid.line();
        assert!(
            line.contains("writable by its group or by others (mode 0o770)"),
            "{line}"
        );
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o770);
        drop(kid);

        // Ours and only readable by others: tightened to 0700 and used.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut kid = child_as(None, "bind_portable", &name, &[("XDG_RUNTIME_DIR", &xdg.0)]);
        assert_eq!(kid.line(), "BOUND");
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);

        // A symlink in its place is refused too.
        std::fs::remove_dir_all(&dir).unwrap();
        let target = TempDir::new("sec-xdg-target", 0o700);
        std::os::unix::fs::symlink(&target.0, &dir).unwrap();
        let mut kid = child_as(None, "bind_portable", &name, &[("XDG_RUNTIME_DIR", &xdg.0)]);
        let line = kid.line();
        assert!(line.starts_with("REFUSED PermissionDenied"), "{line}");
        assert!(
            line.contains("it is not a directory but a symlink"),
            "{line}"
        );
    });
}

#[test]
fn modes_are_validated_and_refused_where_they_cannot_apply() {
    watchdog(LIMIT, || {
        let dir = TempDir::new("sec-mode", 0o700);
        let addr = format!("unix:{}", dir.sock("m.sock").display());
        let err = ListenerOptions::new()
            .mode(0o460)
            .bind(addr.as_str())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        assert!(
            err.to_string().contains("owner must keep read and write"),
            "{err}"
        );
        let err = ListenerOptions::new()
            .mode(0o2660)
            .bind(addr.as_str())
            .unwrap_err();
        assert!(err.to_string().contains("only permission bits"), "{err}");
        // Nothing was created by a refused bind.
        assert!(!dir.sock("m.sock").exists());

        let err = ListenerOptions::new()
            .mode(0o660)
            .bind(format!("@{}", unique_name("sec-abs")))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        assert!(
            format!("{err:#}").contains("abstract socket has no file"),
            "{err:#}"
        );

        // The mode applies to message and datagram sockets too.
        let mpath = dir.sock("msg.sock");
        let _m = ListenerOptions::new()
            .mode(0o660)
            .bind_message(format!("unix:{}", mpath.display()))
            .unwrap();
        assert_eq!(std::fs::metadata(&mpath).unwrap().mode() & 0o777, 0o660);
        let dpath = dir.sock("dgram.sock");
        let _d = ListenerOptions::new()
            .mode(0o666)
            .bind_mailslot(format!("unix:{}", dpath.display()))
            .unwrap();
        assert_eq!(std::fs::metadata(&dpath).unwrap().mode() & 0o777, 0o666);
        let dpath2 = dir.sock("dgram2.sock");
        let _d2 = ipckit::MailslotReceiver::bind(format!("unix:{}", dpath2.display())).unwrap();
        assert_eq!(std::fs::metadata(&dpath2).unwrap().mode() & 0o777, 0o600);

        // A mode where there is no socket file is refused, naming the option
        // and the kind, not ignored (the Windows options are not even there:
        // `ipckit::os::windows` does not exist on Unix).
        let tcp = ListenerOptions::new()
            .mode(0o660)
            .bind("tcp:127.0.0.1:0")
            .unwrap_err();
        assert_eq!(tcp.kind(), ErrorKind::InvalidOption);
        assert!(
            tcp.to_string().contains("ListenerOptionsExt::mode"),
            "{tcp}"
        );
        assert!(tcp.to_string().contains("a byte stream over TCP"), "{tcp}");
        let shm = ListenerOptions::new()
            .mode(0o660)
            .bind_shm(format!("shm:{}", unique_name("sec-shm-mode")))
            .unwrap_err();
        assert!(shm.to_string().contains("a shared-memory channel"), "{shm}");
        let dpath3 = dir.sock("dgram3.sock");
        let backlog = ListenerOptions::new()
            .backlog(8)
            .bind_mailslot(format!("unix:{}", dpath3.display()))
            .unwrap_err();
        assert!(backlog.to_string().contains("backlog"), "{backlog}");
        assert!(
            backlog.to_string().contains("a mailslot receiver"),
            "{backlog}"
        );
        assert!(!dpath3.exists(), "a refused bind creates nothing");
    });
}

#[test]
fn same_user_peers_pass_every_check_on_every_stream_kind() {
    watchdog(LIMIT, || {
        let me = UserId::current().unwrap();
        let name = format!("pipe:{}", unique_name("sec-same"));
        let mut opts = ListenerOptions::new();
        opts.current_user_only(true);
        let listener = opts.bind(name.as_str()).unwrap();
        let mut copts = ConnectOptions::new();
        copts.require_server_user(me.clone());
        let client = copts.connect(name.as_str()).unwrap();
        let served = listener.accept().unwrap();
        let c = client.peer_credentials().unwrap();
        let s = served.peer_credentials().unwrap();
        assert_eq!(c.pid, Some(std::process::id()));
        assert_eq!(s.pid, Some(std::process::id()));
        assert_eq!(c.user(), Some(me.clone()));
        assert_eq!(s.user(), Some(me.clone()));

        let mname = format!("pipe:{}", unique_name("sec-same-msg"));
        let ml: MessageListener = opts.bind_message(mname.as_str()).unwrap();
        let mc = copts.connect_message(mname.as_str()).unwrap();
        let ms = ml.accept().unwrap();
        assert_eq!(mc.peer_credentials().unwrap().user(), Some(me.clone()));
        assert_eq!(ms.peer_credentials().unwrap().pid, Some(std::process::id()));

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let aname = format!("pipe:{}", unique_name("sec-same-async"));
            let al = opts.bind_tokio(aname.as_str()).unwrap();
            let (ac, asv) = tokio::join!(copts.connect_tokio(aname.as_str()), al.accept());
            let (ac, asv) = (ac.unwrap(), asv.unwrap());
            assert_eq!(ac.peer_credentials().unwrap().user(), Some(me.clone()));
            assert_eq!(
                asv.peer_credentials().unwrap().pid,
                Some(std::process::id())
            );

            let amname = format!("pipe:{}", unique_name("sec-same-amsg"));
            let aml = opts.bind_message_tokio(amname.as_str()).unwrap();
            let (amc, ams) =
                tokio::join!(copts.connect_message_tokio(amname.as_str()), aml.accept());
            assert_eq!(
                amc.unwrap().peer_credentials().unwrap().user(),
                Some(me.clone())
            );
            assert_eq!(ams.unwrap().peer_credentials().unwrap().user(), Some(me));
        });
    });
}

/// Polls `fut` once and says what it returned.
#[cfg(feature = "tonic")]
async fn poll_once<F: std::future::Future>(
    mut fut: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await
}

#[cfg(feature = "tonic")]
#[test]
fn a_refused_client_does_not_pause_the_tonic_incoming() {
    use tokio_stream::StreamExt;
    if !can_switch_users("a_refused_client_does_not_pause_the_tonic_incoming") {
        return;
    }
    watchdog(LIMIT, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let addr = format!("@{}", unique_name("sec-incoming"));
            let listener = ListenerOptions::new()
                .current_user_only(true)
                .bind_tokio(addr.as_str())
                .unwrap();
            let mut incoming = ipckit::tokio::tonic::Incoming::new(listener);
            let mut kid = child_as(Some(&[]), "connect", &addr, &[]);
            assert_eq!(kid.line(), "CONNECTED");
            let err = incoming.next().await.unwrap().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
            assert!(err.to_string().contains("current_user_only"), "{err}");
            // A client of this user, already queued: the very next poll takes
            // it (after a listener failure it would wait 50 ms first). No
            // timing here: the queued connection is there before the poll, and
            // the listener is still marked readable by the accept just done.
            let _client = Stream::connect(addr.as_str()).unwrap();
            match poll_once(std::pin::pin!(incoming.next())).await {
                std::task::Poll::Ready(Some(Ok(served))) => {
                    assert_eq!(served.peer_credentials().unwrap().uid, Some(0));
                }
                std::task::Poll::Ready(other) => panic!("{other:?}"),
                std::task::Poll::Pending => {
                    panic!("the incoming paused after refusing another user's client")
                }
            }
        });
    });
}
