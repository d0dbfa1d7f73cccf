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

/// Records up to the kernel's limit with a Python `SOCK_SEQPACKET` peer
/// (Linux: the limit, `net.core.wmem_max`, is read from `/proc`).
#[cfg(target_os = "linux")]
mod large_records {
    use super::*;

    /// 1 B, 200 KiB and 1 MiB: the last two are over the default send buffer.
    const BIG_SIZES: &str = "1,204800,1048576";

    /// The bytes of a message of `n` bytes, as `seqpacket_sizes.py` makes them.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|j| ((j + n) % 251) as u8).collect()
    }

    /// `net.core.wmem_max`, which caps `SO_SNDBUF`.
    fn wmem_max() -> usize {
        std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The Python peer's "limit N" line: the largest record its kernel carries.
    fn kernel_limit(python: &mut Python) -> usize {
        let line = python.first_line();
        let wmem_max = wmem_max();
        assert!(
            wmem_max >= 1 << 20,
            "these tests need net.core.wmem_max of 1 MiB or more (it is {wmem_max})"
        );
        line.strip_prefix("limit ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("python said {line:?}"))
    }

    /// The ipckit side of `seqpacket_sizes.py`'s exchange: every size both ways as
    /// one plain record, and a message over the kernel's limit refused before a
    /// byte of it goes out.
    fn big_records_with_python(channel: &MessageStream, limit: usize) {
        let sizes: Vec<usize> = BIG_SIZES.split(',').map(|s| s.parse().unwrap()).collect();
        for &n in &sizes {
            channel.send(&pattern(n)).unwrap();
        }
        // Just over the limit, and over the raised send buffer (a failure of
        // another kind in the kernel): the same limit is named.
        for over in [limit + 1, 2 * wmem_max() + 1] {
            let err = channel.send(&vec![7; over]).unwrap_err();
            assert_eq!(err.kind(), ipckit::ErrorKind::FrameTooLarge, "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("{limit} bytes")) && text.contains("net.core.wmem_max"),
                "{over} bytes: the error names the kernel's limit ({limit}) and the sysctl: {text}"
            );
        }
        channel.send(b"after").unwrap();
        for &n in &sizes {
            let got = channel.recv().unwrap().unwrap();
            assert!(
                got == pattern(n),
                "{n} bytes from python: {} arrived",
                got.len()
            );
        }
        assert_eq!(channel.recv().unwrap().unwrap(), b"after");
    }

    fn python_saw_big_records(lines: Vec<String>) {
        let mut want: Vec<String> = BIG_SIZES.split(',').map(|n| format!("got {n}")).collect();
        want.push("got after".to_owned());
        want.extend(BIG_SIZES.split(',').map(|n| format!("sent {n}")));
        assert_eq!(lines[..want.len()], want[..], "python: {lines:?}");
        let refused = &lines[want.len()];
        assert!(
            refused == "refused EMSGSIZE" || refused == "refused ENOBUFS",
            "python's own record over the limit: {lines:?}"
        );
        assert_eq!(
            lines[want.len() + 1..],
            ["end".to_owned()],
            "python: {lines:?}"
        );
    }

    #[test]
    fn a_python_seqpacket_client_and_an_ipckit_server_carry_records_up_to_the_kernel_limit() {
        watchdog(Duration::from_secs(60), || {
            let path = temp_path("pybigc");
            let listener = MessageListener::bind(format!("unix:{}", path.display())).unwrap();
            let mut python = Python::start(
                "seqpacket_sizes.py",
                &["client", path.to_str().unwrap(), BIG_SIZES],
            );
            let limit = kernel_limit(&mut python);
            let channel = listener.accept().unwrap();
            big_records_with_python(&channel, limit);
            drop(channel);
            python_saw_big_records(python.finish());
        });
    }

    #[test]
    fn an_ipckit_client_and_a_python_seqpacket_server_carry_records_up_to_the_kernel_limit() {
        watchdog(Duration::from_secs(60), || {
            let path = temp_path("pybigs");
            let mut python = Python::start(
                "seqpacket_sizes.py",
                &["server", path.to_str().unwrap(), BIG_SIZES],
            );
            let limit = kernel_limit(&mut python);
            let channel = MessageStream::connect(format!("unix:{}", path.display())).unwrap();
            big_records_with_python(&channel, limit);
            drop(channel);
            python_saw_big_records(python.finish());
            let _ = std::fs::remove_file(&path);
        });
    }
}
