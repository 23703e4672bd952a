//! Opening one stream of frame bytes from a relay, over HTTP or QUIC. Everything above this
//! (frame parsing, resume, dedup) is shared by both transports.

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use thiserror::Error;

use crate::serve::control::Control;
use crate::serve::request::{Compression, StreamRequest, ALPN, MAX_REQUEST_BYTES};

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("invalid relay URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("relay refused the request ({status}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the relay: {0}")]
    Connect(String),
    #[error("connection to the relay lost: {0}")]
    Lost(String),
}

impl TransportError {
    /// Whether trying again later can help (network trouble), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        matches!(self, TransportError::Connect(_) | TransportError::Lost(_))
            || matches!(self, TransportError::Refused { status, .. } if *status == 503 || *status == 429)
    }
}

/// Where and how to reach a relay.
#[derive(Clone)]
pub enum Transport {
    Http {
        base: url::Url,
        client: reqwest::Client,
    },
    Quic {
        host: String,
        port: u16,
        endpoint: quinn::Endpoint,
        client_config: quinn::ClientConfig,
        /// Sent as `"token"` in each stream request (docs/auth.md); never printed.
        token: Option<Arc<str>>,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Http { base, .. } => write!(f, "Transport::Http({base})"),
            Transport::Quic { host, port, .. } => write!(f, "Transport::Quic({host}:{port})"),
        }
    }
}

/// An open stream of frame bytes.
pub enum ByteStream {
    Http(futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>),
    Quic {
        recv: quinn::RecvStream,
        _conn: quinn::Connection,
    },
}

impl ByteStream {
    /// The QUIC connection carrying this stream (consumer acks reuse it).
    pub fn quic_connection(&self) -> Option<&quinn::Connection> {
        match self {
            ByteStream::Quic { _conn, .. } => Some(_conn),
            ByteStream::Http(_) => None,
        }
    }

    /// The next chunk of bytes; `Ok(None)` when the relay closed the stream cleanly.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        match self {
            ByteStream::Http(body) => match body.next().await {
                None => Ok(None),
                Some(Ok(b)) => Ok(Some(b)),
                Some(Err(e)) => Err(TransportError::Lost(e.to_string())),
            },
            ByteStream::Quic { recv, .. } => match recv.read_chunk(64 * 1024, true).await {
                Ok(None) => Ok(None),
                Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
                Err(e) => Err(TransportError::Lost(e.to_string())),
            },
        }
    }
}

