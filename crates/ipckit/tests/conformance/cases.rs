//! The cases, each written once as a generic function over a [`Face`] (and
//! the capability traits it needs), given a [`Transport`]; `main.rs` runs
//! each one for every row and face of its tables.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use ipckit::security::UserId;
use ipckit::{ConnectOptions, ErrorKind, ListenerOptions};

use crate::face::{Credentials, Deadlines, Face, HalfClose};
use crate::transport::Transport;
use crate::util::{pattern, slow_factor};

/// The timeout or deadline the timing cases set: long enough to tell from
/// "at once" on a loaded machine, short enough to keep the suite fast.
const SHORT: Duration = Duration::from_millis(300);

/// How much later than asked a timeout may fire on a loaded machine
/// (scaled under Wine).
const LATE: Duration = Duration::from_secs(2);

/// A wait for a timeout of `want` took `took`: not much less, not much more.
#[track_caller]
fn assert_waited(took: Duration, want: Duration) {
    assert!(
        took >= want * 3 / 4,
        "gave up after {took:?}, before {want:?}"
    );
    assert!(
        took < want + LATE * slow_factor(),
        "took {took:?} for a {want:?} timeout"
    );
}

/// The kind of an ipckit error carried in an `io::Error`.
fn ipckit_kind(err: &io::Error) -> Option<ErrorKind> {
    err.get_ref()?
        .downcast_ref::<ipckit::Error>()
        .map(ipckit::Error::kind)
}

/// A listener made with `opts` and a connected pair from it: (listener,
/// server's end, client's end). The client connects on a thread of its own
/// while this one accepts.
fn pair_with<F: Face>(
    t: Transport,
    tag: &str,
    opts: &ListenerOptions,
) -> (F::Listener, F::Conn, F::Conn) {
    let mut listener = F::bind(opts, &t.bind_addr(tag)).expect("bind");
    let addr = F::local_addr(&listener);
    let client = thread::spawn(move || F::connect(&ConnectOptions::new(), &addr));
    let server = F::accept(&mut listener).expect("accept");
    let client = client
        .join()
        .expect("the connecting thread")
        .expect("connect");
    (listener, server, client)
}

fn pair<F: Face>(t: Transport, tag: &str) -> (F::Listener, F::Conn, F::Conn) {
    pair_with::<F>(t, tag, &ListenerOptions::new())
}

/// Waits for `want`, which the peer sent with one `put`.
#[track_caller]
fn expect<F: Face>(conn: &mut F::Conn, want: &[u8]) {
    let got = F::take(conn, want.len())
        .expect("receive")
        .expect("data, not the end");
    assert!(
        got == want,
        "got {} bytes, not the {} sent",
        got.len(),
        want.len()
    );
}

/// Waits for the end: the peer closed (or shut down its write half).
#[track_caller]
fn expect_end<F: Face>(conn: &mut F::Conn) {
    let got = F::take(conn, 1).expect("receive the end");
    assert_eq!(got, None, "data where the end was due");
}

/// A receive that must fail with `TimedOut`; returns how long it took.
#[track_caller]
fn expect_timeout<F: Face>(conn: &mut F::Conn) -> Duration {
    let start = Instant::now();
    let err = F::take(conn, 1).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    start.elapsed()
}

/// Data goes both ways unchanged and, on a message channel, as the
/// messages it was sent in.
pub(crate) fn connect_accept<F: Face>(t: Transport) {
    let (_listener, mut server, mut client) = pair::<F>(t, "conn");
    let sent: Vec<Vec<u8>> = F::SIZES
        .iter()
        .zip(0..)
        .map(|(&size, seq)| pattern(seq, size))
        .collect();
    for data in &sent {
        F::put(&mut client, data).expect("client send");
    }
    for data in &sent {
        expect::<F>(&mut server, data);
        F::put(&mut server, data).expect("server send");
    }
    for data in &sent {
        expect::<F>(&mut client, data);
    }
}

