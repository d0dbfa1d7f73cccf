//! A real Ctrl-C on Windows: the `ipckit` binary, started on a console of its
//! own, gets a Ctrl-C there, removes what it created and exits 130
//! (`src/cleanup.rs`). The Unix twin, with SIGINT, is
//! `ctrl_c_removes_what_the_command_created` in `tests/cli.rs`; on other OSes
//! this program has no tests.
//!
//! Windows delivers Ctrl-C to every process on a console, so it is sent by a
//! process of its own ([`ipckit_testkit::ctrl_c`]): this program run again
//! with `--send-ctrl-c-to PID`. That is why it has its own harness
//! (libtest-mimic, `harness = false`): `main` is that sender, with no ignored
//! test standing in for it, and the tests still print libtest's lines and
//! counts.

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::process::ExitCode;

use libtest_mimic::{Arguments, Trial};

fn main() -> ExitCode {
    #[cfg(windows)]
    if let Some(exit) = windows::as_sender() {
        return exit;
    }
    libtest_mimic::run(&Arguments::from_args(), trials()).exit_code()
}

#[cfg(windows)]
fn trials() -> Vec<Trial> {
    vec![
        trial(
            "ctrl_c_removes_a_broadcast_members_marker_and_exits_130",
            windows::broadcast_member,
        ),
        trial("ctrl_c_ends_listen_with_130_and_frees_the_name", || {
            windows::listen(false)
        }),
        trial(
            "ctrl_c_ends_listen_message_with_130_and_frees_the_name",
            || windows::listen(true),
        ),
    ]
}

#[cfg(not(windows))]
fn trials() -> Vec<Trial> {
    Vec::new()
}

/// A test that fails by panicking, as `#[test]` functions do.
#[cfg(windows)]
fn trial(name: &str, test: impl FnOnce() + Send + 'static) -> Trial {
    Trial::test(name, move || {
        test();
        Ok(())
    })
}

#[cfg(windows)]
mod windows {
    use std::io::{BufRead, BufReader, Read};
    use std::path::PathBuf;
    use std::process::{Child, ChildStderr, ChildStdin, Command, ExitCode, ExitStatus, Stdio};
    use std::thread;
    use std::time::{Duration, Instant};

    use ipckit::ErrorKind;
    use ipckit_testkit::ctrl_c;

    use crate::util::{slow_factor, unique_name, watchdog};

    const BIN: &str = env!("CARGO_BIN_EXE_ipckit");

    /// The argument that makes this program the sender of a Ctrl-C.
    const SENDER: &str = "--send-ctrl-c-to";

