//! The connection layer: accepting, bounding and timing out connections.
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no cap on
//! connections, so a few hundred half-sent requests could hold every file
//! descriptor. Here each connection is served by hyper's HTTP/1 server
//! with:
//! - a header-read timeout (hyper's own): a request's head must arrive
//!   within [`Limits::header_read_timeout`] of the server starting to wait
//!   for it, which also bounds how long a keep-alive connection may sit
//!   idle between requests;
//! - an idle timeout ([`Idle`]): while the server waits on the peer (a
//!   stalled body, a client that stops reading its answer), no byte moving
//!   in either direction for [`Limits::idle_timeout`] closes the
//!   connection;
//! - a cap of [`Limits::max_connections`] open at once: past it the server
//!   stops accepting, and new connections wait in the kernel's queue until
//!   one closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::observe::Metrics;

/// Bounds on connections (see the module docs).
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a client may take to send a request's head, counted from
    /// when the server starts waiting for it (also the longest a
    /// keep-alive connection stays idle between requests).
    pub header_read_timeout: Duration,
    /// How long a connection may go without a byte moving while the
    /// server waits on the client.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A stream that fails with `TimedOut` once it has waited on the peer for
/// `timeout` with no byte read or written.
pub(crate) struct Idle<T> {
    inner: T,
    timeout: Duration,
    last_progress: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> Idle<T> {
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        Idle {
            inner,
            timeout,
            last_progress: Instant::now(),
            timer: None,
        }
    }

    fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }

    /// Called when the inner stream is pending: `Ready(err)` once the
    /// connection has gone `timeout` without progress. The timer is only
    /// re-armed lazily, so progress costs a clock read, not a timer update.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let deadline = self.last_progress + self.timeout;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= self.last_progress + self.timeout => {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle too long",
                    ));
                }
                Poll::Ready(()) => continue,
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_stalled(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_stalled(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_stalled(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.poll_stalled(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Errors of `accept` that concern one connection only (the peer gave up
/// before it was accepted); anything else (out of descriptors) is the
/// server's and is waited out.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Accepts and serves connections on `listener` until `shutdown`
/// completes, then waits up to [`Limits::shutdown_grace`] for requests in
/// flight.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    // When the cap was last reported (seconds on the tokio clock), so a
    // flood logs once a minute, not once per connection.
    let last_full_warning = AtomicU64::new(0);
    let started = Instant::now();
    tokio::pin!(shutdown);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                metrics.connections_capped.inc();
                let now = started.elapsed().as_secs() + 60;
                let last = last_full_warning.load(Ordering::Relaxed);
                if now >= last + 60 {
                    last_full_warning.store(now, Ordering::Relaxed);
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept connections; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers go out at once: without TCP_NODELAY, a response
        // written in two segments waits for the client's delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let (http, watcher, metrics) = (http.clone(), graceful.watcher(), metrics.clone());
        let (idle, handshake) = (limits.idle_timeout, limits.header_read_timeout);
        let acceptor = tls.clone();
        tokio::spawn(async move {
            metrics.connections_open.inc();
            let served = match acceptor {
                None => {
                    let io = TokioIo::new(Idle::new(tcp, idle));
                    watcher.watch(http.serve_connection(io, service)).await
                }
                // The handshake is bounded like a request's head.
                Some(acceptor) => match tokio::time::timeout(handshake, acceptor.accept(tcp)).await
                {
                    Ok(Ok(stream)) => {
                        let io = TokioIo::new(Idle::new(stream, idle));
                        watcher.watch(http.serve_connection(io, service)).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        Ok(())
                    }
                    Err(_) => {
                        metrics.connections_timed_out.inc();
                        tracing::debug!(%peer, "TLS handshake timed out");
                        Ok(())
                    }
                },
            };
            if let Err(e) = served {
                let timed_out = is_timeout(&e);
                if timed_out {
                    metrics.connections_timed_out.inc();
                }
                tracing::debug!(%peer, error = %e, timed_out, "connection closed");
            }
            metrics.connections_open.dec();
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("requests still running after the shutdown grace period");
        }
    }
    Ok(())
}

/// Whether a connection ended on one of our timeouts.
fn is_timeout(e: &hyper::Error) -> bool {
    if e.is_timeout() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io.kind() == io::ErrorKind::TimedOut;
        }
        source = cause.source();
    }
    false
}

/// A TLS server configuration from PEM files: the certificate chain (the
/// server's certificate first) and its private key.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> io::Result<Arc<tokio_rustls::rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {}: {e}", path.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("cannot read the certificate", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("cannot read the certificate", cert, &e))?;
    if chain.is_empty() {
        return Err(bad(
            "no certificate in",
            cert,
            &"expected PEM `CERTIFICATE` blocks",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("cannot read the key", key, &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the certificate and key do not make a TLS identity: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
