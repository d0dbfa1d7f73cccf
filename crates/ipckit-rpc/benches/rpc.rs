//! Small JSON-RPC calls per second over a Unix socket, against tonic (gRPC)
//! over a Unix socket in the same run, and the blocking pair over shared
//! memory (`shm:`) and TCP on the loopback against the same pair over a Unix
//! socket:
//!
//! - one connection, one call after another (what a call costs);
//! - 16 connections at once, each calling one after another (what the server
//!   and the machine sustain).
//!
//! Each row is measured in several short rounds, the rows taking turns, and
//! reported as the median of its rounds: on a shared machine the load moves
//! during a run, and a row measured once, after another, would carry that.
//!
//! Each call sends a short name and gets `"Hello, NAME!"` back: ipckit-rpc's
//! method `hello` (blocking server and client, and the tokio ones), tonic's
//! `SayHello` of a hand-written service (tests/tonic's greeter, no `protoc`).
//! Both sides run in this process, on threads (blocking) or a 2-worker tokio
//! runtime (async), and talk over real Unix sockets.
//!
//! `cargo bench -p ipckit-rpc --bench rpc` (Unix). Figures: docs/BENCHMARKS.md.

#[cfg(unix)]
#[path = "../../ipckit/examples/tonic_greeter/greeter.rs"]
mod greeter;

#[cfg(unix)]
fn main() {
    unix::main();
}

#[cfg(not(unix))]
fn main() {
    eprintln!("the rpc benchmark compares over Unix sockets: run it on Unix");
}

#[cfg(unix)]
mod unix {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::thread;
    use std::time::{Duration, Instant};

    use ipckit::tokio::tonic::{Connector, Incoming, endpoint};
    use ipckit_rpc::{Client, Methods, Server};
    use tonic::{Request, Response, Status};

    use crate::greeter::{
        CountdownRequest, Greeter, GreeterClient, GreeterServer, HelloReply, HelloRequest,
        TickStream,
    };

    /// How long each measurement runs.
    const RUN: Duration = Duration::from_millis(500);
    /// How many times each is measured, the rows taking turns, so that a
    /// change in the machine's load (other work on it) falls on every row
    /// alike; each row's figure is the median of its rounds.
    const ROUNDS: usize = 5;
    /// The concurrent connections of the second measurement.
    const CONNECTIONS: usize = 16;

    /// What the blocking pair's calls go over.
    #[derive(Clone, Copy, Debug)]
    enum Transport {
        /// A portable name: a Unix socket.
        Unix,
        /// `shm:`: a shared-memory channel per connection.
        Shm,
        /// `tcp:` on the loopback.
        Tcp,
    }