/// A listener serves client after client (the shared-memory channel, one
/// peer per listener, does not).
pub(crate) fn second_client<F: Face>(t: Transport) {
    let (mut listener, _server, _client) = pair::<F>(t, "second");
    let addr = F::local_addr(&listener);
    let second = thread::spawn(move || {
        let mut c = F::connect(&ConnectOptions::new(), &addr).expect("connect again");
        F::put(&mut c, b"second").expect("send");
        c
    });
    let mut served = F::accept(&mut listener).expect("accept the second client");
    expect::<F>(&mut served, b"second");
    drop(second.join().expect("the second client"));
}

/// A receive with nothing to receive fails with `TimedOut` after about the
/// read timeout; the connection stays usable.
pub(crate) fn read_timeout<F: Face>(t: Transport) {
    let (_listener, mut server, mut client) = pair::<F>(t, "rto");
    F::set_read_timeout(&mut client, Some(SHORT)).expect("set_read_timeout");
    assert_waited(expect_timeout::<F>(&mut client), SHORT);
    F::put(&mut server, b"late").expect("send");
    expect::<F>(&mut client, b"late");
}

/// A send to a peer that does not receive fails with `TimedOut` once the
/// buffers are full, within about the write timeout of that last send.
pub(crate) fn write_timeout<F: Face>(t: Transport) {
    let (_listener, _server, mut client) = pair::<F>(t, "wto");
    F::set_write_timeout(&mut client, Some(SHORT)).expect("set_write_timeout");
    let chunk = vec![7; 32 << 10];
    // No buffer holds 128 MiB: the sends must time out before that.
    for _ in 0..4096 {
        let start = Instant::now();
        if let Err(err) = F::put(&mut client, &chunk) {
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
            let took = start.elapsed();
            assert!(
                took < SHORT + LATE * slow_factor(),
                "the last send took {took:?}"
            );
            return;
        }
    }
    panic!("128 MiB sent to a peer that receives nothing, and no timeout");
}

/// A deadline already passed fails a receive at once; one reached while
/// waiting fails it then; clearing it lets the connection receive again.
pub(crate) fn deadlines<F: Deadlines>(t: Transport) {
    let (_listener, mut server, mut client) = pair::<F>(t, "dl");
    F::set_read_deadline(&mut client, Some(Instant::now()));
    let took = expect_timeout::<F>(&mut client);
    assert!(
        took < SHORT / 2 * slow_factor(),
        "a passed deadline took {took:?}"
    );
    F::set_read_deadline(&mut client, Some(Instant::now() + SHORT));
    assert_waited(expect_timeout::<F>(&mut client), SHORT);
    F::set_read_deadline(&mut client, None);
    F::put(&mut server, b"moved").expect("send");
    expect::<F>(&mut client, b"moved");
}

/// `retry_not_found`: a connect started before anyone serves the address
/// waits, and succeeds once a listener binds it.
pub(crate) fn retry_connects_once_bound<F: Face>(t: Transport) {
    let addr = t.unserved_addr("late");
    let err = F::connect(&ConnectOptions::new(), &addr).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::NotFound,
        "nobody serves {addr} yet: {err}"
    );
    let server = {
        let addr = addr.clone();
        thread::spawn(move || {
            thread::sleep(2 * SHORT * slow_factor());
            let mut listener = F::bind(&ListenerOptions::new(), &addr).expect("bind late");
            let bound = Instant::now();
            let mut served = F::accept(&mut listener).expect("accept");
            F::put(&mut served, b"hi").expect("send");
            (bound, listener, served)
        })
    };
    let start = Instant::now();
    let mut opts = ConnectOptions::new();
    opts.timeout(crate::limit()).retry_not_found(true);
    let mut client = F::connect(&opts, &addr).unwrap_or_else(|e| {
        panic!(
            "{addr}: the retrying connect failed after {:?}: {e}",
            start.elapsed()
        )
    });
    expect::<F>(&mut client, b"hi");
    let (bound, _listener, _served) = server.join().expect("the late server");
    assert!(
        start < bound,
        "the connect started after the bind: nothing was retried"
    );
}

/// `retry_not_found` with a 300 ms timeout to an address nobody serves:
/// `TimedOut` after about 300 ms, on every face.
pub(crate) fn retry_times_out<F: Face>(t: Transport) {
    let addr = t.unserved_addr("retry");
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let err = F::connect(
        ConnectOptions::new().timeout(timeout).retry_not_found(true),
        &addr,
    )
    .unwrap_err();
    let took = start.elapsed();
    assert_eq!(
        err.kind(),
        ErrorKind::TimedOut,
        "{addr}, after {took:?}: {err}"
    );
    assert!(err.is_timeout(), "{err}");
    assert_waited(took, timeout);
}

