//! Windows-only named-pipe behaviour: busy instances and the waiting instance.
#![cfg(windows)]

mod util;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use ipckit::os::windows::ListenerOptionsExt;
use ipckit::{ConnectOptions, Listener, ListenerOptions, Stream};
use util::{slow_factor, unique_name, watchdog};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// A pipe of one instance, taken: its address, listener and both ends of the
/// connection on that instance.
fn busy_pipe(tag: &str) -> (String, Listener, Stream, Stream) {
    let addr = format!("pipe:{}", unique_name(tag));
    let listener = ListenerOptions::new()
        .max_instances(1)
        .bind(addr.as_str())
        .unwrap();
    let first = Stream::connect(addr.as_str()).unwrap();
    let served = listener.accept().unwrap();
    (addr, listener, first, served)
}

#[test]
fn a_busy_pipe_times_out_then_connects_when_an_instance_frees() {
    watchdog(limit(30), || {
        let (addr, listener, first, served) = busy_pipe("busy");

        // The only instance is taken: a second client waits, then gives up.
        let mut opts = ConnectOptions::new();
        opts.timeout(Duration::from_millis(300));
        let start = Instant::now();
        let err = opts.connect(addr.as_str()).unwrap_err();
        let took = start.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(err.is_temporary());
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < limit(10), "{took:?}");

        // Free the instance: a waiting client gets in once the server accepts again.
        drop(served);
        drop(first);
        let t = thread::spawn(move || {
            let mut s = listener.accept().unwrap();
            s.write_all(b"next").unwrap();
        });
        let mut opts = ConnectOptions::new();
        opts.timeout(limit(10)).retry_not_found(true);
        let mut second = opts.connect(addr.as_str()).unwrap();
        let mut got = [0; 4];
        second.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"next");
        t.join().unwrap();
    });
}

/// A client without a connect timeout that waits for a busy pipe's instance
/// is told when the server goes away instead of waiting for ever: its wait
/// ends in slices, and the name is gone. (Under Wine one long
/// `WaitNamedPipeW` never ended: an RPC client connecting to a stopping
/// server hung.)
#[test]
fn a_client_waiting_for_a_busy_pipe_learns_that_the_server_went_away() {
    watchdog(limit(30), || {
        let (addr, listener, first, served) = busy_pipe("busy-gone");
        // No timeout: only the server's going away can end this connect.
        let waiting = {
            let addr = addr.clone();
            thread::spawn(move || Stream::connect(addr.as_str()))
        };
        // The second client is waiting (or about to): the server goes away.
        thread::sleep(Duration::from_millis(300));
        assert!(
            !waiting.is_finished(),
            "the busy pipe let a second client in"
        );
        drop(listener);
        drop(served);
        drop(first);
        let err = waiting.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), ipckit::ErrorKind::NotFound, "{err:?}");
    });
}
