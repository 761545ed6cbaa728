//! The Demo gRPC service of the svcauth example pair: the code tonic
//! generates from `proto/demo.proto`, and [`Demo`], the callee's handlers,
//! which read the verified caller that svcauth's `VerifyLayer` put in the
//! request extensions.
//!
//! ```no_run
//! # async fn run(verifier: svcauth_verify::Verifier) -> Result<(), Box<dyn std::error::Error>> {
//! use demo_grpc::{Demo, demo_server::DemoServer};
//! use svcauth_verify::VerifyLayer;
//!
//! tonic::transport::Server::builder()
//!     .layer(VerifyLayer::new(verifier))
//!     .add_service(DemoServer::new(Demo))
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```

use std::pin::Pin;

use svcauth_verify::{Authentication, VerifiedClaims};
use tonic::{Request, Response, Status};

#[allow(missing_docs, unreachable_pub, clippy::all)]
mod generated {
    tonic::include_proto!("svcauth.demo");
}

pub use generated::*;

/// Replies to a `Count` call, at most this many: a stream's length is the
/// caller's choice, its cost is ours.
pub const MAX_COUNT: u32 = 10_000;

/// The callee's handlers: each answers with the verified caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demo;

/// The verified caller of `request`, or UNAUTHENTICATED when no
/// `VerifyLayer` put one there (a route where authentication is optional).
fn caller<T>(request: &Request<T>) -> Result<&VerifiedClaims, Status> {
    Authentication::caller(request.extensions())
        .ok_or_else(|| Status::unauthenticated("a bearer token is required"))
}

#[tonic::async_trait]
impl demo_server::Demo for Demo {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(WhoAmIReply {
            iss: caller.iss().to_owned(),
            sub: caller.sub().to_owned(),
            aud: caller.aud().iter().map(str::to_owned).collect(),
            kid: caller.kid().unwrap_or_default().to_owned(),
        }))
    }

    type CountStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<CountReply, Status>> + Send + 'static>>;

    async fn count(
        &self,
        request: Request<CountRequest>,
    ) -> Result<Response<Self::CountStream>, Status> {
        let sub = caller(&request)?.sub().to_owned();
        let count = request.get_ref().count;
        if count > MAX_COUNT {
            return Err(Status::invalid_argument(format!(
                "count may be at most {MAX_COUNT}"
            )));
        }
        let replies = (0..count).map(move |index| {
            Ok(CountReply {
                index,
                sub: sub.clone(),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }
}
