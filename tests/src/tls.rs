//! A private CA made in the test ([`Pki`], with rcgen) and a TLS server
//! that demands a client certificate from it ([`mtls_server`]).

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A private CA made for the test, and the certificates it signs.
pub struct Pki {
    /// The CA.
    pub ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("test PKI");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Pki {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().expect("test PKI"))
                .expect("test PKI"),
        }
    }

    /// What a client needs: the CA as a root, and a certificate for `name`
    /// with its key.
    pub fn client_side(&self, name: &str) -> (reqwest::Certificate, reqwest::Identity) {
        let ca = reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).expect("test PKI");
        let (cert, key) = self.issue(name);
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        (
            ca,
            reqwest::Identity::from_pem(pem.as_bytes()).expect("test PKI"),
        )
    }

    /// A certificate for `name`, and its private key.
    pub fn issue(&self, name: &str) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().expect("test PKI");
        let params = CertificateParams::new(vec![name.to_owned()]).expect("test PKI");
        (params.signed_by(&key, &self.ca).expect("test PKI"), key)
    }
}

/// PEM files (certificates and keys for the examples' flags) in a
/// directory of their own, removed on drop.
#[derive(Debug)]
pub struct PemFiles(std::path::PathBuf);

impl PemFiles {
    /// A new, empty directory under the system's temporary directory.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "svcauth-tls-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        PemFiles(dir)
    }

    /// The files of a TLS server on `localhost`: `ca.pem` (`pki`'s CA), and
    /// `<name>.pem` with `<name>-key.pem` (its certificate and key). Their
    /// paths, in that order.
    pub fn localhost_server(&self, pki: &Pki, name: &str) -> (String, String, String) {
        let (cert, key) = pki.issue("localhost");
        (
            self.write("ca.pem", &pki.ca.pem()),
            self.write(&format!("{name}.pem"), &cert.pem()),
            self.write(&format!("{name}-key.pem"), &key.serialize_pem()),
        )
    }

    /// Writes `text` to `name` in the directory; its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("temporary file");
        path.to_str().expect("UTF-8 temporary path").to_owned()
    }
}

impl Drop for PemFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `app` over TLS on a free loopback port, with a certificate for
/// `localhost` from `pki`, refusing clients without a certificate from the
/// same CA.
pub async fn mtls_server(pki: &Pki, app: Router) -> u16 {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).expect("test PKI");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("test PKI");
    let (cert, key) = pki.issue("localhost");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("test PKI")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("test PKI");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("test PKI");
    let port = listener.local_addr().expect("test PKI").port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A client without the right certificate fails here.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                }
            });
        }
    });
    port
}
