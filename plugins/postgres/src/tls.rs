//! TLS for tokio-postgres with rustls and the `ring` provider.
//!
//! `prefer` and `require` encrypt without checking the certificate, as libpq
//! does; `verify-full` checks the chain against `ca_file` and the host name.
//! Channel binding is not offered, so SCRAM runs without `-PLUS`.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::progress::{Progress, Step};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    /// The CA file could not be read or held no certificate.
    #[error("`ca_file` {path}: {problem}")]
    CaFile { path: String, problem: String },
    /// rustls refused the configuration.
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate in a PEM file into a root store.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let fail = |problem: String| TlsSetupError::CaFile {
        path: path.display().to_string(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("holds no PEM certificate".to_owned()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| fail(format!("bad certificate: {e}")))?;
    }
    Ok(roots)
}

/// Builds the rustls config: verifying against `ca_file` when given, else
/// encrypting without verification.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let mut config = match ca_file {
        Some(path) => builder
            .with_root_certificates(load_roots(path)?)
            .with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth(),
    };
    // PostgreSQL 17 checks ALPN on direct TLS; older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Arc::new(config))
}

/// libpq's `require`: encrypted, but any certificate is accepted. Handshake
/// signatures are still checked, so the peer must hold the certificate's key.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl NoVerification {
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.0.signature_verification_algorithms
    }
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

/// The `MakeTlsConnect` handed to tokio-postgres for every connection; it
/// also records the connect steps in [`Progress`].
#[derive(Debug, Clone)]
pub(crate) struct RustlsConnector {
    config: Arc<ClientConfig>,
    progress: Progress,
}

impl RustlsConnector {
    pub(crate) fn new(config: Arc<ClientConfig>, progress: Progress) -> Self {
        RustlsConnector { config, progress }
    }
}

impl MakeTlsConnect<Socket> for RustlsConnector {
    type Stream = RustlsStream;
    type TlsConnect = RustlsHandshake;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsHandshake, Self::Error> {
        // tokio-postgres calls this right after the socket connects.
        self.progress.set(Step::Startup);
        // Unix sockets have no host name; TLS is never used on them.
        let name = if domain.is_empty() {
            "localhost"
        } else {
            domain
        };
        Ok(RustlsHandshake {
            config: Arc::clone(&self.config),
            name: ServerName::try_from(name.to_owned())?,
            progress: self.progress.clone(),
        })
    }
}

/// One pending handshake.
#[derive(Debug)]
pub(crate) struct RustlsHandshake {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    progress: Progress,
}

type HandshakeFuture = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

impl TlsConnect<Socket> for RustlsHandshake {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = HandshakeFuture;

    fn connect(self, stream: Socket) -> HandshakeFuture {
        let RustlsHandshake {
            config,
            name,
            progress,
        } = self;
        progress.set(Step::Tls);
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await?;
            progress.set(Step::Authenticating);
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// An established TLS stream.
#[derive(Debug)]
pub(crate) struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
