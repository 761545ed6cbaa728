//! service-a's WIMSE credentials: a WIT from a file (`--wit`) or from an
//! identity server (`--wit-issuer`), the proof key (`--wit-key`), and the
//! [`ProofLayer`] that puts the WIT and a fresh proof on every `/call`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;
use svcauth_core::Algorithm;
use svcauth_jwks::SigningKey;
use svcauth_sign::wimse::{ProofLayer, WorkloadIdentity};
use svcauth_sign::{BaseUrl, Signer, TargetAudience};

/// The WIMSE flags.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct WimseArgs {
    /// Call with a WIMSE Workload Identity Token and a proof per request,
    /// the WIT read from FILE (issued out of band; re-read every 30 s, so
    /// whoever renews it need only rewrite the file). Needs --wit-key.
    #[arg(
        long,
        env = "SERVICE_A_WIT",
        value_name = "FILE",
        requires = "wit_key",
        conflicts_with = "wit_issuer"
    )]
    wit: Option<PathBuf>,
    /// Obtain the WIT from this identity server (examples/wit-issuer):
    /// `POST URL/wit` with this service's public proof key and a token
    /// for --wit-issuer-audience; renewed at 80 % of its life.
    #[arg(long, env = "SERVICE_A_WIT_ISSUER", value_name = "URL")]
    wit_issuer: Option<String>,
    /// The identity server's audience (default: the origin of --wit-issuer).
    #[arg(long, env = "SERVICE_A_WIT_ISSUER_AUDIENCE", value_name = "AUD")]
    wit_issuer_audience: Option<String>,
    /// The proof key (PKCS#8 PEM) the WIT confirms; with --wit-issuer it
    /// may be left out and an ES256 key is generated at start.
    #[arg(long, env = "SERVICE_A_WIT_KEY", value_name = "PEM_FILE")]
    wit_key: Option<PathBuf>,
}

/// The proof layer once a WIT is held, shared with the handlers.
#[derive(Clone, Default)]
pub(crate) struct Proofs(Arc<OnceLock<(WorkloadIdentity, ProofLayer)>>);

impl Proofs {
    /// The layer, or `None` while no WIT has come yet.
    pub(crate) fn layer(&self) -> Option<&ProofLayer> {
        self.0.get().map(|(_, layer)| layer)
    }

    /// The current WIT, for `/healthz`.
    pub(crate) fn status(&self) -> serde_json::Value {
        match self.0.get() {
            Some((identity, _)) => {
                let wit = identity.wit();
                json!({ "workload": wit.workload().as_str(), "expires_at": wit.expires_at() })
            }
            None => serde_json::Value::Null,
        }
    }
}

/// What `run` needs to finish the set-up after the signer is built.
pub(crate) struct Plan {
    key: SigningKey,
    source: Source,
}

enum Source {
    File(PathBuf),
    Issuer { url: BaseUrl, audience: String },
}

impl WimseArgs {
    /// Reads the flags; adds the identity server's audience to `signer`
    /// (so this service can authenticate to it). `None` without WIMSE.
    pub(crate) fn plan(
        &self,
        signer: svcauth_sign::SignerBuilder,
    ) -> Result<(Option<Plan>, svcauth_sign::SignerBuilder), String> {
        let source = match (&self.wit, &self.wit_issuer) {
            (Some(path), _) => Source::File(path.clone()),
            (None, Some(url)) => {
                let url = BaseUrl::parse(url).map_err(|e| format!("--wit-issuer: {e}"))?;
                let origin = url.origin().ascii_serialization();
                let audience = self.wit_issuer_audience.clone().unwrap_or(origin);
                Source::Issuer { url, audience }
            }
            (None, None) => return Ok((None, signer)),
        };
        let key = match &self.wit_key {
            Some(path) => {
                SigningKey::from_pem_file(path, None).map_err(|e| format!("--wit-key: {e}"))?
            }
            None => SigningKey::generate(Algorithm::ES256).map_err(|e| e.to_string())?,
        };
        let signer = match &source {
            Source::Issuer { url, audience } => {
                signer.allow_audience_at(&url.origin().ascii_serialization(), audience)
            }
            Source::File(_) => signer,
        };
        Ok((Some(Plan { key, source }), signer))
    }
}

