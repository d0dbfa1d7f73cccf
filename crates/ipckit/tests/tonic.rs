//! gRPC over ipckit streams (`ipckit::tokio::tonic`): a tonic client and server
//! on a named pipe (Windows) or a Unix socket (Unix), with a hand-written
//! service (the example's, so no `protoc`).
#![cfg(feature = "tonic")]

#[path = "../examples/tonic_greeter/greeter.rs"]
mod greeter;
#[path = "util/tokio.rs"]
mod tokio_util;
mod util;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use greeter::{
    CountdownRequest, Greeter, GreeterClient, GreeterServer, HelloReply, HelloRequest, TickStream,
    ticks_down_from,
};
use ipckit::tokio::tonic::{ConnectInfo, Connector, Incoming, endpoint};
use ipckit::{ConnectOptions, ErrorKind};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_util::{run, runtime};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use util::{slow_factor, unique_name};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// The greeter of these tests. `SayHello` for a name starting with `hold`
/// reports that it started and then waits for a permit of `release`, so a test
/// can keep calls in flight for as long as it needs.
struct TestGreeter {
    started: mpsc::UnboundedSender<String>,
    release: Arc<Semaphore>,
}

/// The other end of a [`TestGreeter`]'s hold.
struct Holds {
    started: mpsc::UnboundedReceiver<String>,
    release: Arc<Semaphore>,
}

impl Holds {
    /// Waits until `n` held calls have started.
    async fn wait_started(&mut self, n: usize) {
        for _ in 0..n {
            self.started
                .recv()
                .await
                .expect("the server is gone while calls were expected to start");
        }
    }
}

fn test_greeter() -> (TestGreeter, Holds) {
    let (tx, rx) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    (
        TestGreeter {
            started: tx,
            release: Arc::clone(&release),
        },
        Holds {
            started: rx,
            release,
        },
    )
}

impl Greeter for TestGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let on = request
            .extensions()
            .get::<ConnectInfo>()
            .map(|info| info.local_addr().to_string())
            .ok_or_else(|| Status::internal("no ipckit ConnectInfo in the request"))?;
        let name = request.into_inner().name;
        if name.starts_with("hold") {
            let _ = self.started.send(name.clone());
            self.release
                .acquire()
                .await
                .map_err(|_| Status::internal("release closed"))?
                .forget();
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello, {name} on {on}"),
        }))
    }

    async fn countdown(
        &self,
        request: Request<CountdownRequest>,
    ) -> Result<Response<TickStream>, Status> {
        Ok(Response::new(ticks_down_from(request.into_inner().from)))
    }
}

/// A running server: its task, its shutdown trigger, and how many connections
/// it accepted.
struct Server {
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    shutdown: Option<oneshot::Sender<()>>,
    accepted: Arc<AtomicUsize>,
}

/// Serves a [`TestGreeter`] on `addr` (bound before this returns) until the
/// shutdown trigger fires or is dropped.
fn serve(addr: &str, greeter: TestGreeter) -> Server {
    let incoming = Incoming::bind(addr).expect("bind the gRPC listener");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let incoming = incoming.map(move |conn| {
        if conn.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        conn
    });
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GreeterServer::new(greeter))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            }),
    );
    Server {
        task,
        shutdown: Some(tx),
        accepted,
    }
}

/// A channel to `addr` through the ipckit connector (default options).
async fn channel(addr: &str) -> Channel {
    endpoint()
        .connect_with_connector(Connector::new(addr).unwrap())
        .await
        .expect("connect a channel")
}

async fn hello(client: &mut GreeterClient, name: &str) -> Result<String, Status> {
    let reply = client.say_hello(HelloRequest { name: name.into() }).await?;
    Ok(reply.into_inner().message)
}

