//! How a channel ends: the child exits, is killed mid-message or after a
//! message, the parent dies, a later child must not hold an earlier channel.

use std::io::BufReader;
#[cfg(windows)]
use std::process::Command;
use std::process::Stdio;

use ipckit::ErrorKind;
use ipckit::child::{ChannelOptions, Serialization};

use crate::support::*;
use crate::util::watchdog;

#[test]
fn the_end_of_the_channel_is_the_child_exiting() {
    watchdog(limit(60), || {
        let (mut child, channel) = spawn("bye", Serialization::Messages);
        assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"bye"[..]));
        assert_eq!(channel.recv().unwrap(), None);
        assert_eq!(child.0.wait().unwrap().code(), Some(3));
        // Sending to a child that has gone is an error, not a hang.
        let err = channel.send(b"anyone?").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        assert!(err.to_string().contains("child process"), "{err}");
    });
}

/// The parent's end of one channel is not inherited by a child spawned later
/// (nor is its child end, closed in the parent right after its spawn): when
/// the parent drops the first channel, the first child sees the end and exits
/// while the second child, alive all along, holds nothing of it. Were the end
/// inherited, the first child would wait until the watchdog fired.
#[test]
fn a_later_child_does_not_hold_an_earlier_channel_open() {
    for serialization in [Serialization::Messages, Serialization::Json] {
        watchdog(limit(60), move || {
            let (mut first, first_channel) = spawn("wait_end", serialization);
            let (mut second, second_channel) = spawn("wait_end", serialization);
            for channel in [&first_channel, &second_channel] {
                let said = channel.recv().unwrap();
                assert_eq!(said.as_deref(), Some(ready(serialization)));
            }
            drop(first_channel);
            assert!(first.0.wait().unwrap().success(), "{serialization}");
            assert!(
                second.0.try_wait().unwrap().is_none(),
                "{serialization}: the second child should still be waiting"
            );
            drop(second_channel);
            assert!(second.0.wait().unwrap().success(), "{serialization}");
        });
    }
}

#[test]
fn a_child_killed_mid_message_delivers_none_of_it() {
    let (child, channel) = ChannelOptions::new()
        .spawn(child("big_in_flight").stdout(Stdio::piped()))
        .unwrap();
    let (child, guard) = Reaper::shared(child);
    watchdog(limit(120), move || {
        let mut out = BufReader::new(child.lock().unwrap().0.stdout.take().unwrap());
        #[cfg(unix)]
        let filled: usize = line_with(&mut out, "FILLED ").unwrap()["FILLED ".len()..]
            .parse()
            .unwrap();
        assert_eq!(line_with(&mut out, "SENDING").as_deref(), Some("SENDING"));
        // The 32 MiB message has started and cannot be finished: nobody reads.
        child.lock().unwrap().kill_and_wait();
        #[cfg_attr(windows, allow(unused_mut))]
        let mut fillers = 0;
        // On Windows the first message already ends the loop (see below).
        #[cfg_attr(windows, allow(clippy::never_loop))]
        loop {
            match channel.recv() {
                #[cfg(unix)]
                Ok(Some(msg)) => {
                    assert_eq!(msg.len(), FILL, "a message of {} bytes arrived", msg.len());
                    assert!(msg == pattern(FILL), "a filler arrived changed");
                    fillers += 1;
                }
                #[cfg(windows)]
                Ok(Some(msg)) => panic!("a message of {} bytes arrived", msg.len()),
                Ok(None) => break,
                Err(e) => {
                    // An error (a message cut short) is allowed once, then the end.
                    assert_ne!(e.kind(), ErrorKind::TimedOut, "{e}");
                    assert!(matches!(channel.recv(), Ok(None) | Err(_)));
                    break;
                }
            }
        }
        #[cfg(unix)]
        assert_eq!(fillers, filled, "the fillers before the big message");
        #[cfg(windows)]
        assert_eq!(fillers, 0);
        // The child never got its message out.
        assert_eq!(line_with(&mut out, "SENT-BIG"), None);
    });
    drop(guard);
}

#[test]
fn a_message_sent_before_the_kill_arrives_whole() {
    let (child, channel) = ChannelOptions::new()
        .spawn(child("big_sent").stdout(Stdio::piped()))
        .unwrap();
    let (child, guard) = Reaper::shared(child);
    watchdog(limit(120), move || {
        let mut out = BufReader::new(child.lock().unwrap().0.stdout.take().unwrap());
        // Windows: a pipe holds 64 KiB, so the send returns only once the
        // message is read. Unix: read only after the kill.
        let reader = cfg!(windows).then(|| {
            let channel = channel.try_clone().unwrap();
            std::thread::spawn(move || channel.recv().unwrap())
        });
        assert_eq!(line_with(&mut out, "SENT").as_deref(), Some("SENT"));
        child.lock().unwrap().kill_and_wait();
        let msg = match reader {
            Some(reader) => reader.join().unwrap(),
            None => channel.recv().unwrap(),
        };
        let msg = msg.expect("the message sent before the kill");
        assert_eq!(msg.len(), BIG);
        assert!(msg == pattern(BIG), "the message arrived changed");
        assert_eq!(channel.recv().unwrap(), None);
    });
    drop(guard);
}

/// Kills a process by number, for a grandchild that is not ours to wait for.
fn kill_pid(pid: u32) {
    #[cfg(unix)]
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    #[cfg(windows)]
    let _ = Command::new("taskkill")
        .args(["/F", "/PID", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[test]
fn the_child_sees_the_parent_die_as_the_end() {
    // middle (killed) -> grandchild, whose stdout is ours. Both are killed on
    // every way out, the watchdog's included.
    let (middle, channel) = ChannelOptions::new()
        .spawn(child("middle").stdout(Stdio::piped()))
        .unwrap();
    let (middle, middle_guard) = Reaper::shared(middle);
    let grandchild = std::sync::Arc::new(std::sync::Mutex::new(None::<u32>));
    struct KillGrandchild(std::sync::Arc<std::sync::Mutex<Option<u32>>>);
    impl Drop for KillGrandchild {
        fn drop(&mut self) {
            if let Some(pid) = *self.0.lock().unwrap_or_else(|p| p.into_inner()) {
                kill_pid(pid);
            }
        }
    }
    let guards = (
        KillGrandchild(std::sync::Arc::clone(&grandchild)),
        middle_guard,
    );
    watchdog(limit(60), move || {
        let mut out = BufReader::new(middle.lock().unwrap().0.stdout.take().unwrap());
        let pid = line_with(&mut out, "GRANDCHILD ").unwrap()["GRANDCHILD ".len()..]
            .parse()
            .unwrap();
        *grandchild.lock().unwrap() = Some(pid);
        assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"ready"[..]));
        middle.lock().unwrap().kill_and_wait();
        // The grandchild still has our pipe as stdout; it reports and exits.
        assert_eq!(
            line_with(&mut out, "CHILD-SAW-END").as_deref(),
            Some("CHILD-SAW-END")
        );
    });
    drop(guards);
}
