//! The QUIC side (quinn): a client opens a bidirectional stream, sends its request as JSON
//! (`{"from": "...", "tables": [...]}`, at most 8 KiB) and finishes its side; the relay answers
//! on the same stream with exactly the bytes the HTTP endpoint would send. A bad request gets a
//! single `'e'` frame with code `bad_request`, and the connection goes on serving other streams.
//! A request with an `"op"` key is a durable-consumer control request instead ([`super::control`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use walcast_decoder::frame::{self, FrameKind};
use walcast_decoder::Lsn;

use super::compress::StreamEncoder;
use super::request::{StreamRequest, ALPN, MAX_REQUEST_BYTES};
use super::session::Hub;
use crate::auth::Gate;

/// Application error code of a stream reset because the client did not read for the
/// slow-client timeout (docs/auth.md).
pub const TOO_SLOW_RESET_CODE: u32 = 1;

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum QuicSetupError {
    #[error("reading TLS certificate/key {path}: {detail}")]
    Pem { path: String, detail: String },
    #[error("creating a self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("binding QUIC on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A certificate chain and key, and the SHA-256 fingerprint of the leaf (for pinning).
pub struct Identity {
    pub chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub key: rustls::pki_types::PrivateKeyDer<'static>,
    pub sha256_hex: String,
}

impl Identity {
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity, QuicSetupError> {
        let pem_err = |path: &Path, detail: String| QuicSetupError::Pem {
            path: path.display().to_string(),
            detail,
        };
        let cert_bytes = std::fs::read(cert).map_err(|e| pem_err(cert, e.to_string()))?;
        let chain = rustls_pemfile::certs(&mut cert_bytes.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_err(cert, "no CERTIFICATE block".into()));
        }
        let key_bytes = std::fs::read(key).map_err(|e| pem_err(key, e.to_string()))?;
        let key_der = rustls_pemfile::private_key(&mut key_bytes.as_slice())
            .map_err(|e| pem_err(key, e.to_string()))?
            .ok_or_else(|| pem_err(key, "no PRIVATE KEY block".into()))?;
        let sha256_hex = hex::encode(Sha256::digest(chain[0].as_ref()));
        Ok(Identity {
            chain,
            key: key_der,
            sha256_hex,
        })
    }

    /// ECDSA P-256, valid 13 days: what browsers accept for WebTransport `serverCertificateHashes`.
    pub fn self_signed(names: Vec<String>) -> Result<Identity, QuicSetupError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| QuicSetupError::SelfSigned(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(names)
            .map_err(|e| QuicSetupError::SelfSigned(e.to_string()))?;
        let now = std::time::SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + Duration::from_secs(13 * 24 * 3600)).into();
        let cert = params
            .self_signed(&key)
            .map_err(|e| QuicSetupError::SelfSigned(e.to_string()))?;
        let der = cert.der().clone();
        let sha256_hex = hex::encode(Sha256::digest(der.as_ref()));
        Ok(Identity {
            chain: vec![der],
            key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            sha256_hex,
        })
    }
}

/// Binds the QUIC endpoint.
pub fn bind(addr: SocketAddr, identity: Identity) -> Result<quinn::Endpoint, QuicSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| QuicSetupError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| QuicSetupError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| QuicSetupError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(Duration::from_secs(30).try_into().expect("30 s fits")));
    transport.keep_alive_interval(Some(Duration::from_secs(10)));
    transport.max_concurrent_bidi_streams(16u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    config.transport_config(Arc::new(transport));
    quinn::Endpoint::server(config, addr).map_err(|source| QuicSetupError::Bind { addr, source })
}