#[test]
fn unary_and_server_streaming_calls() {
    run(30, || async {
        let addr = format!("pipe:{}", unique_name("grpc"));
        let (greeter, _holds) = test_greeter();
        let server = serve(&addr, greeter);
        let mut client = GreeterClient::new(channel(&addr).await);

        // The reply names the listener's address: the ConnectInfo got through.
        assert_eq!(
            hello(&mut client, "Ada").await.unwrap(),
            format!("Hello, Ada on {addr}")
        );

        // Every tick, in order, through one response stream.
        let mut ticks = client
            .countdown(CountdownRequest { from: 2000 })
            .await
            .unwrap()
            .into_inner();
        let mut expect = 2000u32;
        let mut count = 0;
        while let Some(tick) = ticks.next().await {
            assert_eq!(tick.unwrap().value, expect);
            expect = expect.wrapping_sub(1);
            count += 1;
        }
        assert_eq!(count, 2001);

        // A unary call again after the stream, on the same connection.
        assert_eq!(
            hello(&mut client, "Grace").await.unwrap(),
            format!("Hello, Grace on {addr}")
        );
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        server.task.abort();
    });
}

#[test]
fn many_concurrent_calls_share_one_connection() {
    const CALLS: usize = 100;
    run(60, || async {
        let addr = format!("pipe:{}", unique_name("grpc-many"));
        let (greeter, mut holds) = test_greeter();
        let server = serve(&addr, greeter);
        let client = GreeterClient::new(channel(&addr).await);

        let calls: Vec<_> = (0..CALLS)
            .map(|i| {
                let mut client = client.clone();
                tokio::spawn(async move { hello(&mut client, &format!("hold-{i}")).await })
            })
            .collect();
        // All of them are in the handler at once: they are multiplexed on the
        // one connection, not queued behind each other.
        holds.wait_started(CALLS).await;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        holds.release.add_permits(CALLS);
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(
                call.await.unwrap().unwrap(),
                format!("Hello, hold-{i} on {addr}")
            );
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        server.task.abort();
    });
}

#[test]
fn several_clients_at_once() {
    const CLIENTS: usize = 6;
    const CALLS: usize = 20;
    run(60, || async {
        let addr = format!("pipe:{}", unique_name("grpc-clients"));
        let (greeter, _holds) = test_greeter();
        let server = serve(&addr, greeter);

        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let addr = addr.clone();
                tokio::spawn(async move {
                    let mut client = GreeterClient::new(channel(&addr).await);
                    for i in 0..CALLS {
                        let name = format!("client-{c}-call-{i}");
                        let message = hello(&mut client, &name).await.unwrap();
                        assert_eq!(message, format!("Hello, {name} on {addr}"));
                    }
                    let ticks: Vec<u32> = client
                        .countdown(CountdownRequest { from: c as u32 })
                        .await
                        .unwrap()
                        .into_inner()
                        .map(|t| t.unwrap().value)
                        .collect()
                        .await;
                    assert_eq!(ticks, (0..=c as u32).rev().collect::<Vec<_>>());
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), CLIENTS);
        server.task.abort();
    });
}

#[test]
fn graceful_shutdown_finishes_the_call_in_flight() {
    run(60, || async {
        let addr = format!("pipe:{}", unique_name("grpc-shutdown"));
        let (greeter, mut holds) = test_greeter();
        let mut server = serve(&addr, greeter);
        let mut client = GreeterClient::new(channel(&addr).await);

        let call = tokio::spawn(async move { hello(&mut client, "hold-last").await });
        holds.wait_started(1).await;
        server.shutdown.take().unwrap().send(()).unwrap();

        // The listener goes away at once: a new client is not served. On Unix
        // the socket file is gone. On Windows the pipe name lives while any
        // instance is open, here the one of the call in flight, so a client
        // finds it busy and its connect times out.
        let mut options = ConnectOptions::new();
        options.timeout(limit(1));
        let refused = async {
            loop {
                match options.connect_tokio(&addr).await {
                    Ok(_) => tokio::task::yield_now().await,
                    Err(e) => return e,
                }
            }
        };
        let err = tokio::time::timeout(limit(10), refused)
            .await
            .expect("the listener still accepted 10 s after the shutdown began");
        if cfg!(windows) {
            assert!(
                matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::NotFound),
                "{err}"
            );
        } else {
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        }
        // ...but the server waits for the call in flight.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut server.task)
                .await
                .is_err(),
            "the server ended with a call in flight"
        );
        assert!(!call.is_finished());

        holds.release.add_permits(1);
        assert_eq!(
            call.await.unwrap().unwrap(),
            format!("Hello, hold-last on {addr}")
        );
        tokio::time::timeout(limit(10), server.task)
            .await
            .expect("the server did not end after its last call")
            .unwrap()
            .expect("the server ended with an error");
        // Once it has ended, nothing is left at the address on any OS.
        let err = ConnectOptions::new()
            .connect_tokio(&addr)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    });
}