    /// Run as `--send-ctrl-c-to PID`: sends Ctrl-C to the console of process
    /// PID and returns how to exit (0 once it is sent). Otherwise `None`.
    pub(super) fn as_sender() -> Option<ExitCode> {
        let mut args = std::env::args().skip(1);
        if args.next().as_deref() != Some(SENDER) {
            return None;
        }
        let Some(pid) = args.next().and_then(|p| p.parse::<u32>().ok()) else {
            eprintln!("usage: {SENDER} PID");
            return Some(ExitCode::from(2));
        };
        Some(match ctrl_c::send_to_console_of(pid) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("sending Ctrl-C to the console of process {pid}: {err}");
                ExitCode::FAILURE
            }
        })
    }

    /// How long one step may take (Wine is much slower than Windows).
    fn limit() -> Duration {
        Duration::from_secs(30) * slow_factor()
    }

    /// A child process, killed and reaped when dropped if it is still running.
    struct Kid(Child);

    impl Kid {
        /// Waits for the exit, at most `limit()`.
        #[track_caller]
        fn wait(&mut self, what: &str) -> ExitStatus {
            let deadline = Instant::now() + limit();
            loop {
                if let Some(status) = self.0.try_wait().expect("try_wait") {
                    return status;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what} did not exit within {:?}",
                    limit()
                );
                thread::sleep(Duration::from_millis(5));
            }
        }
    }

    impl Drop for Kid {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `ipckit ARGS...` on a console of its own, stdin held open, stderr piped.
    struct Ipckit {
        kid: Kid,
        what: String,
        stderr: Option<BufReader<ChildStderr>>,
        _stdin: ChildStdin,
        /// A broadcast group it joined: after it is gone, dead members'
        /// markers and the group's directory are removed.
        group: Option<String>,
    }

    impl Ipckit {
        fn start(args: &[&str]) -> Ipckit {
            let mut cmd = Command::new(BIN);
            cmd.args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            ctrl_c::new_console(&mut cmd);
            let mut child = cmd.spawn().expect("start ipckit");
            let stdin = child.stdin.take().expect("piped stdin");
            let stderr = child.stderr.take().map(BufReader::new);
            Ipckit {
                kid: Kid(child),
                what: format!("ipckit {}", args.join(" ")),
                stderr,
                _stdin: stdin,
                group: None,
            }
        }

        fn pid(&self) -> u32 {
            self.kid.0.id()
        }

        /// Waits for the first line on stderr (with -v, the one that says the
        /// command is ready) and checks that it starts with `start`.
        fn ready(&mut self, start: &str) {
            let mut stderr = self.stderr.take().expect("stderr is still open");
            let (stderr, line) = watchdog(limit(), move || {
                let mut line = String::new();
                stderr.read_line(&mut line).expect("read ipckit's stderr");
                (stderr, line)
            });
            assert!(
                line.starts_with(start),
                "{}: expected {start:?}..., got {line:?}",
                self.what
            );
            self.stderr = Some(stderr);
        }

        /// Sends it Ctrl-C (through a sender process) and returns its exit
        /// status, with what else it wrote to stderr.
        fn interrupt(&mut self) -> (ExitStatus, String) {
            let exe = std::env::current_exe().expect("this test program's path");
            let mut sender = Command::new(exe);
            sender
                .args([SENDER, &self.pid().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut sender = Kid(sender.spawn().expect("start the sender"));
            let sent = sender.wait("the sender");
            let mut why = String::new();
            if let Some(mut err) = sender.0.stderr.take() {
                let _ = err.read_to_string(&mut why);
            }
            assert!(sent.success(), "the sender: {sent}: {why}");
            let status = self.kid.wait(&self.what);
            let mut rest = String::new();
            if let Some(mut err) = self.stderr.take() {
                let _ = err.read_to_string(&mut rest);
            }
            (status, rest)
        }

        /// Interrupts it and checks that it exits 130.
        #[track_caller]
        fn assert_interrupted(&mut self) {
            let (status, stderr) = self.interrupt();
            assert_eq!(
                status.code(),
                Some(130),
                "{}: {status}; stderr: {stderr:?}",
                self.what
            );
        }
    }

    impl Drop for Ipckit {
        fn drop(&mut self) {
            let _ = self.kid.0.kill();
            let _ = self.kid.0.wait();
            if let Some(group) = &self.group {
                // A broadcast removes the markers of members that are gone.
                let _ = ipckit::MailslotSender::broadcast(group, b"");
                if let Some(dir) = ipckit::platform::mailslot_groups_dir() {
                    let _ = std::fs::remove_dir(dir.join(group));
                }
            }
        }
    }

    /// `ipckit -v recv --broadcast GROUP`: its marker file is there while it
    /// receives; a Ctrl-C removes it and the command exits 130.
    pub(super) fn broadcast_member() {
        let group = unique_name("ctrl-c-group");
        let mut ipckit = Ipckit::start(&["-v", "recv", "--broadcast", &group]);
        ipckit.group = Some(group.clone());
        ipckit.ready("receiving ");
        let marker: PathBuf = ipckit::platform::mailslot_groups_dir()
            .expect("a groups directory on Windows")
            .join(&group)
            .join(format!("{}-0", ipckit.pid()));
        assert!(
            marker.exists(),
            "recv --broadcast made {}",
            marker.display()
        );
        ipckit.assert_interrupted();
        assert!(
            !marker.exists(),
            "recv --broadcast left {}",
            marker.display()
        );
    }

    /// `ipckit -v listen [-m] pipe:NAME`: while it listens the name is taken (a
    /// second bind is refused); a Ctrl-C ends it with 130, and the name can be
    /// bound again.
    pub(super) fn listen(message: bool) {
        let addr = format!("pipe:{}", unique_name("ctrl-c-listen"));
        let mut args = vec!["-v", "listen"];
        if message {
            args.push("-m");
        }
        args.push(&addr);
        let bind = || -> ipckit::Result<()> {
            if message {
                ipckit::MessageListener::bind(addr.as_str()).map(drop)
            } else {
                ipckit::Listener::bind(addr.as_str()).map(drop)
            }
        };
        let mut ipckit = Ipckit::start(&args);
        ipckit.ready("listening on ");
        let err = bind().expect_err("a second listener on a name ipckit listens on");
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        ipckit.assert_interrupted();
        if let Err(err) = bind() {
            panic!(
                "{addr} is still taken after `{}` exited: {err}",
                ipckit.what
            );
        }
    }
}
