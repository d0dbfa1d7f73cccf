//! Unix-only behaviour: socket files, stale files, abstract names, permissions.
#![cfg(unix)]

mod util;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use ipckit::os::unix::ListenerOptionsExt;
use ipckit::{ErrorKind, Listener, ListenerOptions, Stream};
use util::{unique_name, watchdog};

fn temp_sock(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.sock", unique_name(tag)))
}

#[test]
fn portable_names_live_in_a_private_directory() {
    watchdog(Duration::from_secs(10), || {
        let name = unique_name("priv");
        let _l = Listener::bind(format!("pipe:{name}")).unwrap();
        let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d).join("ipckit"),
            _ => PathBuf::from(format!("/tmp/ipckit-{}", rustix_uid())),
        };
        let file = dir.join(format!("{name}.sock"));
        let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        let file_mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700, "{}", dir.display());
        assert_eq!(file_mode, 0o600, "{}", file.display());
    });
}

fn rustix_uid() -> u32 {
    // The uid of this process, read the way a user would check it.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_stale_socket_file_is_replaced() {
    watchdog(Duration::from_secs(10), || {
        let path = temp_sock("stale");
        drop(UnixListener::bind(&path).unwrap()); // leaves the file, nobody listening
        assert!(path.exists());
        let addr = format!("unix:{}", path.display());
        let listener = Listener::bind(addr.as_str()).unwrap();
        let t = thread::spawn(move || listener.accept().unwrap().write_all(b"fresh"));
        let mut got = String::new();
        Stream::connect(addr.as_str())
            .unwrap()
            .read_to_string(&mut got)
            .unwrap();
        t.join().unwrap().unwrap();
        assert_eq!(got, "fresh");
    });
}

#[test]
fn stale_files_are_kept_when_replace_stale_is_off() {
    let path = temp_sock("keep");
    drop(UnixListener::bind(&path).unwrap());
    let err = ListenerOptions::new()
        .replace_stale(false)
        .bind(format!("unix:{}", path.display()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_live_listener_is_never_replaced() {
    let path = temp_sock("live");
    let other = UnixListener::bind(&path).unwrap();
    let addr = format!("unix:{}", path.display());
    let err = Listener::bind(addr.as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr), "{err}");
    assert!(path.exists(), "the live listener's file is untouched");
    drop(other);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let path = temp_sock("plain");
    std::fs::write(&path, b"data").unwrap();
    let err = Listener::bind(format!("unix:{}", path.display())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(format!("{err:#}").contains("not a socket"), "{err:#}");
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn drop_removes_only_its_own_file() {
    let path = temp_sock("own");
    let addr = format!("unix:{}", path.display());
    let first = Listener::bind(addr.as_str()).unwrap();
    drop(first);
    assert!(!path.exists(), "drop removed its file");

    let old = Listener::bind(addr.as_str()).unwrap();
    std::fs::remove_file(&path).unwrap(); // someone replaces the file...
    let newer = UnixListener::bind(&path).unwrap();
    drop(old); // ...and the old listener must not delete the newer file
    assert!(path.exists());
    assert!(UnixStream::connect(&path).is_ok());
    drop(newer);
    std::fs::remove_file(path).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn abstract_names_round_trip_and_leave_no_file() {
    watchdog(Duration::from_secs(10), || {
        let addr = format!("@{}", unique_name("abs"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let t = thread::spawn(move || {
            let mut s = listener.accept().unwrap();
            let mut buf = [0; 3];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let mut c = Stream::connect(addr.as_str()).unwrap();
        c.write_all(b"abc").unwrap();
        let mut back = [0; 3];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"abc");
        t.join().unwrap();
    });
}

#[test]
fn python_socket_client_talks_to_an_ipckit_listener() {
    watchdog(Duration::from_secs(20), || {
        let path = temp_sock("py");
        let listener = Listener::bind(format!("unix:{}", path.display())).unwrap();
        let server = thread::spawn(move || {
            let mut s = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0; 64];
            while !got.ends_with(b"\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "python closed early");
                got.extend_from_slice(&buf[..n]);
            }
            got.reverse();
            s.write_all(&got[1..]).unwrap();
            got
        });
        let script = "import socket,sys\n\
            s=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM)\n\
            s.connect(sys.argv[1])\n\
            s.sendall(b'hello from python\\n')\n\
            data=b''\n\
            while True:\n\
            \x20   c=s.recv(64)\n\
            \x20   if not c: break\n\
            \x20   data+=c\n\
            sys.stdout.write(data.decode())\n";
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&path)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.join().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "nohtyp morf olleh");
    });
}
