//! TLS for SSL and SASL_SSL listeners: the certificate, key and client CA
//! files (`--tls-cert`, `--tls-key`, `--tls-client-ca`) loaded into a rustls
//! server configuration, reloaded on demand (SIGHUP), and each connection's
//! handshake with the principal its client certificate names.
//!
//! rustls' defaults only: TLS 1.2 and 1.3 with its safe cipher suites, on
//! the aws-lc-rs provider that the S3 client already brings. With a client
//! CA, every client must present a certificate it issued (mTLS).

mod subject;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

pub use subject::subject_dn;

/// How long a client has to complete the TLS handshake. Real clients take a
/// few round trips; a peer that connects and says nothing must not hold a
/// connection slot for the whole idle timeout.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files a TLS listener is configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM: its private key (PKCS#8, RSA or EC).
    pub key: PathBuf,
    /// PEM: the CAs that issue client certificates; given, one is required.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: pem::Error,
    },
    #[error("{} holds no PEM {what}", path.display())]
    Missing { what: &'static str, path: PathBuf },
    #[error("--tls-key {} is not the key of the certificate in --tls-cert {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("--tls-cert {} and --tls-key {} are not usable: {source}", cert.display(), key.display())]
    Certificate {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("--tls-client-ca {}: {reason}", path.display())]
    ClientCa { path: PathBuf, reason: String },
    #[error("TLS settings refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Reads `path` as PEM, with errors that name the file and what it should
/// hold.
fn read<T>(
    what: &'static str,
    path: &Path,
    parse: impl FnOnce(&Path) -> Result<T, pem::Error>,
) -> Result<T, TlsError> {
    parse(path).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::Missing {
            what,
            path: path.to_path_buf(),
        },
        source => TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        },
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = read(what, path, |path| {
        CertificateDer::pem_file_iter(path)?.collect::<Result<Vec<_>, _>>()
    })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The server configuration of these files.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let chain = certificates("certificate", &files.cert)?;
    let key = read("private key (PKCS#8, RSA or EC)", &files.key, |path| {
        PrivateKeyDer::from_pem_file(path)
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates("CA certificate", path)? {
                roots.add(ca).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            },
            source => TlsError::Certificate {
                cert: files.cert.clone(),
                key: files.key.clone(),
                source,
            },
        })
}

/// A listener's TLS: the files and the configuration last loaded from them.
pub struct Tls {
    files: TlsFiles,
    /// Replaced whole by a reload; each handshake takes the one current when
    /// it starts. A std lock: held to clone an Arc, never across an await.
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Loads the files; an error names the file at fault.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let config = server_config(&files)?;
        Ok(Tls {
            files,
            current: RwLock::new(Arc::new(config)),
        })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the files again. New connections get what they hold; on an
    /// error the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(server_config(&self.files)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The server side of one connection's handshake, bounded by
    /// [`HANDSHAKE_TIMEOUT`] and given up when the agent stops. None when it
    /// failed (a plain-text client, an untrusted or expired client
    /// certificate, a peer too slow): logged at debug, as anyone can cause
    /// one, and only this connection closes.
    pub async fn accept(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<TlsStream<TcpStream>> {
        let acceptor = TlsAcceptor::from(self.current());
        tokio::select! {
            accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)) => match accepted {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "closing connection: TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, "closing connection: TLS handshake not completed in time");
                    None
                }
            },
            _ = stop.changed() => None,
        }
    }
}

/// Kafka's default principal of an SSL client: its certificate's subject
/// (RFC 2253), or None without one.
pub fn client_principal(stream: &TlsStream<TcpStream>) -> Option<String> {
    let (_, connection) = stream.get_ref();
    let leaf = connection.peer_certificates()?.first()?;
    subject_dn(leaf.as_ref())
}

#[cfg(test)]
#[path = "../../tests/common/certs.rs"]
mod certs;

#[cfg(test)]
mod tests;
