//! A tiny gRPC service written by hand with tonic's codegen-free API — what
//! `tonic-prost-build` would generate from this `.proto`, without needing
//! `protoc`:
//!
//! ```proto
//! syntax = "proto3";
//! package greeter;
//! service Greeter {
//!   rpc SayHello(HelloRequest) returns (HelloReply);
//!   rpc Countdown(CountdownRequest) returns (stream Tick);
//! }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; }
//! message CountdownRequest { uint32 from = 1; }
//! message Tick { uint32 value = 1; }
//! ```
//!
//! Shared by the `tonic_greeter` example and `tests/tonic.rs`.
#![allow(dead_code)] // the example and the tests use different parts

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio_stream::Stream;
use tonic::body::Body;
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// `greeter.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloRequest {
    #[prost(string, tag = "1")]
    pub(crate) name: String,
}

/// `greeter.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloReply {
    #[prost(string, tag = "1")]
    pub(crate) message: String,
}

/// `greeter.CountdownRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CountdownRequest {
    #[prost(uint32, tag = "1")]
    pub(crate) from: u32,
}

/// `greeter.Tick`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Tick {
    #[prost(uint32, tag = "1")]
    pub(crate) value: u32,
}

const SERVICE: &str = "greeter.Greeter";
const SAY_HELLO: &str = "/greeter.Greeter/SayHello";
const COUNTDOWN: &str = "/greeter.Greeter/Countdown";

/// The stream of ticks `Countdown` answers with.
pub(crate) type TickStream = Pin<Box<dyn Stream<Item = Result<Tick, Status>> + Send>>;

/// The ticks `from`, `from - 1`, ..., 0, for a `Countdown` implementation.
pub(crate) fn ticks_down_from(from: u32) -> TickStream {
    Box::pin(tokio_stream::iter(
        (0..=from).rev().map(|value| Ok(Tick { value })),
    ))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The server side: what an implementation of the service provides.
pub(crate) trait Greeter: Send + Sync + 'static {
    fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> impl Future<Output = Result<Response<HelloReply>, Status>> + Send;

    fn countdown(
        &self,
        request: Request<CountdownRequest>,
    ) -> impl Future<Output = Result<Response<TickStream>, Status>> + Send;
}

/// A `Greeter` as the HTTP/2 service tonic's `Server` routes requests to.
pub(crate) struct GreeterServer<T> {
    inner: Arc<T>,
}

impl<T> GreeterServer<T> {
    pub(crate) fn new(greeter: T) -> Self {
        GreeterServer {
            inner: Arc::new(greeter),
        }
    }
}

impl<T> Clone for GreeterServer<T> {
    fn clone(&self) -> Self {
        GreeterServer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> tonic::server::NamedService for GreeterServer<T> {
    const NAME: &'static str = SERVICE;
}

struct SayHelloSvc<T>(Arc<T>);

impl<T: Greeter> tonic::server::UnaryService<HelloRequest> for SayHelloSvc<T> {
    type Response = HelloReply;
    type Future = BoxFuture<Result<Response<HelloReply>, Status>>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.say_hello(request).await })
    }
}

struct CountdownSvc<T>(Arc<T>);

impl<T: Greeter> tonic::server::ServerStreamingService<CountdownRequest> for CountdownSvc<T> {
    type Response = Tick;
    type ResponseStream = TickStream;
    type Future = BoxFuture<Result<Response<TickStream>, Status>>;

    fn call(&mut self, request: Request<CountdownRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.countdown(request).await })
    }
}

impl<T: Greeter> tower_service::Service<http::Request<Body>> for GreeterServer<T> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        match request.uri().path() {
            SAY_HELLO => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(SayHelloSvc(inner), request).await)
            }),
            COUNTDOWN => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.server_streaming(CountdownSvc(inner), request).await)
            }),
            path => {
                let status = Status::unimplemented(format!("{SERVICE} has no method at {path}"));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

/// The client side, over any tonic channel.
#[derive(Debug, Clone)]
pub(crate) struct GreeterClient {
    inner: tonic::client::Grpc<tonic::transport::Channel>,
}

impl GreeterClient {
    pub(crate) fn new(channel: tonic::transport::Channel) -> Self {
        GreeterClient {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("the channel is not ready: {e}")))
    }

    pub(crate) async fn say_hello(
        &mut self,
        request: impl tonic::IntoRequest<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.ready().await?;
        let path = http::uri::PathAndQuery::from_static(SAY_HELLO);
        self.inner
            .unary(request.into_request(), path, ProstCodec::default())
            .await
    }

    pub(crate) async fn countdown(
        &mut self,
        request: impl tonic::IntoRequest<CountdownRequest>,
    ) -> Result<Response<Streaming<Tick>>, Status> {
        self.ready().await?;
        let path = http::uri::PathAndQuery::from_static(COUNTDOWN);
        self.inner
            .server_streaming(request.into_request(), path, ProstCodec::default())
            .await
    }
}