/// Accepts connections until the endpoint is closed.
pub async fn serve(endpoint: quinn::Endpoint, hub: Hub, gate: Arc<Gate>) {
    while let Some(incoming) = endpoint.accept().await {
        let hub = hub.clone();
        let gate = gate.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "QUIC handshake failed");
                    return;
                }
            };
            let remote = conn.remote_address();
            loop {
                match conn.accept_bi().await {
                    Ok((send, recv)) => {
                        tokio::spawn(serve_stream(send, recv, hub.clone(), gate.clone(), remote));
                    }
                    Err(e) => {
                        tracing::debug!(%remote, error = %e, "QUIC connection closed");
                        return;
                    }
                }
            }
        });
    }
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    hub: Hub,
    gate: Arc<Gate>,
    remote: SocketAddr,
) {
    if let Err(refusal) = gate.check_rate(remote.ip()) {
        hub.metrics.clients_rejected.fetch_add(1, Relaxed);
        tracing::info!(%remote, "refused a QUIC stream request: rate limited");
        let _ = send
            .write_all(&end_stream(refusal.code(), &refusal.to_string()))
            .await;
        let _ = send.finish();
        return;
    }
    let request =
        match tokio::time::timeout(REQUEST_TIMEOUT, recv.read_to_end(MAX_REQUEST_BYTES)).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => Err(super::request::BadRequest(format!(
                "could not read the request: {e}"
            ))),
            Err(_) => Err(super::request::BadRequest(format!(
                "no request within {REQUEST_TIMEOUT:?}"
            ))),
        };
    let request = match request {
        Ok(body) if super::control::Control::is_control(&body) => {
            let answer = if gate.auth_enabled() {
                // Control requests carry no token yet: with authentication on, durable-consumer
                // calls go over HTTP(S), where the bearer token is checked.
                serde_json::json!({ "code": "unauthorized",
                    "message": "durable-consumer calls over QUIC are not available when authentication is on; use HTTP(S) with a bearer token" })
            } else {
                match super::control::Control::from_json(&body) {
                    Ok(c) => super::control::handle(&hub, c),
                    Err(e) => serde_json::json!({ "code": "bad_request", "message": e.0 }),
                }
            };
            let _ = send.write_all(format!("{answer}\n").as_bytes()).await;
            let _ = send.finish();
            return;
        }
        Ok(body) => StreamRequest::from_json_with_extras(&body),
        Err(e) => Err(e),
    };
    let (mut request, extras) = match request {
        Ok(r) => r,
        Err(e) => {
            hub.metrics.clients_rejected.fetch_add(1, Relaxed);
            tracing::info!(%remote, error = %e, "refused a QUIC stream request");
            let _ = send.write_all(&end_stream("bad_request", &e.0)).await;
            let _ = send.finish();
            return;
        }
    };
    // Everything after a parsed request is compressed as it asked, refusals included; the
    // client tells by the first bytes (zstd's magic or walcast's).
    let mut encoder = match StreamEncoder::new(extras.compression.unwrap_or_default()) {
        Ok(e) => e.with_version(extras.version.unwrap_or(1)),
        Err(e) => {
            tracing::error!(error = %e, "cannot start a zstd encoder");
            let _ = send
                .write_all(&end_stream(
                    "internal",
                    "the relay cannot compress right now",
                ))
                .await;
            let _ = send.finish();
            return;
        }
    };
    let mut refuse = |code: &str, message: &str| {
        encoder
            .encode(&end_stream(code, message), true)
            .unwrap_or_else(|_| end_stream(code, message))
    };
    // Held until the stream ends: it counts against the client and per-token limits.
    let _permit = match gate.admit_stream(extras.token.as_deref(), &mut request) {
        Ok(p) => p,
        Err(refusal) => {
            hub.metrics.clients_rejected.fetch_add(1, Relaxed);
            tracing::info!(%remote, code = refusal.code(), reason = %refusal, "refused a QUIC stream request");
            let _ = send
                .write_all(&refuse(refusal.code(), &refusal.to_string()))
                .await;
            let _ = send.finish();
            return;
        }
    };
    let mut client = match hub.open_checked(&request).await {
        Ok(c) => c,
        Err(e) => {
            let _ = send.write_all(&refuse(e.code(), &e.to_string())).await;
            let _ = send.finish();
            return;
        }
    };
    hub.metrics.clients_quic.fetch_add(1, Relaxed);
    let slow = gate.slow_client_timeout();
    loop {
        let chunk = client.next_chunk().await;
        let last = chunk.is_none();
        let chunk = match (chunk, encoder.is_identity()) {
            (Some(c), true) => c,
            (None, true) => break,
            // After the last chunk, one more write closes the zstd frame (its epilogue).
            (c, false) => match encoder.encode(c.as_deref().unwrap_or_default(), last) {
                Ok(z) => bytes::Bytes::from(z),
                Err(e) => {
                    tracing::error!(%remote, error = %e, "compressing a stream failed; closing it");
                    break;
                }
            },
        };
        match tokio::time::timeout(slow, send.write_chunk(chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                // Flow control is closed, so an 'e' frame could not get through either.
                tracing::info!(%remote, timeout = ?slow, "reset a QUIC stream whose client did not read (too slow)");
                let _ = send.reset(TOO_SLOW_RESET_CODE.into());
                break;
            }
        }
        if last {
            break;
        }
    }
    let _ = send.finish();
    hub.metrics.clients_quic.fetch_sub(1, Relaxed);
}

/// A whole stream consisting of the header and one `'e'` frame.
fn end_stream(code: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_header(&mut out);
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    frame::encode_frame(FrameKind::End, Lsn::ZERO, body.as_bytes(), &mut out);
    out
}