impl Transport {
    /// `http://host:port` or `https://…`, or `quic://host:port`. For QUIC, `cert_sha256` pins the
    /// relay's (self-signed) certificate by its SHA-256 fingerprint; without it the system's roots
    /// verify the certificate.
    pub fn from_url(url: &str, cert_sha256: Option<&str>) -> Result<Transport, TransportError> {
        let bad = |reason: &str| TransportError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        match parsed.scheme() {
            "http" | "https" => {
                let client = reqwest::Client::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .tcp_nodelay(true)
                    .build()
                    .map_err(|e| bad(&e.to_string()))?;
                Ok(Transport::Http {
                    base: parsed,
                    client,
                })
            }
            "quic" => {
                let host = parsed
                    .host_str()
                    .ok_or_else(|| bad("no host"))?
                    .trim_matches(['[', ']'])
                    .to_string();
                let port = parsed.port().ok_or_else(|| bad("no port"))?;
                let crypto = quic_client_crypto(cert_sha256).map_err(|e| bad(&e))?;
                let quic_crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)
                    .map_err(|e| bad(&e.to_string()))?;
                let client_config = quinn::ClientConfig::new(Arc::new(quic_crypto));
                let bind: std::net::SocketAddr = if host.contains(':') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                }
                .parse()
                .expect("literal address");
                let endpoint = quinn::Endpoint::client(bind)
                    .map_err(|e| TransportError::Connect(e.to_string()))?;
                Ok(Transport::Quic {
                    host,
                    port,
                    endpoint,
                    client_config,
                    token: None,
                })
            }
            other => Err(bad(&format!("scheme {other:?} is not http, https or quic"))),
        }
    }

    /// Presents `token` with every stream request (docs/auth.md): over HTTP(S) as
    /// `Authorization: Bearer`, over QUIC as the request JSON's `"token"`. QUIC control requests
    /// (durable consumers) carry no token; use HTTP(S) for those on a relay with authentication.
    pub fn with_bearer_token(self, token: &str) -> Result<Transport, TransportError> {
        let base = match self {
            Transport::Http { base, .. } => base,
            Transport::Quic {
                host,
                port,
                endpoint,
                client_config,
                ..
            } => {
                return Ok(Transport::Quic {
                    host,
                    port,
                    endpoint,
                    client_config,
                    token: Some(token.into()),
                })
            }
        };
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| TransportError::BadUrl {
                url: base.to_string(),
                reason: "the token is not a valid header value".into(),
            })?;
        // Keeps the token out of reqwest's debug output.
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .tcp_nodelay(true)
            .default_headers(headers)
            .build()
            .map_err(|e| TransportError::BadUrl {
                url: base.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Transport::Http { base, client })
    }

    /// Opens one stream starting after `from`.
    pub async fn open(&self, request: &StreamRequest) -> Result<ByteStream, TransportError> {
        self.open_with(request, Compression::None, 1).await
    }

    /// Like [`open`](Self::open), asking the relay to compress the stream and for frame
    /// `version` (1 or 2). The bytes come as the relay sent them: pass them through
    /// [`super::Inflater`] (which tells the encoding by the first bytes; a relay may answer a
    /// refusal uncompressed) and [`super::Framing`] (which tells the version by the header).
    pub async fn open_with(
        &self,
        request: &StreamRequest,
        compression: Compression,
        version: u16,
    ) -> Result<ByteStream, TransportError> {
        match self {
            Transport::Http { base, client } => {
                let mut url = base
                    .join("/v1/stream")
                    .map_err(|e| TransportError::BadUrl {
                        url: base.to_string(),
                        reason: e.to_string(),
                    })?;
                request.write_query_with(&mut url, compression, version);
                let resp = client
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| TransportError::Connect(e.to_string()))?;
                let status = resp.status();
                if !status.is_success() {
                    let body = resp.text().await.unwrap_or_default();
                    return Err(refusal(status.as_u16(), &body));
                }
                Ok(ByteStream::Http(resp.bytes_stream().boxed()))
            }
            Transport::Quic { token, .. } => {
                let conn = self.quic_connect().await?;
                let (mut send, recv) = conn
                    .open_bi()
                    .await
                    .map_err(|e| TransportError::Connect(e.to_string()))?;
                let body = request.to_json_with(token.as_deref(), compression, version);
                debug_assert!(body.len() <= MAX_REQUEST_BYTES);
                send.write_all(body.as_bytes())
                    .await
                    .map_err(|e| TransportError::Connect(e.to_string()))?;
                send.finish()
                    .map_err(|e| TransportError::Connect(e.to_string()))?;
                Ok(ByteStream::Quic { recv, _conn: conn })
            }
        }
    }

    /// A durable-consumer call (register, ack): over HTTP to `/v1/consumers/…`; over QUIC as a
    /// control stream on `conn` (the connection of the open data stream) or a new connection.
    /// Returns the consumer as the relay shows it after the call.
    pub async fn consumer_call(
        &self,
        conn: Option<&quinn::Connection>,
        control: &Control,
    ) -> Result<serde_json::Value, TransportError> {
        match self {
            Transport::Http { base, client } => {
                let (name, path, body, put) = match control {
                    Control::Register { consumer, from } => (
                        consumer,
                        "",
                        serde_json::json!({ "from": from.map(|l| l.to_string()) }),
                        true,
                    ),
                    Control::Ack { consumer, lsn } => (
                        consumer,
                        "/ack",
                        serde_json::json!({ "lsn": lsn.to_string() }),
                        false,
                    ),
                };
                let url = base
                    .join(&format!("/v1/consumers/{name}{path}"))
                    .map_err(|e| TransportError::BadUrl {
                        url: base.to_string(),
                        reason: e.to_string(),
                    })?;
                let req = if put {
                    client.put(url)
                } else {
                    client.post(url)
                };
                let resp = req
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|e| TransportError::Connect(e.to_string()))?;
                let status = resp.status();
                let text = resp
                    .text()
                    .await
                    .map_err(|e| TransportError::Lost(e.to_string()))?;
                if !status.is_success() {
                    return Err(refusal(status.as_u16(), &text));
                }
                serde_json::from_str(&text).map_err(|e| TransportError::Lost(e.to_string()))
            }
            Transport::Quic { .. } => {
                let fresh;
                let conn = match conn {
                    Some(c) => c,
                    None => {
                        fresh = self.quic_connect().await?;
                        &fresh
                    }
                };
                let (mut send, mut recv) = conn
                    .open_bi()
                    .await
                    .map_err(|e| TransportError::Connect(e.to_string()))?;
                send.write_all(control.to_json().as_bytes())
                    .await
                    .map_err(|e| TransportError::Lost(e.to_string()))?;
                send.finish()
                    .map_err(|e| TransportError::Lost(e.to_string()))?;
                let answer = recv
                    .read_to_end(MAX_REQUEST_BYTES)
                    .await
                    .map_err(|e| TransportError::Lost(e.to_string()))?;
                let v: serde_json::Value = serde_json::from_slice(&answer)
                    .map_err(|e| TransportError::Lost(e.to_string()))?;
                if v.get("code").is_some() {
                    let status = if v["code"] == "unknown_consumer" {
                        404
                    } else {
                        400
                    };
                    return Err(refusal(status, &v.to_string()));
                }
                Ok(v)
            }
        }
    }

    async fn quic_connect(&self) -> Result<quinn::Connection, TransportError> {
        match self {
            Transport::Http { base, .. } => Err(TransportError::BadUrl {
                url: base.to_string(),
                reason: "not a QUIC transport".into(),
            }),
            Transport::Quic {
                host,
                port,
                endpoint,
                client_config,
                ..
            } => {
                let addr = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| TransportError::Connect(e.to_string()))?
                    .next()
                    .ok_or_else(|| TransportError::Connect(format!("{host} has no address")))?;
                let server_name = if host.parse::<std::net::IpAddr>().is_ok() {
                    "localhost"
                } else {
                    host
                };
                let conn = endpoint
                    .connect_with(client_config.clone(), addr, server_name)
                    .map_err(|e| TransportError::Connect(e.to_string()))?
                    .await
                    .map_err(|e| TransportError::Connect(e.to_string()))?;
                Ok(conn)
            }
        }
    }

    /// Closes QUIC connections gracefully (so the relay sees the client go at once rather than
    /// after its idle timeout), waiting at most a second. Nothing to do for HTTP.
    pub async fn close(&self) {
        if let Transport::Quic { endpoint, .. } = self {
            endpoint.close(0u32.into(), b"client done");
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(1), endpoint.wait_idle()).await;
        }
    }

    /// The HTTP base URL, for calls that exist over HTTP only (status, metrics).
    pub fn http_base(&self) -> Option<&url::Url> {
        match self {
            Transport::Http { base, .. } => Some(base),
            Transport::Quic { .. } => None,
        }
    }
}

