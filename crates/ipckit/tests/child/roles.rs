//! The roles this program plays when a test re-runs it as a child
//! (`IPCKIT_TEST_ROLE`), one per behaviour the parent checks.

use std::process::Stdio;
#[cfg(unix)]
use std::time::Duration;

#[cfg(unix)]
use ipckit::ErrorKind;
use ipckit::child::{CommandExt, parent_channel};
use serde_json::json;

use crate::support::*;

pub(crate) fn run(role: &str) -> i32 {
    match role {
        "echo" => echo(),
        "async_echo" => async_echo(),
        "bye" => {
            let parent = parent_channel().expect("parent channel");
            parent.send(b"bye").unwrap();
            3
        }
        "probe" => {
            let said = match parent_channel() {
                Ok(_) => "PROBE ok".to_owned(),
                Err(e) => format!("PROBE {:?} {e}", e.kind()),
            };
            // A Node parent under Wine cannot read a piped stdout.
            match std::env::var_os("IPCKIT_TEST_REPORT") {
                Some(path) => std::fs::write(path, said).unwrap(),
                None => println!("{said}"),
            }
            0
        }
        "twice" => {
            let _first = parent_channel().expect("parent channel");
            let second = parent_channel().unwrap_err();
            println!("TWICE {second}");
            0
        }
        "fds" => fds(),
        "wait_end" => {
            let parent = parent_channel().expect("parent channel");
            parent.send(ready(parent.serialization())).unwrap();
            while parent.recv().unwrap().is_some() {}
            println!("CHILD-SAW-END");
            0
        }
        "middle" => {
            let parent = parent_channel().expect("parent channel");
            let (grandchild, channel) = crate::support::child("wait_end")
                .stdout(Stdio::inherit())
                .spawn_with_channel()
                .unwrap();
            // The test kills it by this number if it gives up.
            println!("GRANDCHILD {}", grandchild.id());
            assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"ready"[..]));
            parent.send(b"ready").unwrap();
            // Hold the grandchild's channel until killed.
            while parent.recv().unwrap().is_some() {}
            0
        }
        "big_in_flight" => {
            let parent = parent_channel().expect("parent channel");
            // Unix: fill the socket first, so that the big message cannot
            // get through before the parent reads (which it does only after
            // the kill). Windows: a pipe buffers 64 KiB, so a 32 MiB write
            // waits for the reader anyway.
            #[cfg(unix)]
            {
                let mut filler = parent.try_clone().unwrap();
                filler
                    .set_write_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut n = 0;
                loop {
                    match filler.send(&crate::support::pattern(FILL)) {
                        Ok(()) => n += 1,
                        Err(e) if e.kind() == ErrorKind::TimedOut => break,
                        Err(e) => panic!("fill: {e}"),
                    }
                }
                println!("FILLED {n}");
            }
            let sender = parent.try_clone().unwrap();
            let started = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                started.0.send(()).unwrap();
                let _ = sender.send(&crate::support::pattern(BIG));
                println!("SENT-BIG");
            });
            started.1.recv().unwrap();
            println!("SENDING");
            // Killed while the message is on its way.
            loop {
                std::thread::park();
            }
        }
        "big_sent" => {
            let parent = parent_channel().expect("parent channel");
            parent.send(&crate::support::pattern(BIG)).unwrap();
            println!("SENT");
            // Killed with the message sent.
            loop {
                std::thread::park();
            }
        }
        "big_on_go" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let parent = ipckit::tokio::child::parent_channel().expect("parent channel");
                // A 1 MiB message for every "go", until the end.
                while let Some(msg) = parent.recv().await.unwrap() {
                    assert_eq!(msg, b"go");
                    parent
                        .send(&crate::support::pattern(1 << 20))
                        .await
                        .unwrap();
                }
            });
            0
        }
        #[cfg(unix)]
        "refuse" => refuse(),
        other => panic!("unknown role {other}"),
    }
}

/// Sends every message back until the parent closes the channel.
fn echo() -> i32 {
    let parent = parent_channel().expect("parent channel");
    let mut msg = Vec::new();
    while parent.recv_into(&mut msg).unwrap() {
        parent.send(&msg).unwrap();
    }
    0
}

/// `echo` with the async channel.
fn async_echo() -> i32 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let parent = ipckit::tokio::child::parent_channel().expect("parent channel");
        while let Some(msg) = parent.recv().await.unwrap() {
            parent.send(&msg).await.unwrap();
        }
    });
    0
}

/// Puts each object named in `IPCKIT_TEST_OBJECTS` at descriptor 100 (the
/// variable names it), tries to take it as the channel, and reports
/// `REFUSED <object> <kind> open=<still open> <message>` or `TAKEN <object>`.
#[cfg(unix)]
fn refuse() -> i32 {
    use rustix::io::FdFlags;
    use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;

    let objects = std::env::var("IPCKIT_TEST_OBJECTS").unwrap();
    for object in objects.split(',') {
        let (fd, cloexec): (OwnedFd, bool) = match object {
            "file" => (std::fs::File::open("/dev/null").unwrap().into(), false),
            "stream" => (UnixStream::pair().unwrap().0.into(), false),
            "tcp" => (
                std::net::TcpListener::bind("127.0.0.1:0").unwrap().into(),
                false,
            ),
            #[cfg(not(target_vendor = "apple"))]
            "seqpacket" | "cloexec_seqpacket" => {
                let (a, _b) = rustix::net::socketpair(
                    rustix::net::AddressFamily::UNIX,
                    rustix::net::SocketType::SEQPACKET,
                    rustix::net::SocketFlags::CLOEXEC,
                    None,
                )
                .unwrap();
                (a, object == "cloexec_seqpacket")
            }
            "stdout" => {
                match parent_channel() {
                    Ok(_) => println!("TAKEN stdout"),
                    Err(e) => println!("REFUSED stdout {:?} open=true {e:#}", e.kind()),
                }
                continue;
            }
            other => panic!("unknown object {other}"),
        };
        let placed = rustix::io::fcntl_dupfd_cloexec(&fd, 100).unwrap();
        assert_eq!(placed.as_raw_fd(), 100, "descriptor 100 is taken already");
        drop(fd);
        if !cloexec {
            rustix::io::fcntl_setfd(&placed, FdFlags::empty()).unwrap();
        }
        match parent_channel() {
            Ok(channel) => {
                // The channel owns descriptor 100 now.
                let _ = placed.into_raw_fd();
                println!("TAKEN {object}");
                drop(channel);
            }
            Err(e) => {
                let open = rustix::io::fcntl_getfd(&placed).is_ok();
                println!("REFUSED {object} {:?} open={open} {e:#}", e.kind());
            }
        }
    }
    0
}

/// Reports this process's descriptors: `[[number, link target], ...]`.
fn fds() -> i32 {
    let parent = parent_channel().expect("parent channel");
    let names: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // The directory's own descriptor is closed by now: its link is gone.
    let fds: Vec<(i32, String)> = names
        .iter()
        .filter_map(|n| {
            let target = std::fs::read_link(format!("/proc/self/fd/{n}")).ok()?;
            Some((n.parse().unwrap(), target.to_string_lossy().into_owned()))
        })
        .collect();
    let token = std::env::var(ipckit::child::CHANNEL_VAR).unwrap();
    parent
        .send_json(&json!({ "fds": fds, "channel": token }))
        .unwrap();
    while parent.recv().unwrap().is_some() {}
    0
}
