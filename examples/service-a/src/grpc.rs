//! `POST /call-grpc`: service-a as a gRPC client, through a tonic channel
//! that signs every call (`Signer::tonic_channel`).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use demo_grpc::demo_client::DemoClient;
use serde::Deserialize;
use serde_json::json;
use svcauth_sign::Sign;
use tonic::transport::{Channel, Endpoint};

use crate::{AppState, common, configured, error};

/// A tonic endpoint for `url`, with --ca-file and the client certificate
/// for https.
pub(crate) fn grpc_endpoint(
    url: &str,
    tls: &common::TlsArgs,
    client_key: Option<&std::path::Path>,
) -> Result<Endpoint, String> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| e.to_string())?;
    if endpoint.uri().scheme_str() != Some("https") {
        return Ok(endpoint);
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let mut config = tonic::transport::ClientTlsConfig::new();
    config = match &tls.ca_file {
        Some(ca) => config.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
        None => config.with_webpki_roots(),
    };
    if let (Some(cert), Some(key)) = (&tls.client_cert, client_key) {
        config = config.identity(tonic::transport::Identity::from_pem(
            read(cert)?,
            read(key)?,
        ));
    }
    endpoint.tls_config(config).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
pub(crate) struct GrpcQuery {
    #[serde(default)]
    aud: Option<String>,
    #[serde(default)]
    rpc: Option<String>,
    #[serde(default)]
    count: Option<u32>,
}

/// Calls the Demo gRPC service mapped to `aud` (`rpc=whoami`, the default,
/// or `rpc=count&count=N`, a server stream) and answers with the gRPC status
/// and the replies as JSON: 200 when the call succeeded, 502 when it ended
/// with another status (its code, message and challenge in the body).
pub(crate) async fn call_grpc(
    State(state): State<AppState>,
    query: Result<Query<GrpcQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "unreadable query; expected /call-grpc?aud=AUD[&rpc=whoami|count&count=N]".into(),
        );
    };
    let (aud, client) = match configured(&state.grpc, q.aud.as_deref(), "--call-grpc") {
        Ok(found) => found,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let mut client = client.clone();
    let answer = match q.rpc.as_deref().unwrap_or("whoami") {
        "whoami" => client
            .who_am_i(demo_grpc::WhoAmIRequest {})
            .await
            .map(|reply| {
                let reply = reply.into_inner();
                json!({ "iss": reply.iss, "sub": reply.sub, "aud": reply.aud, "kid": reply.kid })
            }),
        "count" => count(&mut client, q.count.unwrap_or(3)).await,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("rpc must be whoami or count, not {other:?}"),
            );
        }
    };
    match answer {
        Ok(mut body) => {
            body["grpc_status"] = json!(0);
            Json(body).into_response()
        }
        Err(status) => {
            tracing::warn!(aud = %aud, code = ?status.code(), message = status.message(), "gRPC call failed");
            let challenge = status
                .metadata()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok());
            (
                StatusCode::BAD_GATEWAY,
                Json(json!({
                    "grpc_status": status.code() as i32,
                    "grpc_message": status.message(),
                    "www_authenticate": challenge,
                })),
            )
                .into_response()
        }
    }
}

/// `Count`: the replies of one server-streaming call.
async fn count(
    client: &mut DemoClient<Sign<Channel>>,
    count: u32,
) -> Result<serde_json::Value, tonic::Status> {
    let mut stream = client
        .count(demo_grpc::CountRequest { count })
        .await?
        .into_inner();
    let mut subs = Vec::new();
    while let Some(reply) = stream.message().await? {
        subs.push(reply.sub);
    }
    Ok(json!({ "replies": subs.len(), "subs": subs }))
}