impl Plan {
    /// Starts obtaining and renewing the WIT in the background; `proofs`
    /// is filled when the first one is held. `origins` are where proofs go.
    pub(crate) fn start(
        self,
        proofs: Proofs,
        origins: Vec<String>,
        signer: Signer,
        http: reqwest::Client,
    ) {
        tokio::spawn(async move {
            let key_pem = self.key.public_jwk();
            let mut key = Some(self.key);
            let mut current = String::new();
            loop {
                let fetched = match &self.source {
                    Source::File(path) => {
                        let path = path.clone();
                        tokio::task::spawn_blocking(move || {
                            std::fs::read_to_string(&path)
                                .map_err(|e| format!("--wit {}: {e}", path.display()))
                        })
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()))
                    }
                    Source::Issuer { url, audience } => {
                        fetch(url, audience, &key_pem, &signer, &http).await
                    }
                };
                let wait = match fetched {
                    Ok(wit) if wit.trim() == current => Duration::from_secs(30),
                    Ok(wit) => match install(&proofs, &mut key, &wit, &origins) {
                        Ok(expires_at) => {
                            current = wit.trim().to_owned();
                            tracing::info!(expires_at, "WIT held");
                            renew_after(&self.source, expires_at)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "WIT refused");
                            Duration::from_secs(5)
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "no WIT yet; retrying");
                        Duration::from_secs(2)
                    }
                };
                tokio::time::sleep(wait).await;
            }
        });
    }
}

/// The first WIT builds the identity and the layer; later ones renew it.
fn install(
    proofs: &Proofs,
    key: &mut Option<SigningKey>,
    wit: &str,
    origins: &[String],
) -> Result<u64, String> {
    if let Some((identity, _)) = proofs.0.get() {
        identity.set_wit(wit).map_err(|e| e.to_string())?;
        return Ok(identity.wit().expires_at());
    }
    let identity =
        WorkloadIdentity::new(key.take().ok_or("no proof key")?, wit).map_err(|e| e.to_string())?;
    let mut layer = ProofLayer::new(identity.clone());
    for origin in origins {
        layer = layer.origin(origin).map_err(|e| format!("{origin}: {e}"))?;
    }
    let expires_at = identity.wit().expires_at();
    let _ = proofs.0.set((identity, layer));
    Ok(expires_at)
}

/// A file is re-read every 30 s; an issued WIT is renewed at 80 % of the
/// life it has left.
fn renew_after(source: &Source, expires_at: u64) -> Duration {
    match source {
        Source::File(_) => Duration::from_secs(30),
        Source::Issuer { .. } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            Duration::from_secs((expires_at.saturating_sub(now) * 4 / 5).max(5))
        }
    }
}

/// `POST <issuer>/wit` with the public proof key and a token for the issuer.
async fn fetch(
    url: &BaseUrl,
    audience: &str,
    key: &svcauth_jwks::Jwk,
    signer: &Signer,
    http: &reqwest::Client,
) -> Result<String, String> {
    let url = url.join("/wit").map_err(|e| e.to_string())?;
    let mut options = http::Extensions::new();
    options.insert(TargetAudience(audience.to_owned()));
    let request = signer
        .sign_with(
            http.post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json!({ "jwk": key }).to_string()),
            &options,
        )
        .await
        .map_err(|e| e.to_string())?;
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match body["wit"].as_str() {
        Some(wit) if status.is_success() => Ok(wit.to_owned()),
        _ => Err(format!("the identity server answered {status}: {body}")),
    }
}
