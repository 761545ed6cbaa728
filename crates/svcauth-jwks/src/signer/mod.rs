//! [`JwsSigner`]: whatever holds a private key and signs JWS signing inputs,
//! in this process ([`SigningKey`]) or elsewhere (an HSM over PKCS#11, a
//! cloud KMS, Vault Transit).

use std::future::Future;
use std::pin::Pin;

use svcauth_core::{Algorithm, b64, jws};

use crate::error::KeyError;
use crate::public_key::Jwk;
use crate::signing_key::SigningKey;

#[cfg(feature = "pkcs11")]
pub mod pkcs11;

/// What [`JwsSigner::sign`] returns: a boxed future, so that the trait stays
/// dyn-compatible and a [`KeyRing`](crate::KeyRing) can hold keys of any
/// backend side by side.
pub type SignatureFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, KeyError>> + Send + 'a>>;

/// A private key that signs JWS signing inputs, wherever it is kept.
///
/// [`SigningKey`] (in process) implements it, and so does the PKCS#11
/// backend (feature `pkcs11`); a cloud KMS or Vault Transit backend is a
/// crate of its own implementing these five methods (docs/OPERATIONS.md
/// describes one). [`KeyRing`](crate::KeyRing) holds `Arc<dyn JwsSigner>`
/// handles, publishes their public JWKs and promotes and retires them the
/// same way whatever the backend.
///
/// A remote signature takes milliseconds. svcauth's signer therefore asks
/// for one only when minting a token, which its per-audience cache does in
/// the background before the current token nears expiry; keys in this
/// process are used through [`JwsSigner::local`], without an await point or
/// an allocation.
///
/// # Example
///
/// A signer that asks another one, as a KMS client would ask its service:
///
/// ```
/// use svcauth_core::Algorithm;
/// use svcauth_jwks::{JwsSigner, Jwk, SignatureFuture, SigningKey};
///
/// struct Remote(SigningKey);
///
/// impl JwsSigner for Remote {
///     fn kid(&self) -> &str { self.0.kid() }
///     fn alg(&self) -> Algorithm { self.0.algorithm() }
///     fn public_jwk(&self) -> Jwk { self.0.public_jwk() }
///     fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a> {
///         Box::pin(async move { self.0.sign(signing_input) })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let signer = Remote(SigningKey::generate(Algorithm::ES256).unwrap());
/// let token = svcauth_jwks::sign_jws(&signer, "JWT", br#"{"sub":"a"}"#).await.unwrap();
/// assert_eq!(token.split('.').count(), 3);
/// # }
/// ```
pub trait JwsSigner: Send + Sync + 'static {
    /// The key id published in the JWKS and put in every JWS header.
    fn kid(&self) -> &str;

    /// The one algorithm this key signs with.
    fn alg(&self) -> Algorithm;

    /// The public JWK, with `kid`, `alg` and `use: sig`.
    fn public_jwk(&self) -> Jwk;

    /// Signs `signing_input` (`base64url(header) "." base64url(payload)`)
    /// and returns the signature in JOSE form: for ECDSA the fixed-width
    /// `r || s` of RFC 7518 §3.4, never DER.
    ///
    /// A failure the backend may recover from (a token removed, a network
    /// error, a session lost) is [`KeyError::Unavailable`]; callers keep
    /// their cached tokens and try again later.
    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a>;

    /// The key itself when it is held in this process, so that hot paths
    /// sign without an await point or an allocated future. Remote backends
    /// keep the default, `None`.
    fn local(&self) -> Option<&SigningKey> {
        None
    }

    /// A short name of the backend, for logs and metrics (`memory`,
    /// `pkcs11`, ...).
    fn backend(&self) -> &'static str {
        "remote"
    }
}

impl JwsSigner for SigningKey {
    fn kid(&self) -> &str {
        SigningKey::kid(self)
    }

    fn alg(&self) -> Algorithm {
        self.algorithm()
    }

    fn public_jwk(&self) -> Jwk {
        SigningKey::public_jwk(self)
    }

    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a> {
        Box::pin(std::future::ready(SigningKey::sign(self, signing_input)))
    }

    fn local(&self) -> Option<&SigningKey> {
        Some(self)
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// A compact JWS of `claims` (a JSON object) signed by `signer`, with the
/// header `{"alg", "typ": typ, "kid"}`. A key in this process signs at once
/// (and a `typ` of `JWT` reuses its pre-encoded header); a remote one is
/// awaited.
pub async fn sign_jws(
    signer: &dyn JwsSigner,
    typ: &str,
    claims: &[u8],
) -> Result<String, KeyError> {
    if let Some(key) = signer.local() {
        return if typ == "JWT" {
            key.sign_jws(claims)
        } else {
            jws::encode(&jws_header(signer, typ), claims, |input| key.sign(input))
        };
    }
    let input = jws::signing_input(&jws_header(signer, typ), claims);
    let signature = signer.sign(input.as_bytes()).await?;
    check_signature_length(signer.alg(), &signature)?;
    Ok(jws::attach_signature(input, &signature))
}

/// The base64url JWS header svcauth puts on what `signer` signs.
pub fn jws_header(signer: &dyn JwsSigner, typ: &str) -> String {
    let header =
        serde_json::json!({ "alg": signer.alg().as_str(), "typ": typ, "kid": signer.kid() });
    b64::encode(header.to_string())
}

/// A remote backend's answer is checked before it goes into a token: an
/// ECDSA signature that is not `r || s` of the curve's width (a DER one,
/// say) would make every token it signs fail verification far away.
fn check_signature_length(alg: Algorithm, signature: &[u8]) -> Result<(), KeyError> {
    let expected = match alg {
        Algorithm::EdDSA => Some(64),
        Algorithm::ES256 => Some(64),
        Algorithm::ES384 => Some(96),
        _ => None,
    };
    match expected {
        Some(n) if signature.len() != n => Err(KeyError::Backend(
            "the signer returned a signature of the wrong length for its algorithm",
        )),
        _ if signature.is_empty() => Err(KeyError::Backend("the signer returned no signature")),
        _ => Ok(()),
    }
}

impl std::fmt::Debug for dyn JwsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwsSigner")
            .field("backend", &self.backend())
            .field("alg", &self.alg())
            .field("kid", &self.kid())
            .finish()
    }
}