/// Turns an error response body (`{"code","message"}`) into a typed refusal.
pub(crate) fn refusal(status: u16, body: &str) -> TransportError {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        code: String,
        message: String,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => TransportError::Refused {
            status,
            code: e.code,
            message: e.message,
        },
        Err(_) => TransportError::Refused {
            status,
            code: "http_error".into(),
            message: body.chars().take(500).collect(),
        },
    }
}

fn quic_client_crypto(cert_sha256: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?;
    let mut config = match cert_sha256 {
        Some(hex_fp) => {
            let want = hex::decode(hex_fp.replace(':', ""))
                .map_err(|e| format!("bad certificate fingerprint: {e}"))?;
            if want.len() != 32 {
                return Err(
                    "the certificate fingerprint must be 32 bytes of SHA-256, in hex".into(),
                );
            }
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCert {
                    sha256: want,
                    provider,
                }))
                .with_no_client_auth()
        }
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Accepts exactly one certificate, named by its SHA-256 fingerprint, and still checks that the
/// peer holds its private key (handshake signatures are verified normally).
#[derive(Debug)]
struct PinnedCert {
    sha256: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if Sha256::digest(end_entity.as_ref()).as_slice() == self.sha256.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "relay certificate does not match the pinned SHA-256 fingerprint".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
