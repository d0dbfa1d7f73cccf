//! Ctrl-C (SIGINT): a command removes what it created and exits 130.

use std::process::{Command, ExitStatus};

use crate::support::*;
use crate::util::{unique_name, watchdog};

/// Sends SIGINT to `proc` (with kill(1): the tests have no unsafe) and returns
/// its exit status.
fn interrupt(proc: &Proc) -> ExitStatus {
    let pid = proc.with_child(|c| c.id()).to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -INT {pid}: {sent}");
    proc.wait(limit())
}

/// Checks that `file` is there, interrupts `proc` (the command `what`, ready),
/// and that it then exits 130 with `file` gone.
#[track_caller]
fn assert_interrupt_removes(proc: &Proc, file: &std::path::Path, what: &str) {
    assert!(file.exists(), "{what} made {}", file.display());
    let status = interrupt(proc);
    assert_eq!(status.code(), Some(130), "{what}: {status}");
    assert!(!file.exists(), "{what} left {}", file.display());
}

/// Ctrl-C: `listen` and `recv` remove the socket file or shared-memory
/// channel they created, and exit 130.
#[test]
fn ctrl_c_removes_what_the_command_created() {
    use std::path::PathBuf;

    let dir = ipckit::platform::runtime_dir().expect("a runtime directory on Unix");
    let path = std::env::temp_dir().join(format!("{}.sock", unique_name("cli-int")));
    let name = unique_name("cli-int-name");
    let msg = unique_name("cli-int-msg");
    let slot = unique_name("cli-int-slot");
    let shm = unique_name("cli-int-shm");
    let cases: Vec<(Vec<String>, PathBuf)> = vec![
        (
            vec![
                "listen".into(),
                "--echo".into(),
                format!("unix:{}", path.display()),
            ],
            path.clone(),
        ),
        (
            vec!["listen".into(), format!("pipe:{name}")],
            dir.join(format!("{name}.sock")),
        ),
        (
            vec!["listen".into(), "-m".into(), format!("pipe:{msg}")],
            dir.join(format!("{msg}.sock")),
        ),
        (
            vec!["recv".into(), format!("mailslot:{slot}")],
            dir.join(format!("{slot}.dgram")),
        ),
    ];
    let kids = Children::new();
    for (args, file) in &cases {
        let mut full = vec!["-v".to_owned()];
        full.extend(args.iter().cloned());
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let mut proc = kids.ipckit(&full);
        let is_recv = args[0] == "recv";
        let proc = watchdog(limit(), move || {
            if is_recv {
                proc.receiving();
            } else {
                proc.listening_on();
            }
            proc
        });
        assert_interrupt_removes(&proc, file, &format!("{args:?}"));
    }
    // A member of a broadcast group: its socket file is named after its pid.
    let group = unique_name("cli-int-group");
    let mut proc = kids.ipckit(&["-v", "recv", "--broadcast", &group]);
    kids.clean_up_group(&group);
    let pid = proc.with_child(|c| c.id());
    let proc = watchdog(limit(), move || {
        proc.receiving();
        proc
    });
    let member = dir
        .join(format!("{group}.group"))
        .join(format!("{pid}-0.dgram"));
    assert_interrupt_removes(&proc, &member, "recv --broadcast");
    let _ = std::fs::remove_dir(dir.join(format!("{group}.group")));

    // A shared-memory listener's file is its rendezvous socket (the
    // channels' regions are created per client and unlinked once joined).
    let addr = format!("shm:{shm}");
    let mut proc = kids.ipckit(&["-v", "listen", &addr]);
    let proc = watchdog(limit(), move || {
        proc.listening_on();
        proc
    });
    let rendezvous = dir.join(format!("{shm}.shm.sock"));
    assert_interrupt_removes(&proc, &rendezvous, &format!("listen {addr}"));
}
