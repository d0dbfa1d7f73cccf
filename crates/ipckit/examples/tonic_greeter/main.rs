//! A tonic gRPC server and client over an ipckit stream: a named pipe on
//! Windows, a Unix socket on Unix (or any stream address ipckit takes).
//!
//! ```text
//! cargo run -p ipckit --features tonic --example tonic_greeter               # both, in one process
//! cargo run -p ipckit --features tonic --example tonic_greeter serve pipe:greeter
//! cargo run -p ipckit --features tonic --example tonic_greeter call pipe:greeter Ada
//! ```
//!
//! With no address, both ends run in this process on `pipe:tonic-greeter-PID`.
//! `serve` runs until it is killed; `call` waits up to 10 s for the server to
//! come up.

mod greeter;

use std::process::ExitCode;
use std::time::Duration;

use greeter::{
    CountdownRequest, Greeter, GreeterClient, GreeterServer, HelloReply, HelloRequest, TickStream,
    ticks_down_from,
};
use ipckit::tokio::tonic::{ConnectInfo, Connector, Incoming, endpoint};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        // Which listener the call came in on, from the connect info.
        let on = request
            .extensions()
            .get::<ConnectInfo>()
            .map(|info| info.local_addr().to_string())
            .unwrap_or_default();
        let message = format!("Hello, {}! (served on {on})", request.into_inner().name);
        Ok(Response::new(HelloReply { message }))
    }

    async fn countdown(
        &self,
        request: Request<CountdownRequest>,
    ) -> Result<Response<TickStream>, Status> {
        Ok(Response::new(ticks_down_from(request.into_inner().from)))
    }
}

async fn serve(addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let incoming = Incoming::bind(addr)?;
    println!("serving greeter.Greeter on {}", incoming.local_addr());
    tonic::transport::Server::builder()
        .add_service(GreeterServer::new(MyGreeter))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

async fn call(addr: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut options = ipckit::ConnectOptions::new();
    options
        .timeout(Duration::from_secs(10))
        .retry_not_found(true);
    let channel = endpoint()
        .connect_with_connector(Connector::with_options(addr, &options)?)
        .await?;
    let mut client = GreeterClient::new(channel);

    let reply = client.say_hello(HelloRequest { name: name.into() }).await?;
    println!("{}", reply.into_inner().message);

    let mut ticks = client
        .countdown(CountdownRequest { from: 3 })
        .await?
        .into_inner();
    let mut values = Vec::new();
    while let Some(tick) = ticks.next().await {
        values.push(tick?.value);
    }
    println!("countdown: {values:?}");
    Ok(())
}

async fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    match args {
        [] => {
            let addr = format!("pipe:tonic-greeter-{}", std::process::id());
            let server = tokio::spawn({
                let addr = addr.clone();
                async move { serve(&addr).await.map_err(|e| e.to_string()) }
            });
            let called = call(&addr, "world").await;
            server.abort();
            called
        }
        [mode, addr] if mode == "serve" => serve(addr).await,
        [mode, addr] if mode == "call" => call(addr, "world").await,
        [mode, addr, name] if mode == "call" => call(addr, name).await,
        _ => Err("usage: tonic_greeter [serve ADDR | call ADDR [NAME]]".into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // tonic's errors say "transport error" and keep the cause (ipckit's
            // error, which names the address) as their innermost source.
            let mut cause: &dyn std::error::Error = &*e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            let text = if std::ptr::addr_eq(cause, &*e) {
                e.to_string()
            } else {
                format!("{e}: {cause}")
            };
            eprintln!("tonic_greeter: {text}");
            ExitCode::FAILURE
        }
    }
}
