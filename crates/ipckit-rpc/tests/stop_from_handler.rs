//! A server told to stop from one of its own handlers (a `"shutdown"`
//! method): the call that asked gets its response, a call in flight on
//! another connection finishes too, and the server stops; nothing waits for
//! itself (each of these tests hung until its watchdog before).

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use ipckit_rpc::{Client, ErrorKind, Methods, Server};
use util::{unique_name, watchdog};

fn limit() -> Duration {
    Duration::from_secs(30) * util::slow_factor()
}

/// How a handler ends the server it holds.
#[derive(Clone, Copy, Debug)]
enum End {
    Shutdown,
    Drop,
}

/// Waits until connecting to `addr` is refused: the server has stopped
/// listening. A condition polled until the watchdog, not a guess at a delay.
fn wait_until_refused(addr: &ipckit::Address) {
    let started = Instant::now();
    loop {
        match Client::connect(addr) {
            Err(e) if e.kind() == ErrorKind::Transport => return,
            // A `shm:` server that is stopping hangs up on a rendezvous it
            // had accepted: stopping, not stopped yet.
            Err(e) if e.kind() == ErrorKind::Disconnected => {
                assert!(started.elapsed() < limit(), "still stopping: {e}");
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("connect while the server stops: {e}"),
            Ok(_) => {
                assert!(
                    started.elapsed() < limit(),
                    "still accepting after the stop"
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// `warm`: the method is called once before (with no server to stop), so its
/// real call is quick enough to run on the connection's own thread instead of
/// the pool.
fn blocking_case(scheme: &'static str, end: End, warm: bool) {
    watchdog(limit(), move || {
        let slot: Arc<Mutex<Option<Server>>> = Arc::new(Mutex::new(None));
        let (entered_tx, entered) = mpsc::sync_channel::<()>(1);
        let (open, open_rx) = mpsc::sync_channel::<()>(1);
        let open_rx = Mutex::new(open_rx);
        let mut m = Methods::new();
        let s = Arc::clone(&slot);
        m.method("add", |(a, b): (i64, i64)| Ok(a + b))
            .method("stop", move |()| {
                let server = s.lock().unwrap().take();
                let Some(server) = server else {
                    return Ok("nothing to stop");
                };
                match end {
                    End::Shutdown => server.shutdown(),
                    End::Drop => drop(server),
                }
                Ok("stopping")
            })
            .method("wait", move |()| {
                entered_tx.send(()).unwrap();
                open_rx.lock().unwrap().recv().unwrap();
                Ok("waited")
            });
        let name = unique_name("rpc-self-stop");
        let server = Server::bind(format!("{scheme}:{name}"), m).unwrap();
        let addr = server.local_addr().clone();
        let asker = Client::connect(&addr).unwrap();
        if warm {
            assert_eq!(
                asker.call::<_, String>("stop", ()).unwrap(),
                "nothing to stop"
            );
        }
        *slot.lock().unwrap() = Some(server);
        // A call in flight on another connection when the stop comes.
        let other = Client::connect(&addr).unwrap();
        let waiting = thread::spawn(move || {
            let r = other.call::<_, String>("wait", ());
            (r, other)
        });
        entered.recv().unwrap();
        assert_eq!(asker.call::<_, String>("stop", ()).unwrap(), "stopping");
        open.send(()).unwrap();
        let (r, other) = waiting.join().unwrap();
        assert_eq!(r.unwrap(), "waited", "the call in flight was cut ({end:?})");
        wait_until_refused(&addr);
        for client in [&asker, &other] {
            let err = client.call::<_, i64>("add", (1, 2)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        }
    });
}

#[test]
fn shutdown_from_a_handler_on_the_pool() {
    blocking_case("pipe", End::Shutdown, false);
}

#[test]
fn shutdown_from_a_quick_handler_on_the_connections_thread() {
    blocking_case("pipe", End::Shutdown, true);
}

#[test]
fn dropping_the_server_in_its_handler() {
    blocking_case("pipe", End::Drop, false);
    blocking_case("pipe", End::Drop, true);
}

/// `shm:` connections are served on threads of their own, not the runtime's.
#[test]
fn shutdown_from_a_handler_of_a_shared_memory_server() {
    blocking_case("shm", End::Shutdown, false);
    blocking_case("shm", End::Shutdown, true);
}

#[test]
fn async_shutdown_awaited_in_an_async_handler() {
    watchdog(limit(), || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            type Slot = Arc<Mutex<Option<ipckit_rpc::tokio::Server>>>;
            let slot: Slot = Arc::new(Mutex::new(None));
            let s = Arc::clone(&slot);
            let mut m = Methods::new();
            m.method("add", |(a, b): (i64, i64)| Ok(a + b))
                .method_async("stop", move |()| {
                    let s = Arc::clone(&s);
                    async move {
                        let server = s.lock().unwrap().take();
                        if let Some(server) = server {
                            server.shutdown().await;
                        }
                        Ok("stopping")
                    }
                });
            let server = ipckit_rpc::tokio::Server::bind(
                format!("pipe:{}", unique_name("rpc-self-stop-async")),
                m,
            )
            .unwrap();
            let addr = server.local_addr().clone();
            *slot.lock().unwrap() = Some(server);
            let client = ipckit_rpc::tokio::Client::connect(&addr).await.unwrap();
            assert_eq!(
                client.call::<_, String>("stop", ()).await.unwrap(),
                "stopping"
            );
            let err = client.call::<_, i64>("add", (1, 2)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
            // The stop goes on in the background: until it is refused.
            let started = Instant::now();
            loop {
                match ipckit_rpc::tokio::Client::connect(&addr).await {
                    Err(e) => break assert_eq!(e.kind(), ErrorKind::Transport, "{e}"),
                    Ok(_) => assert!(started.elapsed() < limit(), "still accepting"),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    });
}
