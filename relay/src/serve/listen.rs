//! The HTTP listener: accepts TCP connections, optionally terminates TLS (HTTP/1.1 and h2 by
//! ALPN), and serves the router on each connection with two deadlines that axum's own `serve`
//! lacks: a connection must send its first bytes within the request timeout, and a client whose
//! socket does not drain for the slow-client timeout is disconnected. Each connection also gets
//! its peer address as `ConnectInfo`, for the per-IP rate limit.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Sleep;
use tower_http::add_extension::AddExtension;

use super::quic::{Identity, QuicSetupError};

/// Deadlines of every HTTP connection.
#[derive(Debug, Clone, Copy)]
pub struct ListenConfig {
    /// From accept to the first byte, the TLS handshake, and each request's headers.
    pub request_timeout: Duration,
    /// How long a socket may refuse to take more bytes before the client is dropped.
    pub slow_client_timeout: Duration,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            request_timeout: Duration::from_secs(10),
            slow_client_timeout: Duration::from_secs(60),
        }
    }
}

/// A rustls server configuration for HTTPS from PEM files, offering h2 and HTTP/1.1.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, QuicSetupError> {
    let identity = Identity::from_pem_files(cert, key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| QuicSetupError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| QuicSetupError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// Serves `app` on `listener` until `shutdown` turns true. Open streams end by themselves then:
/// each client stream sends its `'e'` `shutdown` frame.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    cfg: ListenConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        // The watch guard is dropped inside select!, so this future stays Send.
        let accepted = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => Some(x),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = async { drop(shutdown.wait_for(|s| *s).await) } => None,
        };
        let Some((tcp, remote)) = accepted else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let too_slow = Arc::new(AtomicBool::new(false));
            let io = Deadlines::new(tcp, cfg, too_slow.clone());
            let result = match acceptor {
                None => serve_connection(io, app, remote, cfg).await,
                Some(acceptor) => {
                    match tokio::time::timeout(cfg.request_timeout, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => serve_connection(tls, app, remote, cfg).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if too_slow.load(Ordering::Relaxed) {
                tracing::info!(%remote, timeout = ?cfg.slow_client_timeout,
                    "disconnected an HTTP client whose socket did not drain (too slow)");
            } else if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

/// The most bytes of request headers a connection may send (hyper's default is ~400 KB): more
/// than any browser sends with its cookies, little enough that thousands of connections
/// sending it cost the relay little. Beyond it: `431` (HTTP/1.1) or a stream reset (HTTP/2).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

async fn serve_connection<I>(
    io: I,
    app: Router,
    remote: SocketAddr,
    cfg: ListenConfig,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(AddExtension::new(app, ConnectInfo(remote)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.request_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    builder.serve_connection(TokioIo::new(io), service).await
}

/// An IO stream with a first-byte deadline and a stalled-write deadline.
pub struct Deadlines<IO> {
    inner: IO,
    cfg: ListenConfig,
    /// Running until the first byte arrives.
    first_read: Option<Pin<Box<Sleep>>>,
    /// Running while a write or flush waits for the socket.
    write_stall: Option<Pin<Box<Sleep>>>,
    too_slow: Arc<AtomicBool>,
}

impl<IO> Deadlines<IO> {
    pub fn new(inner: IO, cfg: ListenConfig, too_slow: Arc<AtomicBool>) -> Self {
        Deadlines {
            inner,
            cfg,
            first_read: Some(Box::pin(tokio::time::sleep(cfg.request_timeout))),
            write_stall: None,
            too_slow,
        }
    }

    /// Called when the inner write returned `Pending`: starts or checks the stall timer.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.cfg.slow_client_timeout;
        let sleep = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.too_slow.store(true, Ordering::Relaxed);
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client did not read for {timeout:?}"),
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(&mut self, r: Poll<T>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.write_stall = None;
                Poll::Ready(Ok(v))
            }
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Deadlines<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.first_read.is_some() {
            if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                self.first_read = None;
            } else if r.is_pending() {
                if let Some(sleep) = &mut self.first_read {
                    if sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no request within the request timeout",
                        )));
                    }
                }
            }
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Deadlines<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => self.progressed(Poll::Ready(n), cx),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.progressed(Poll::<usize>::Pending, cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => self.progressed(Poll::Ready(n), cx),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.progressed(Poll::<usize>::Pending, cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(Ok(())) => self.progressed(Poll::Ready(()), cx),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.progressed(Poll::<()>::Pending, cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn cfg(ms: u64) -> ListenConfig {
        ListenConfig {
            request_timeout: Duration::from_millis(ms),
            slow_client_timeout: Duration::from_millis(ms),
        }
    }

    #[tokio::test]
    async fn a_reader_that_never_drains_is_cut_off() {
        let (a, mut b) = tokio::io::duplex(1024);
        let flag = Arc::new(AtomicBool::new(false));
        let mut io = Deadlines::new(a, cfg(200), flag.clone());
        let chunk = [7u8; 512];
        let started = std::time::Instant::now();
        let err = loop {
            if let Err(e) = io.write_all(&chunk).await {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(flag.load(Ordering::Relaxed));
        assert!(started.elapsed() >= Duration::from_millis(200));
        // A reader that keeps draining is never cut off, however long it takes in total.
        let flag = Arc::new(AtomicBool::new(false));
        let (a, mut b2) = tokio::io::duplex(1024);
        let mut io = Deadlines::new(a, cfg(200), flag.clone());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let mut total = 0;
            while total < 20 * 512 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += b2.read(&mut buf).await.unwrap();
            }
        });
        for _ in 0..20 {
            io.write_all(&chunk).await.unwrap();
        }
        reader.await.unwrap();
        assert!(!flag.load(Ordering::Relaxed));
        drop(b.read(&mut [0u8; 1]).await);
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_times_out() {
        let (a, _b) = tokio::io::duplex(1024);
        let mut io = Deadlines::new(a, cfg(100), Arc::new(AtomicBool::new(false)));
        let err = io.read(&mut [0u8; 16]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // Once the first byte arrived, waiting for more is not bounded here.
        let (a, mut b) = tokio::io::duplex(1024);
        let mut io = Deadlines::new(a, cfg(100), Arc::new(AtomicBool::new(false)));
        b.write_all(b"G").await.unwrap();
        assert_eq!(io.read(&mut [0u8; 16]).await.unwrap(), 1);
        let waited =
            tokio::time::timeout(Duration::from_millis(300), io.read(&mut [0u8; 16])).await;
        assert!(waited.is_err(), "the read should still be waiting");
    }
}
