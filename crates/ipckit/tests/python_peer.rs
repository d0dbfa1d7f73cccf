//! Python's standard library as a foreign peer of message channels (Unix):
//! `socket.SOCK_SEQPACKET` records, and `multiprocessing.connection` frames in
//! both directions.
#![cfg(unix)]

mod util;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use ipckit::{Framed, MessageListener, MessageStream, Stream};
use util::{unique_name, watchdog};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// A Python child that is killed and reaped however the test ends.
struct Python(Option<Child>);

impl Python {
    fn start(name: &str, args: &[&str]) -> Python {
        let child = Command::new("python3")
            .arg(script(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        Python(Some(child))
    }

    /// Waits for the child to exit; its stdout lines, or a panic with its stderr.
    fn finish(mut self) -> Vec<String> {
        let child = self.0.take().expect("not finished yet");
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "python failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn first_line(&mut self) -> String {
        let stdout = self.0.as_mut().and_then(|c| c.stdout.as_mut()).unwrap();
        // The child prints nothing more until it is spoken to, so the reader
        // cannot take more than this line.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim().to_owned()
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.sock", unique_name(tag)))
}

const SIZES: &str = "0,1,4095,4096,4097,65536,200000,0";

fn expected(sizes: &str) -> Vec<String> {
    sizes
        .split(',')
        .enumerate()
        .map(|(i, s)| format!("ok {i} {s}"))
        .collect()
}

#[test]
fn a_python_seqpacket_client_gets_each_record_back_whole() {
    watchdog(Duration::from_secs(30), || {
        let path = temp_path("pyseq");
        let listener = MessageListener::bind(format!("unix:{}", path.display())).unwrap();
        let server = thread::spawn(move || {
            let channel = listener.accept().unwrap();
            let mut sizes = Vec::new();
            while let Some(msg) = channel.recv().unwrap() {
                sizes.push(msg.len());
                channel.send(&msg).unwrap();
            }
            sizes
        });
        let python = Python::start("seqpacket_echo_client.py", &[path.to_str().unwrap(), SIZES]);
        assert_eq!(python.finish(), expected(SIZES));
        let sizes: Vec<String> = server
            .join()
            .unwrap()
            .iter()
            .map(usize::to_string)
            .collect();
        assert_eq!(
            sizes.join(","),
            SIZES,
            "ipckit saw the same records, empty ones too"
        );
    });
}

#[test]
fn a_python_multiprocessing_client_talks_to_an_ipckit_tcp_listener() {
    watchdog(Duration::from_secs(30), || {
        let listener = MessageListener::bind("tcp:127.0.0.1:0").unwrap();
        let port = match listener.local_addr() {
            ipckit::Address::Tcp { port, .. } => port.to_string(),
            other => panic!("not tcp: {other}"),
        };
        let server = thread::spawn(move || {
            let channel = listener.accept().unwrap();
            let mut n = 0;
            while let Some(msg) = channel.recv().unwrap() {
                channel.send(&msg).unwrap();
                n += 1;
            }
            n
        });
        let sizes = "0,1,4096,16384,100000,1048576,0";
        let python = Python::start("mp_client.py", &["127.0.0.1", &port, sizes]);
        assert_eq!(python.finish(), expected(sizes));
        assert_eq!(server.join().unwrap(), 7);
    });
}

/// Sends messages to a Python `Listener`, which answers each reversed.
fn talk_to_python_listener(mut send: impl FnMut(&[u8]), mut recv: impl FnMut() -> Vec<u8>) {
    for size in [0usize, 1, 5, 16383, 16384, 70_000, 3 << 20] {
        let msg: Vec<u8> = (0..size).map(|i| (i % 241) as u8).collect();
        send(&msg);
        let back = recv();
        let mut want = msg.clone();
        want.reverse();
        assert!(back == want, "reply to {size} bytes: {} bytes", back.len());
    }
}

#[test]
fn an_ipckit_client_talks_to_a_python_multiprocessing_listener_over_tcp() {
    watchdog(Duration::from_secs(30), || {
        let mut python = Python::start("mp_listener.py", &["AF_INET"]);
        let addr = format!("tcp:{}", python.first_line());
        let channel = MessageStream::connect(addr.as_str()).unwrap();
        talk_to_python_listener(
            |m| channel.send(m).unwrap(),
            || channel.recv().unwrap().unwrap(),
        );
        drop(channel);
        assert_eq!(python.finish(), vec!["served 7".to_owned()]);
    });
}

#[test]
fn framed_carries_pythons_frames_over_an_ipckit_unix_stream() {
    watchdog(Duration::from_secs(30), || {
        let path = temp_path("pyframed");
        let mut python = Python::start("mp_listener.py", &["AF_UNIX", path.to_str().unwrap()]);
        assert_eq!(python.first_line(), path.display().to_string());
        let stream = Stream::connect(format!("unix:{}", path.display())).unwrap();
        let framed = std::cell::RefCell::new(Framed::new(stream));
        talk_to_python_listener(
            |m| framed.borrow_mut().send(m).unwrap(),
            || framed.borrow_mut().recv().unwrap().unwrap(),
        );
        drop(framed);
        assert_eq!(python.finish(), vec!["served 7".to_owned()]);
    });
}

#[test]
fn a_python_datagram_socket_sends_to_an_ipckit_mailslot() {
    watchdog(Duration::from_secs(30), || {
        let path = temp_path("pydgram");
        let inbox = ipckit::MailslotReceiver::bind(format!("unix:{}", path.display())).unwrap();
        let script = "import socket,sys\n\
            s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n\
            for m in [b'', b'py', b'x'*60000]: s.sendto(m, sys.argv[1])\n";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(inbox.recv().unwrap(), b"");
        assert_eq!(inbox.recv().unwrap(), b"py");
        assert_eq!(inbox.recv().unwrap(), vec![b'x'; 60000]);
    });
}
