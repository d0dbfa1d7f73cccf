//! `ipckit spawn` keeps the channel open after the end of stdin until the
//! child has been quiet for --linger (or exits), on every OS, so that a Node
//! child's late replies are all printed, in order; and it never exits 0 when a
//! message from the child was lost. Real Node children: `node` on Linux,
//! npm's `node.exe` under Wine (IPCKIT_NODE_EXE, set by scripts/test-windows.sh).

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

mod common;

use common::{limit, run_with_stdin};
use util::watchdog;

/// --linger for these children: quiet this long after the end of stdin ends
/// the channel, so it must outlast Node's start and the replies' delay (Node
/// starts in seconds under Wine).
fn linger() -> String {
    format!("{}s", 2 * util::slow_factor())
}

fn node() -> String {
    std::env::var("IPCKIT_NODE_EXE").unwrap_or_else(|_| "node".into())
}

fn node_script(name: &str) -> String {
    format!("{}/../ipckit/tests/node/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `ipckit spawn --linger ... -- node late_replies.js DELAY_MS` with `input`
/// as stdin; must exit 0. Returns its stdout.
fn late_replies(delay_ms: &str, input: Vec<u8>) -> String {
    let script = node_script("late_replies.js");
    let args = [
        "spawn",
        "--linger",
        &linger(),
        "--",
        &node(),
        &script,
        delay_ms,
    ];
    let (status, stdout, stderr) = run_with_stdin(&args, input);
    assert!(status.success(), "{status}: {stderr}");
    stdout
}

#[test]
fn an_async_reply_after_the_end_of_stdin_is_printed() {
    watchdog(limit(), || {
        let stdout = late_replies(
            "300",
            b"{\"job\":1}
"
            .to_vec(),
        );
        assert_eq!(
            stdout,
            "{\"done\":1}
"
        );
    });
}

#[test]
fn five_thousand_replies_are_all_printed_in_order() {
    watchdog(limit() * 2, || {
        let input: String = (0..5000).map(|n| format!("{{\"job\":{n}}}\n")).collect();
        let stdout = late_replies("50", input.into_bytes());
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 5000);
        for (n, line) in lines.iter().enumerate() {
            assert_eq!(*line, format!("{{\"done\":{n}}}"));
        }
    });
}

#[test]
fn a_one_mib_reply_is_printed_whole() {
    watchdog(limit(), || {
        let stdout = late_replies("100", b"{\"big\":1048576}\n".to_vec());
        let expected = format!("{{\"big\":\"{}\"}}\n", "x".repeat(1 << 20));
        assert!(stdout == expected, "{} bytes printed", stdout.len());
    });
}

#[cfg(unix)]
#[test]
fn a_message_cut_short_by_the_childs_end_fails_the_command() {
    watchdog(limit(), || {
        // Half a JSON line, then the child exits: the message is cut.
        const CHILD: &str = "import os\n\
            fd = int(os.environ['NODE_CHANNEL_FD'])\n\
            os.write(fd, b'\"whole\"\\n{\"half\": ')\n";
        let (status, stdout, stderr) =
            run_with_stdin(&["spawn", "--", "python3", "-c", CHILD], Vec::new());
        assert_eq!(stdout, "\"whole\"\n", "{stderr}");
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("1 of the messages from"), "{stderr}");
    });
}
