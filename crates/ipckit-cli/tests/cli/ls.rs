//! `ipckit ls`: live endpoints and their owners, stale socket files.

use crate::support::*;
use crate::util::{unique_name, watchdog};

/// The entries of `ipckit ls --json`, checked to be an array of objects with
/// the documented fields.
#[cfg(target_os = "linux")]
fn ls_json() -> Vec<serde_json::Value> {
    let (status, stdout, stderr) = run(&["ls", "--json"]);
    assert!(status.success(), "{status}: {stderr}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("ls --json is not a JSON array ({e}): {stdout}"));
    for entry in &list {
        for field in ["kind", "address", "state", "pid", "process", "path"] {
            assert!(entry.get(field).is_some(), "{field} missing in {entry}");
        }
    }
    list
}

/// The entry of `list` whose address is `addr`.
#[track_caller]
fn entry<'a>(list: &'a [serde_json::Value], addr: &str) -> &'a serde_json::Value {
    list.iter()
        .find(|e| e["address"] == addr)
        .unwrap_or_else(|| panic!("{addr} is not listed: {list:?}"))
}

/// `ipckit ls` shows a live listener of each kind with its owning process, and
/// marks as stale a socket file whose listener is gone.
#[cfg(target_os = "linux")]
#[test]
fn ls_shows_live_endpoints_with_their_owner_and_stale_socket_files() {
    let stream = format!("pipe:{}", unique_name("cli-ls-stream"));
    let message = format!("@{}", unique_name("cli-ls-msg"));
    let shm = format!("shm:{}", unique_name("cli-ls-shm"));
    let slot = format!("mailslot:{}", unique_name("cli-ls-slot"));
    let kids = Children::new();
    kids.clean_up(&stream);
    kids.clean_up(&slot);
    kids.clean_up(&shm);
    let mut s = kids.ipckit(&["-v", "listen", "--echo", &stream]);
    let mut m = kids.ipckit(&["-v", "listen", "-m", "--echo", &message]);
    let mut c = kids.ipckit(&["-v", "listen", &shm]);
    let mut r = kids.ipckit(&["-v", "recv", &slot]);
    let pids = [&s, &m, &c, &r].map(|p| p.with_child(|c| c.id()));
    // Kept until the end: dropping them would close the receiver's stderr,
    // and its second `-v` line (the socket file) would then kill it (EPIPE).
    let _servers = watchdog(limit(), move || {
        s.listening_on();
        m.listening_on();
        c.listening_on();
        r.receiving();
        (s, m, c, r)
    });

    // A socket file nobody listens on: std's listener leaves its file behind.
    let dir = ipckit::platform::runtime_dir().expect("a runtime directory on Unix");
    let stale_name = unique_name("cli-ls-stale");
    let stale_path = dir.join(format!("{stale_name}.sock"));
    drop(std::os::unix::net::UnixListener::bind(&stale_path).expect("bind the stale socket"));
    let stale = format!("pipe:{stale_name}");
    kids.clean_up(&stale);

    let list = watchdog(limit(), ls_json);
    for (addr, kind, state, pid) in [
        (&stream, "stream", "listening", pids[0]),
        (&message, "message", "listening", pids[1]),
        (&shm, "shm-channel", "listening", pids[2]),
        (&slot, "mailslot", "bound", pids[3]),
    ] {
        let e = entry(&list, addr);
        assert_eq!(e["kind"], kind, "{e}");
        assert_eq!(e["state"], state, "{e}");
        assert_eq!(e["pid"], pid, "{e}");
        assert_eq!(e["process"], "ipckit", "{e}");
    }
    let e = entry(&list, &stale);
    assert_eq!(e["state"], "stale", "{e}");
    assert_eq!(e["pid"], serde_json::Value::Null, "{e}");
    assert_eq!(e["path"], stale_path.display().to_string(), "{e}");

    // The table names the same endpoints, one line each.
    let (status, table, stderr) = run(&["ls"]);
    assert!(status.success(), "{status}: {stderr}");
    assert!(table.starts_with("KIND "), "{table}");
    for addr in [&stream, &message, &shm, &slot, &stale] {
        let line = table
            .lines()
            .find(|l| l.ends_with(addr.as_str()))
            .unwrap_or_else(|| panic!("{addr} not in the table: {table}"));
        if addr == &stale {
            assert!(line.contains(" stale "), "{line}");
        }
    }
    let _ = std::fs::remove_file(&stale_path);
}

/// Windows: `ipckit ls` lists the pipes of `\\.\pipe\`, among them a listener's,
/// and the members of ipckit's broadcast groups. Under Wine, which cannot
/// list the pipe file system, it still lists the members, then fails with
/// one line naming what it could not list.
#[cfg(windows)]
#[test]
fn ls_lists_the_pipes_and_the_group_members() {
    let addr = format!("pipe:{}", unique_name("cli-ls-pipe"));
    let group = unique_name("cli-ls-group");
    let kids = Children::new();
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let mut member = kids.ipckit(&["-v", "recv", "--broadcast", &group]);
    kids.clean_up_group(&group);
    let pid = member.with_child(|c| c.id());
    let _ready = watchdog(limit(), move || {
        server.listening_on();
        member.receiving();
        (server, member)
    });
    let (status, stdout, stderr) = watchdog(limit(), || run(&["ls", "--json"]));
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("ls --json is not a JSON array ({e}): {stdout}"));
    // Probed: Wine 8's FindFirstFileW on \\.\pipe\* fails with
    // ERROR_BAD_DEV_TYPE (66): its pipe file system cannot be listed.
    match ipckit::platform::pipe_names() {
        Ok(_) => {
            assert!(status.success(), "{status}: {stderr}");
            assert_eq!(entry(&list, &addr)["kind"], "pipe");
        }
        Err(err) if ipckit::platform::is_wine() && err.raw_os_error() == Some(66) => {
            eprintln!(r"under Wine listing \\.\pipe\ fails ({err}); the rest is checked");
            assert_eq!(status.code(), Some(1), "{stderr}");
            assert_one_line_error(&stderr, &[r"\\.\pipe\", "FindFirstFileW", "incomplete"]);
        }
        Err(err) => panic!("pipe_names: {err}"),
    }
    assert_eq!(entry(&list, &format!("group:{group}"))["kind"], "group");
    let e = entry(&list, &format!("group:{group}/{pid}-0"));
    assert_eq!(e["kind"], "member", "{e}");
    assert_eq!(e["state"], "live", "{e}");
    assert_eq!(e["pid"], pid, "{e}");
}