    impl Transport {
        fn scheme(self) -> &'static str {
            match self {
                Transport::Unix => "",
                Transport::Shm => "shm:",
                Transport::Tcp => "tcp:",
            }
        }
    }

    fn hello(name: &str) -> String {
        format!("Hello, {name}!")
    }

    fn methods() -> Methods {
        let mut m = Methods::new();
        m.method("hello", |(name,): (String,)| Ok(hello(&name)));
        m
    }

    fn addr(tag: &str) -> String {
        format!("ipckit-bench-rpc-{tag}-{}", std::process::id())
    }

    /// Calls per second of `clients` threads, each with its own connection,
    /// calling one after another for `RUN`, over `transport`.
    fn blocking_rate(clients: usize, transport: Transport) -> f64 {
        let addr = match transport {
            Transport::Tcp => "tcp:127.0.0.1:0".to_owned(),
            t => format!("{}{}", t.scheme(), addr(&format!("blocking{clients}"))),
        };
        let server = Server::bind(addr.as_str(), methods()).unwrap();
        let addr = server.local_addr().to_string();
        let calls = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let client = Client::connect(addr.as_str()).unwrap();
                let (calls, stop) = (Arc::clone(&calls), Arc::clone(&stop));
                thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let got: String = client.call("hello", ("ipckit",)).unwrap();
                        assert_eq!(got, "Hello, ipckit!");
                        n += 1;
                    }
                    calls.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        let t = Instant::now();
        thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
        for th in threads {
            th.join().unwrap();
        }
        let rate = calls.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
        server.shutdown();
        rate
    }

    /// Lets the calling `tasks` run for `RUN`, stops them, and returns their
    /// calls per second (each task returns how many calls it made).
    async fn rate_over_run(tasks: Vec<tokio::task::JoinHandle<u64>>, stop: &AtomicBool) -> f64 {
        let t = Instant::now();
        tokio::time::sleep(RUN).await;
        stop.store(true, Ordering::Relaxed);
        let mut calls = 0;
        for task in tasks {
            calls += task.await.unwrap();
        }
        calls as f64 / t.elapsed().as_secs_f64()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// As `blocking_rate`, with ipckit-rpc's tokio server and clients.
    fn async_rate(clients: usize) -> f64 {
        runtime().block_on(async move {
            let addr = addr(&format!("async{clients}"));
            let server = ipckit_rpc::tokio::Server::bind(addr.as_str(), methods()).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let client = ipckit_rpc::tokio::Client::connect(addr.as_str())
                    .await
                    .unwrap();
                let stop = Arc::clone(&stop);
                tasks.push(tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let got: String = client.call("hello", ("ipckit",)).await.unwrap();
                        assert_eq!(got, "Hello, ipckit!");
                        n += 1;
                    }
                    n
                }));
            }
            let rate = rate_over_run(tasks, &stop).await;
            server.shutdown().await;
            rate
        })
    }

    struct Hello;

    impl Greeter for Hello {
        async fn say_hello(
            &self,
            request: Request<HelloRequest>,
        ) -> Result<Response<HelloReply>, Status> {
            Ok(Response::new(HelloReply {
                message: hello(&request.into_inner().name),
            }))
        }

        async fn countdown(
            &self,
            _request: Request<CountdownRequest>,
        ) -> Result<Response<TickStream>, Status> {
            Err(Status::unimplemented("not measured"))
        }
    }

    /// As `async_rate`, with tonic: `clients` channels, each its own
    /// connection, one `SayHello` after another.
    fn tonic_rate(clients: usize) -> f64 {
        runtime().block_on(async move {
            let addr = addr(&format!("tonic{clients}"));
            let incoming = Incoming::bind(addr.as_str()).unwrap();
            let (done, finished) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(GreeterServer::new(Hello))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = finished.await;
                    }),
            );
            let stop = Arc::new(AtomicBool::new(false));
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let channel = endpoint()
                    .connect_with_connector(Connector::new(addr.as_str()).unwrap())
                    .await
                    .unwrap();
                let mut client = GreeterClient::new(channel);
                let stop = Arc::clone(&stop);
                tasks.push(tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let reply = client
                            .say_hello(HelloRequest {
                                name: "ipckit".into(),
                            })
                            .await
                            .unwrap();
                        assert_eq!(reply.into_inner().message, "Hello, ipckit!");
                        n += 1;
                    }
                    n
                }));
            }
            let rate = rate_over_run(tasks, &stop).await;
            let _ = done.send(());
            server.await.unwrap().unwrap();
            rate
        })
    }

    fn median(mut rates: Vec<f64>) -> f64 {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    }

    /// `-- shm`: only the Unix-socket and `shm:` rows on one connection,
    /// what the `shm:` target compares (quick to rerun and to profile).
    fn shm_only() {
        let (mut unix, mut shm) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            unix.push(blocking_rate(1, Transport::Unix));
            shm.push(blocking_rate(1, Transport::Shm));
        }
        let (unix, shm) = (median(unix), median(shm));
        println!("1 connection, calls one after another:");
        println!("  ipckit-rpc blocking       {unix:>10.0} calls/s");
        println!(
            "  ipckit-rpc blocking, shm: {shm:>10.0} calls/s  ({:.2}x unix)",
            shm / unix
        );
    }

    pub(super) fn main() {
        if std::env::args().skip(1).any(|a| a == "shm") {
            return shm_only();
        }
        println!(
            "small calls per second over Unix sockets (and shm:, tcp:): the median of \
             {ROUNDS} rounds of {RUN:?} each, the rows taking turns\n"
        );
        for clients in [1, CONNECTIONS] {
            let mut rounds: [Vec<f64>; 5] = Default::default();
            for _ in 0..ROUNDS {
                rounds[0].push(tonic_rate(clients));
                rounds[1].push(blocking_rate(clients, Transport::Unix));
                rounds[2].push(async_rate(clients));
                rounds[3].push(blocking_rate(clients, Transport::Shm));
                rounds[4].push(blocking_rate(clients, Transport::Tcp));
            }
            let [tonic, blocking, asynchronous, shm, tcp] = rounds.map(median);
            let what = if clients == 1 {
                "1 connection, calls one after another".to_owned()
            } else {
                format!("{clients} connections at once")
            };
            println!("{what}:");
            println!("  tonic (gRPC)              {tonic:>10.0} calls/s");
            let rows = [
                ("ipckit-rpc blocking      ", blocking),
                ("ipckit-rpc tokio         ", asynchronous),
            ];
            for (name, rate) in rows {
                println!(
                    "  {name} {rate:>10.0} calls/s  ({:.2}x tonic)",
                    rate / tonic
                );
            }
            println!(
                "  ipckit-rpc blocking, shm: {shm:>10.0} calls/s  ({:.2}x unix, {:.2}x tcp)",
                shm / blocking,
                shm / tcp
            );
            println!(
                "  ipckit-rpc blocking, tcp: {tcp:>10.0} calls/s  ({:.2}x unix)",
                tcp / blocking
            );
        }
    }
}