#[test]
fn a_client_whose_server_is_gone_gets_an_error() {
    run(60, || async {
        let addr = format!("pipe:{}", unique_name("grpc-gone"));
        // The server runs on a runtime of its own; dropping that runtime ends
        // every task and closes every pipe or socket of the server at once, as
        // if its process had died.
        let server_rt = runtime();
        let (greeter, mut holds) = test_greeter();
        let server = {
            let _enter = server_rt.enter();
            serve(&addr, greeter)
        };
        let mut client = GreeterClient::new(channel(&addr).await);
        assert_eq!(
            hello(&mut client, "first").await.unwrap(),
            format!("Hello, first on {addr}")
        );

        let mut held = client.clone();
        let call = tokio::spawn(async move { hello(&mut held, "hold-forever").await });
        holds.wait_started(1).await;
        drop(server);
        server_rt.shutdown_background();

        // The call in flight fails instead of hanging...
        let status = tokio::time::timeout(limit(10), call)
            .await
            .expect("the call in flight hung after its server died")
            .unwrap()
            .unwrap_err();
        assert_eq!(status.code(), Code::Unknown, "{status:?}");

        // ...and so do the next calls: once the channel has seen its
        // connection end it dials again, and nobody listens any more. A call
        // made before it has seen that may be cancelled with the connection
        // (`Cancelled`, seen in about 1 run in 5 on a loaded machine); every
        // call must fail, none may hang, and `Unavailable` must follow.
        let deadline = tokio::time::Instant::now() + limit(10);
        let mut seen = Vec::new();
        loop {
            let status = tokio::time::timeout_at(deadline, hello(&mut client, "again"))
                .await
                .unwrap_or_else(|_| panic!("calls after the server died hung; got {seen:?}"))
                .unwrap_err();
            match status.code() {
                Code::Unavailable => break,
                Code::Cancelled if seen.len() < 3 => seen.push(status.code()),
                _ => panic!("expected Unavailable after {seen:?}, got {status:?}"),
            }
        }
    });
}

#[test]
fn the_connector_waits_for_a_server_that_is_not_up_yet() {
    run(30, || async {
        let addr = format!("pipe:{}", unique_name("grpc-later"));

        // Without retry_not_found: an error at once (on the first poll) that
        // names the address.
        let err = match poll_once(std::pin::pin!(
            endpoint().connect_with_connector(Connector::new(&addr).unwrap())
        ))
        .await
        {
            Poll::Ready(result) => result.unwrap_err(),
            Poll::Pending => {
                panic!("a connect to {addr} without retry_not_found did not fail at once")
            }
        };
        let chain = error_chain(&err);
        assert!(chain.contains(&addr), "{chain}");
        assert!(chain.contains("nobody listens there"), "{chain}");

        // With it, the same first poll finds nobody there and waits instead of
        // failing (no sleep: the attempt has happened when the poll returns)...
        let mut options = ConnectOptions::new();
        options.timeout(limit(10)).retry_not_found(true);
        let connector = Connector::with_options(&addr, &options).unwrap();
        let endpoint = endpoint();
        let mut connecting = Box::pin(endpoint.connect_with_connector(connector));
        if let Poll::Ready(result) = poll_once(connecting.as_mut()).await {
            panic!("the connector did not wait for a server on {addr}: {result:?}");
        }
        // ...and the channel connects once the server binds.
        let (greeter, _holds) = test_greeter();
        let server = serve(&addr, greeter);
        let mut client = GreeterClient::new(connecting.await.unwrap());
        assert_eq!(
            hello(&mut client, "late").await.unwrap(),
            format!("Hello, late on {addr}")
        );
        server.task.abort();
    });
}

/// Polls `fut` once, with the task's real waker, and says what it returned.
async fn poll_once<F: Future>(mut fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// An error and its sources, one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