/// Nobody serving the address: `NotFound`, naming it.
pub(crate) fn not_found<F: Face>(t: Transport) {
    let addr = t.unserved_addr("nobody");
    let err = F::connect(&ConnectOptions::new(), &addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{addr}: {err}");
    assert!(err.to_string().contains(&addr), "names {addr}: {err}");
}

/// A second listener of a live address: `AddrInUse`.
pub(crate) fn addr_in_use<F: Face>(t: Transport) {
    let first = F::bind(&ListenerOptions::new(), &t.bind_addr("inuse")).expect("bind");
    let addr = F::local_addr(&first);
    let err = F::bind(&ListenerOptions::new(), &addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{addr}: {err}");
}

/// The peer closing is the end: what it sent before, then the end.
pub(crate) fn close_is_the_end<F: Face>(t: Transport) {
    let (_listener, mut server, mut client) = pair::<F>(t, "close");
    F::put(&mut server, b"last").expect("send");
    drop(server);
    expect::<F>(&mut client, b"last");
    expect_end::<F>(&mut client);
}

/// Each end sees the other's process and user (this process, this user);
/// TCP says `Unsupported`.
pub(crate) fn peer_credentials<F: Credentials>(t: Transport) {
    let (_listener, server, client) = pair::<F>(t, "cred");
    for (side, got) in [
        ("server", F::peer_credentials(&server)),
        ("client", F::peer_credentials(&client)),
    ] {
        if t.has_credentials() {
            let creds = got.unwrap_or_else(|e| panic!("{side}: {e}"));
            assert_eq!(creds.pid, Some(std::process::id()), "{side}: {creds:?}");
            let me = UserId::current().expect("the current user");
            assert_eq!(creds.user(), Some(me), "{side}: {creds:?}");
        } else {
            let err = got.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{side}: {err}");
        }
    }
}

/// `Shutdown::Write`: the peer receives what was sent, then the end, and can
/// still answer; where the transport has no half-close (Windows named
/// pipes), the documented `Unsupported`.
pub(crate) fn half_close<F: HalfClose>(t: Transport) {
    let (_listener, mut server, mut client) = pair::<F>(t, "half");
    F::put(&mut client, b"bye").expect("send");
    match F::shutdown_write(&mut client) {
        Ok(()) => {
            assert!(
                t.half_closes(),
                "{t:?} has no half-close, yet shutdown succeeded"
            );
            expect::<F>(&mut server, b"bye");
            expect_end::<F>(&mut server);
            F::put(&mut server, b"ack").expect("answer after the half-close");
            expect::<F>(&mut client, b"ack");
        }
        Err(err) => {
            assert!(!t.half_closes(), "{t:?} half-closes: {err}");
            assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
        }
    }
}

/// Message channels: a message at the listener's maximum size arrives; one
/// byte over is `FrameTooLarge` (refused to the sender where the transport
/// knows the peer's limit, at the receiver otherwise), naming both sizes,
/// and the receiver can still answer its peer.
pub(crate) fn max_message_size<F: Face>(t: Transport) {
    let mut opts = ListenerOptions::new();
    opts.max_message_size(1000);
    let (_listener, mut server, mut client) = pair_with::<F>(t, "max", &opts);
    F::put(&mut client, &pattern(1, 1000)).expect("a message at the limit");
    let refused_to_sender = F::put(&mut client, &pattern(2, 1001)).err();
    expect::<F>(&mut server, &pattern(1, 1000));
    let err = match refused_to_sender {
        Some(err) => err,
        None => F::take(&mut server, 1001).unwrap_err(),
    };
    assert_eq!(ipckit_kind(&err), Some(ErrorKind::FrameTooLarge), "{err}");
    let text = err.to_string();
    assert!(text.contains("1001") && text.contains("1000"), "{text}");
    F::put(&mut server, b"told").expect("the receiver answers");
    expect::<F>(&mut client, b"told");
}
