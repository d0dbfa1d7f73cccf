//! `ipckit connect`, `call` and `send` trust no endpoint they have not checked
//! (Unix): a runtime directory squatted by another user, a server of another
//! user behind a portable name, and `--server-user` to name or allow another
//! user. The other user's processes run under `setpriv` as uid 65534; without
//! root and `setpriv` the tests print why and return.
#![cfg(unix)]

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use util::users::{OTHER_GID, OTHER_UID, TempDir, can_switch_users};
use util::{unique_name, watchdog};

const BIN: &str = env!("CARGO_BIN_EXE_ipckit");
const LIMIT: Duration = Duration::from_secs(60);

/// `ipckit ARGS` run as the other user, killed and reaped when dropped.
struct Squatter {
    child: Child,
}

impl Squatter {
    /// Starts `ipckit -v ARGS` as the other user and waits for its first line
    /// on stderr (where it says it listens or receives).
    fn start(args: &[&str]) -> Squatter {
        let mut child = Command::new("setpriv")
            .args([
                &format!("--reuid={OTHER_UID}"),
                &format!("--regid={OTHER_GID}"),
                "--clear-groups",
                "--",
                BIN,
                "-v",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ipckit under setpriv");
        let mut line = String::new();
        BufReader::new(child.stderr.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening on ") || line.starts_with("receiving on "),
            "{line:?}"
        );
        Squatter { child }
    }

    /// Kills it and returns everything it printed on stdout (what it received).
    fn received(mut self) -> String {
        let _ = self.child.kill();
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ipckit ARGS` with `env` and `input` on stdin; (status, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &Path)], input: &[u8]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start ipckit");
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, input).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[track_caller]
fn assert_refused(result: &(ExitStatus, String, String), needles: &[&str]) {
    let (status, _, stderr) = result;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    }
}

#[test]
fn connect_call_and_send_refuse_a_squatted_runtime_directory() {
    if !can_switch_users("connect_call_and_send_refuse_a_squatted_runtime_directory") {
        return;
    }
    watchdog(LIMIT, || {
        let xdg = TempDir::new("cli-sec-xdg", 0o755);
        let dir = xdg.0.join("ipckit");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&dir, Some(OTHER_UID), Some(OTHER_GID)).unwrap();
        let name = unique_name("cli-sec");
        let sock = format!("unix:{}/{name}.sock", dir.display());
        let rpc = format!("unix:{}/{name}-rpc.sock", dir.display());
        let dgram = format!("unix:{}/{name}.dgram", dir.display());
        let stream = Squatter::start(&["listen", &sock]);
        let server = Squatter::start(&["serve-demo", &rpc]);
        let receiver = Squatter::start(&["recv", &dgram]);
        let env = [("XDG_RUNTIME_DIR", xdg.0.as_path())];
        let rule = format!(
            "refusing ipckit's runtime directory {}: it is owned by uid {OTHER_UID}, not by uid 0",
            dir.display()
        );

        let pipe = format!("pipe:{name}");
        assert_refused(&run(&["connect", &pipe], &env, b"secret\n"), &[&rule]);
        let rpc_name = format!("pipe:{name}-rpc");
        assert_refused(
            &run(&["call", &rpc_name, "echo", "[1]"], &env, b""),
            &[&rule],
        );
        let slot = format!("mailslot:{name}");
        assert_refused(&run(&["send", &slot, "secret"], &env, b""), &[&rule]);
        // Allowing any server user does not open the directory up.
        assert_refused(
            &run(&["connect", "--server-user", "any", &pipe], &env, b"x\n"),
            &[&rule],
        );
        drop(server);
        assert_eq!(stream.received(), "");
        assert_eq!(receiver.received(), "");
    });
}

#[test]
fn server_user_names_or_allows_another_user_behind_a_portable_name() {
    if !can_switch_users("server_user_names_or_allows_another_user_behind_a_portable_name") {
        return;
    }
    watchdog(LIMIT, || {
        // `dotnet:NAME` lives in the shared temporary directory: here another
        // user serves it.
        let tmp = TempDir::new("cli-sec-tmp", 0o777);
        let name = unique_name("cli-sec-dn");
        let path = format!("unix:{}/CoreFxPipe_{name}", tmp.0.display());
        let server = Squatter::start(&["serve-demo", &path]);
        let env = [("TMPDIR", tmp.0.as_path())];
        let addr = format!("dotnet:{name}");

        assert_refused(
            &run(&["call", &addr, "echo", "[1]"], &env, b""),
            &[
                &format!("the server on {addr} runs as uid {OTHER_UID}"),
                "--server-user any",
            ],
        );
        for user in ["any", &OTHER_UID.to_string(), "nobody"] {
            if user == "nobody"
                && !std::fs::read_to_string("/etc/passwd")
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.starts_with(&format!("nobody:x:{OTHER_UID}:")))
            {
                continue;
            }
            let (status, stdout, stderr) = run(
                &["call", "--server-user", user, &addr, "echo", "[1]"],
                &env,
                b"",
            );
            assert!(status.success(), "--server-user {user}: {stderr}");
            assert_eq!(stdout, "[1]\n");
        }
        assert_refused(
            &run(
                &["call", "--server-user", "0", &addr, "echo", "[1]"],
                &env,
                b"",
            ),
            &[&format!(
                "require_server_user(uid 0): the server on {addr} runs as uid {OTHER_UID}"
            )],
        );
        drop(server);

        // An echo server: refused by default, through with --server-user any.
        let _echo = Squatter::start(&["listen", "--echo", &path]);
        assert_refused(
            &run(&["connect", &addr], &env, b"secret\n"),
            &[&format!("the server on {addr} runs as uid {OTHER_UID}")],
        );
        let (status, stdout, stderr) =
            run(&["connect", "--server-user", "any", &addr], &env, b"hi\n");
        assert!(status.success(), "{stderr}");
        assert_eq!(stdout, "hi\n");
    });
}

#[test]
fn server_user_is_checked_as_a_usage_error() {
    let none: [(&str, &Path); 0] = [];
    let (status, _, stderr) = run(
        &["send", "--server-user", "any", "--broadcast", "g", "hi"],
        &none,
        b"",
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--server-user cannot be used with --broadcast"),
        "{stderr}"
    );
    let (status, _, stderr) = run(
        &["connect", "--server-user", "no-such-user-here", "pipe:x"],
        &none,
        b"",
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("look up the user \"no-such-user-here\": no such user"),
        "{stderr}"
    );
}
