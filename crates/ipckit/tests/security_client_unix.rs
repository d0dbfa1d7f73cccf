//! A client trusts no endpoint it has not checked (Unix): a runtime directory
//! squatted by another user or replaced by a symlink, a server of another user
//! behind a portable name, and shared memory another user made or can write.
//! Processes of another user are this program re-run under `setpriv` as uid
//! 65534 (`client_child_entry`); those tests need root and `setpriv`, and
//! without them print why and return.
#![cfg(unix)]

mod util;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ipckit::os::unix::ListenerOptionsExt;
use ipckit::shm::{OpenOptions, SharedMemory, ShmChannel, ShmListener};
use ipckit::{
    ConnectOptions, ErrorKind, Listener, ListenerOptions, MailslotSender, MessageStream, Stream,
};
use util::users::{self, OTHER_GID, OTHER_UID, TempDir, can_switch_users};
use util::{Kid, unique_name, watchdog};

/// What a squatter sends itself last (see `client_child_entry`).
const SENTINEL: &[u8] = b"\0squatter-sentinel\0";

const LIMIT: Duration = Duration::from_secs(60);

/// Not a test: the entry point of this program when a test re-runs it as a
/// child.
#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn client_child_entry() {
    let Some((role, arg)) = util::child_role() else {
        return;
    };
    match role.as_str() {
        // A squatter: serve byte streams (or datagrams) on the socket file
        // `arg`, open to everybody, count what arrives, and report it when
        // stdin closes.
        "squat_stream" | "squat_mailslot" => {
            let addr = format!("unix:{arg}");
            let mut opts = ListenerOptions::new();
            opts.mode(0o666);
            let (conns, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let (c, b) = (conns.clone(), bytes.clone());
            // The squatter's own last message, SENTINEL, is counted by no one:
            // once it is seen, everything sent before it has been counted
            // (connections are accepted, and datagrams received, in order).
            let (seen, sentinel_seen) = std::sync::mpsc::channel();
            if role == "squat_stream" {
                let listener = opts.bind(addr.as_str()).unwrap();
                std::thread::spawn(move || {
                    while let Ok(mut s) = listener.accept() {
                        let mut got = Vec::new();
                        let _ = s.read_to_end(&mut got);
                        if got == SENTINEL {
                            let _ = seen.send(());
                            continue;
                        }
                        c.fetch_add(1, Ordering::SeqCst);
                        b.fetch_add(got.len(), Ordering::SeqCst);
                    }
                });
            } else {
                let receiver = opts.bind_mailslot(addr.as_str()).unwrap();
                std::thread::spawn(move || {
                    while let Ok(msg) = receiver.recv() {
                        if msg == SENTINEL {
                            let _ = seen.send(());
                            continue;
                        }
                        c.fetch_add(1, Ordering::SeqCst);
                        b.fetch_add(msg.len(), Ordering::SeqCst);
                    }
                });
            }
            println!("SERVING");
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            // The victim is done (the parent closed stdin after its report);
            // send the sentinel and wait until it was counted past.
            if role == "squat_stream" {
                let mut s = ipckit::Stream::connect(addr.as_str()).unwrap();
                s.write_all(SENTINEL).unwrap();
            } else {
                ipckit::MailslotSender::connect(addr.as_str())
                    .unwrap()
                    .send(SENTINEL)
                    .unwrap();
            }
            sentinel_seen
                .recv_timeout(Duration::from_secs(30))
                .expect("the squatter saw its own sentinel");
            println!(
                "GOT {} {}",
                conns.load(Ordering::SeqCst),
                bytes.load(Ordering::SeqCst)
            );
        }
        // A victim: reach `arg` with every client kind in turn (with the
        // environment the parent set), sending "secret" where it connects.
        "clients" => {
            let kinds: [(&str, ipckit::Result<()>); 4] = [
                (
                    "stream",
                    Stream::connect(arg.as_str()).map(|mut s| {
                        let _ = s.write_all(b"secret");
                    }),
                ),
                (
                    "message",
                    MessageStream::connect(arg.as_str()).and_then(|m| m.send(b"secret")),
                ),
                (
                    "mailslot",
                    MailslotSender::connect(format!("mailslot:{}", bare(&arg)))
                        .and_then(|m| m.send(b"secret")),
                ),
                (
                    "broadcast",
                    MailslotSender::broadcast(bare(&arg), b"secret").map(drop),
                ),
            ];
            for (kind, result) in kinds {
                match result {
                    Ok(()) => println!("SENT {kind}"),
                    Err(e) => println!("REFUSED {kind} {:?} {e:#}", e.kind()),
                }
            }
            #[cfg(feature = "tokio")]
            {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                match rt.block_on(ipckit::tokio::Stream::connect(arg.as_str())) {
                    Ok(_) => println!("SENT tokio"),
                    Err(e) => println!("REFUSED tokio {:?} {e:#}", e.kind()),
                }
            }
        }
        // A victim with the default options or with `server_user_any`:
        // connect to `arg` and send "secret".
        "connect" | "connect_any" => {
            let mut opts = ConnectOptions::new();
            if role == "connect_any" {
                opts.server_user_any();
            }
            match opts.connect(arg.as_str()).map(|mut s| {
                let _ = s.write_all(b"secret");
            }) {
                Ok(()) => println!("SENT"),
                Err(e) => println!("REFUSED {:?} {e:#}", e.kind()),
            }
        }
        // Where portable names live for this process.
        "runtime_dir" => println!("DIR {}", ipckit::platform::runtime_dir().unwrap().display()),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// `pipe:NAME` without its scheme.
fn bare(addr: &str) -> &str {
    addr.strip_prefix("pipe:").unwrap_or(addr)
}

fn child_as(user: Option<&[u32]>, role: &str, arg: &str, env: &[(&str, &Path)]) -> Kid {
    users::child_as("client_child_entry", user, role, arg, env)
}

/// The victim's lines, one per client kind.
fn client_lines(kid: &mut Kid) -> Vec<String> {
    let n = if cfg!(feature = "tokio") { 5 } else { 4 };
    (0..n).map(|_| kid.line()).collect()
}

#[test]
fn clients_refuse_a_runtime_directory_squatted_by_another_user() {
    if !can_switch_users("clients_refuse_a_runtime_directory_squatted_by_another_user") {
        return;
    }
    watchdog(LIMIT, || {
        // The squatter made `ipckit/` in the victim's runtime directory first,
        // mode 0755, and serves the victim's names in it.
        let xdg = TempDir::new("x", 0o755);
        let dir = xdg.0.join("ipckit");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&dir, Some(OTHER_UID), Some(OTHER_GID)).unwrap();
        let name = unique_name("c");
        let group = dir.join(format!("{name}.group"));
        std::fs::create_dir(&group).unwrap();
        std::os::unix::fs::chown(&group, Some(OTHER_UID), Some(OTHER_GID)).unwrap();
        let sock = dir.join(format!("{name}.sock"));
        let dgram = dir.join(format!("{name}.dgram"));
        let member = group.join("1-0.dgram");
        let mut squatters = [
            child_as(Some(&[]), "squat_stream", &sock.display().to_string(), &[]),
            child_as(
                Some(&[]),
                "squat_mailslot",
                &dgram.display().to_string(),
                &[],
            ),
            child_as(
                Some(&[]),
                "squat_mailslot",
                &member.display().to_string(),
                &[],
            ),
        ];
        for squatter in &mut squatters {
            assert_eq!(squatter.line(), "SERVING");
        }

        let addr = format!("pipe:{name}");
        let mut victim = child_as(None, "clients", &addr, &[("XDG_RUNTIME_DIR", &xdg.0)]);
        for line in client_lines(&mut victim) {
            assert!(line.starts_with("REFUSED "), "{line}");
            assert!(line.contains(" PermissionDenied "), "{line}");
            assert!(
                line.contains(&format!(
                    "refusing ipckit's runtime directory {}: it is owned by uid {OTHER_UID}, \
                     not by uid 0 (mode 0o755)",
                    dir.display()
                )),
                "{line}"
            );
        }
        // Not a connection, not a byte reached the squatter.
        for squatter in &mut squatters {
            squatter.close_stdin();
            assert_eq!(squatter.line(), "GOT 0 0");
        }
    });
}

#[test]
fn clients_refuse_a_symlinked_runtime_directory_and_a_missing_one_is_not_found() {
    watchdog(LIMIT, || {
        // Our own server, in a directory reached through a symlink that
        // stands in for `ipckit/`: refused, though the server is ours.
        let xdg = TempDir::new("l", 0o700);
        let target = TempDir::new("sec-cl-target", 0o700);
        let name = unique_name("n");
        let listener = Listener::bind(format!(
            "unix:{}",
            target.sock(&format!("{name}.sock")).display()
        ))
        .unwrap();
        std::os::unix::fs::symlink(&target.0, xdg.0.join("ipckit")).unwrap();
        let addr = format!("pipe:{name}");
        let mut victim = child_as(None, "clients", &addr, &[("XDG_RUNTIME_DIR", &xdg.0)]);
        for line in client_lines(&mut victim) {
            assert!(line.starts_with("REFUSED "), "{line}");
            assert!(line.contains(" PermissionDenied "), "{line}");
            assert!(
                line.contains("it is not a directory but a symlink"),
                "{line}"
            );
        }
        drop(listener);

        // No directory at all: nobody listens (NotFound); a broadcast reaches
        // nobody; nothing is created.
        std::fs::remove_file(xdg.0.join("ipckit")).unwrap();
        let mut victim = child_as(None, "clients", &addr, &[("XDG_RUNTIME_DIR", &xdg.0)]);
        let lines = client_lines(&mut victim);
        for line in &lines {
            if line.starts_with("REFUSED broadcast") || line == "SENT broadcast" {
                assert_eq!(line, "SENT broadcast");
                continue;
            }
            assert!(line.contains(" NotFound "), "{line}");
        }
        assert!(!xdg.0.join("ipckit").exists());
    });
}

#[test]
fn a_portable_name_served_by_another_user_is_refused_unless_any_user_is_allowed() {
    if !can_switch_users(
        "a_portable_name_served_by_another_user_is_refused_unless_any_user_is_allowed",
    ) {
        return;
    }
    watchdog(LIMIT, || {
        // `dotnet:NAME` lives in the shared temporary directory, where anyone
        // may take the name first: here another user did.
        let tmp = TempDir::new("sec-cl-tmp", 0o777);
        let name = unique_name("sec-cl-dn");
        let sock = tmp.0.join(format!("CoreFxPipe_{name}"));
        let mut squatter = child_as(Some(&[]), "squat_stream", &sock.display().to_string(), &[]);
        assert_eq!(squatter.line(), "SERVING");
        let addr = format!("dotnet:{name}");
        let env = [("TMPDIR", tmp.0.as_path())];

        let mut victim = child_as(None, "connect", &addr, &env);
        let line = victim.line();
        assert!(line.starts_with("REFUSED PermissionDenied"), "{line}");
        assert!(
            line.contains(&format!(
                "the server on {addr} runs as uid {OTHER_UID} (pid {}), not as uid 0",
                squatter.pid()
            )),
            "{line}"
        );
        assert!(line.contains("server_user_any"), "{line}");
        drop(victim);
        // The explicit path is not a portable name: reached, as before.
        let mut victim = child_as(None, "connect", &format!("unix:{}", sock.display()), &env);
        assert_eq!(victim.line(), "SENT");
        drop(victim);
        // The opt-out reaches the other user's server.
        let mut victim = child_as(None, "connect_any", &addr, &env);
        assert_eq!(victim.line(), "SENT");
        drop(victim);

        squatter.close_stdin();
        // Two connections; only those that were let through sent their bytes.
        assert_eq!(squatter.line(), "GOT 3 12");
    });
}

#[test]
fn the_runtime_directory_is_the_effective_users() {
    if !can_switch_users("the_runtime_directory_is_the_effective_users") {
        return;
    }
    watchdog(LIMIT, || {
        // Real uid 0, effective uid OTHER_UID: the directory is found for the
        // user it is checked against (the effective one), not /tmp/ipckit-0.
        let prefix: Vec<String> = [
            "setpriv",
            "--ruid=0",
            &format!("--euid={OTHER_UID}"),
            &format!("--regid={OTHER_GID}"),
            "--clear-groups",
        ]
        .map(str::to_owned)
        .to_vec();
        let mut cmd = util::this_test_as_child(&prefix, "client_child_entry", "runtime_dir", "");
        cmd.env_remove("XDG_RUNTIME_DIR");
        let mut kid = Kid::spawn(cmd);
        assert_eq!(kid.line(), format!("DIR /tmp/ipckit-{OTHER_UID}"));
    });
}

/// The file behind region `name` (Linux keeps POSIX shared memory in /dev/shm).
fn shm_file(name: &str) -> std::path::PathBuf {
    Path::new("/dev/shm").join(name)
}

#[test]
fn shared_memory_of_another_user_or_writable_by_others_is_refused_unless_allowed() {
    if !Path::new("/dev/shm").is_dir() {
        eprintln!("SKIPPED: POSIX shared memory is not in /dev/shm here");
        return;
    }
    watchdog(LIMIT, || {
        let me = rustix_uid();
        // A region of ours that others can write to.
        let name = unique_name("sec-cl-shm");
        let region = SharedMemory::create(&name, 4096).unwrap();
        let file = shm_file(&name);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = SharedMemory::open(&name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "refusing shm:{name}: it is owned by uid {me} with mode 0o666, so its group or \
                 others can write to it"
            )),
            "{text}"
        );
        assert!(text.contains("allow_foreign"), "{text}");
        let opened = OpenOptions::new().allow_foreign(true).open(&name).unwrap();
        opened.write_at(0, b"x").unwrap();
        // Owner-only again: opened by default.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        drop(SharedMemory::open(&name).unwrap());
        if me == 0 {
            // Another user's region, owner-only: refused though root can open it.
            std::os::unix::fs::chown(&file, Some(OTHER_UID), Some(OTHER_GID)).unwrap();
            let text = SharedMemory::open(&name).unwrap_err().to_string();
            assert!(
                text.contains(&format!("it is owned by uid {OTHER_UID} with mode 0o600")),
                "{text}"
            );
        }
        drop(region);

        // A channel whose region others can write to: refused, unless any
        // server is accepted.
        let chan = unique_name("sec-cl-ch");
        let _listener = ShmListener::bind(format!("shm:{chan}").as_str()).unwrap();
        std::fs::set_permissions(shm_file(&chan), std::fs::Permissions::from_mode(0o622)).unwrap();
        let err = ShmChannel::connect(format!("shm:{chan}").as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(
            err.to_string().contains(&format!(
                "refusing shm:{chan}: it is owned by uid {me} with mode 0o622"
            )),
            "{err}"
        );
        ConnectOptions::new()
            .server_user_any()
            .connect_shm(format!("shm:{chan}").as_str())
            .unwrap();
    });
}

/// This process's effective uid, as the owner of what it creates.
fn rustix_uid() -> u32 {
    let probe = TempDir::new("sec-cl-uid", 0o700);
    std::fs::metadata(&probe.0).unwrap().uid()
}
