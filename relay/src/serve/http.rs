//! The HTTP side: `/v1/stream` (chunked frames, live), `/v1/status`, `/metrics`, `/healthz`,
//! `/readyz`. HTTP/1.1 and HTTP/2 (cleartext prior knowledge) on one port, CORS for browsers.

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use super::compress::StreamEncoder;
use super::request::{Compression, StreamRequest};
use super::session::{ClientStream, Hub, OpenError};
use super::status::StatusSource;
use crate::auth::{Gate, Refusal, StreamPermit};

/// Media type of a walcast frame stream (`docs/frames.md`).
pub const FRAMES_CONTENT_TYPE: &str = "application/x-walcast-frames";

#[derive(Clone)]
pub struct HttpState {
    pub hub: Hub,
    pub status: Arc<dyn StatusSource>,
    /// Authentication and limits (docs/auth.md).
    pub gate: Arc<Gate>,
    /// Origins browsers may read from; `None` = any origin (docs/auth.md, "CORS").
    pub cors_origins: Option<Vec<HeaderValue>>,
}

/// The API routes.
pub fn router(state: HttpState) -> Router {
    router_with_ui(state, None)
}

/// The API routes, plus static files from `ui_dir` (the demo page and the npm package build)
/// for every other path when the operator gives one.
pub fn router_with_ui(state: HttpState, ui_dir: Option<&std::path::Path>) -> Router {
    let origins = match &state.cors_origins {
        None => AllowOrigin::any(),
        Some(list) => AllowOrigin::list(list.clone()),
    };
    let cors = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(Any)
        .allow_headers(Any)
        // So a page can tell whether its stream is compressed (fetch decodes it either way).
        .expose_headers([header::CONTENT_ENCODING]);
    let mut routes = Router::new()
        .route("/v1/stream", get(stream))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(
            // Durable-consumer calls need a valid token when authentication is on.
            super::consumer_http::routes().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                require_token,
            )),
        );
    if let Some(dir) = ui_dir {
        // Set before the layers so the static files get CORS like everything else.
        routes = routes.fallback_service(tower_http::services::ServeDir::new(dir));
    }
    routes.layer(cors).with_state(state)
}

/// A JSON error body `{"code","message"}` with a status code.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Lets a request through only with a valid token when authentication is on.
async fn require_token(
    State(state): State<HttpState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if state.gate.auth_enabled() {
        let query_token = request.uri().query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v.into_owned())
        });
        if let Err(refusal) = state
            .gate
            .authenticate(bearer(request.headers(), query_token.as_deref()))
        {
            return refusal_response(&refusal);
        }
    }
    next.run(request).await
}

/// The response for a refused request; the reason never contains the token.
fn refusal_response(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = error_response(status, refusal.code(), &refusal.to_string());
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"walcast\""),
        );
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// `Authorization: Bearer <jwt>`, else the `access_token` query parameter.
fn bearer<'a>(headers: &'a HeaderMap, query_token: Option<&'a str>) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .or(query_token)
}

fn remote_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

async fn stream(
    State(state): State<HttpState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let metrics = &state.hub.metrics;
    let remote = remote_ip(&request);
    if let Some(ip) = remote {
        if let Err(refusal) = state.gate.check_rate(ip) {
            metrics.clients_rejected.fetch_add(1, Relaxed);
            tracing::info!(%ip, "refused a stream request: rate limited");
            return refusal_response(&refusal);
        }
    }
    let (mut request, extras) = match StreamRequest::from_query_with_extras(query.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            metrics.clients_rejected.fetch_add(1, Relaxed);
            tracing::info!(error = %e, "refused a stream request");
            return error_response(StatusCode::BAD_REQUEST, "bad_request", &e.0);
        }
    };
    let token = bearer(&headers, extras.token.as_deref());
    // An explicit `compression` parameter wins over Accept-Encoding: browsers send
    // `Accept-Encoding: …, zstd` on every fetch, and `compression=none` must still turn it off.
    let compression = extras.compression.unwrap_or_else(|| {
        headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map_or(Compression::None, Compression::from_accept_encoding)
    });
    let encoder = match StreamEncoder::new(compression) {
        Ok(e) => e.with_version(extras.version.unwrap_or(1)),
        Err(e) => {
            tracing::error!(error = %e, "cannot start a zstd encoder");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "the relay cannot compress right now; retry, or ask for compression=none",
            );
        }
    };
    let permit = match state.gate.admit_stream(token, &mut request) {
        Ok(p) => p,
        Err(refusal) => {
            metrics.clients_rejected.fetch_add(1, Relaxed);
            tracing::info!(ip = ?remote, code = refusal.code(), reason = %refusal, "refused a stream request");
            return refusal_response(&refusal);
        }
    };
    let client = match state.hub.open_checked(&request).await {
        Ok(c) => c,
        Err(e) => {
            let status = match e {
                OpenError::ResyncRequired { .. } => StatusCode::GONE,
                OpenError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                OpenError::Log(_) => StatusCode::INTERNAL_SERVER_ERROR,
                OpenError::Forbidden(_) => StatusCode::FORBIDDEN,
                OpenError::UnknownTables(_) => StatusCode::BAD_REQUEST,
                OpenError::Consumer(ref c) => {
                    StatusCode::from_u16(c.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
                }
            };
            return error_response(status, e.code(), &e.to_string());
        }
    };
    let gauge = ClientGauge::new(state.hub.metrics.clone());
    // The permit lives as long as the body: the stream counts against the limits until then.
    let body = futures_util::stream::unfold(
        Some((client, encoder, gauge, permit)),
        |state: Option<(ClientStream, StreamEncoder, ClientGauge, StreamPermit)>| async move {
            let (mut client, mut encoder, gauge, permit) = state?;
            let chunk = client.next_chunk().await;
            if encoder.is_identity() {
                return chunk.map(|c| (Ok(c), Some((client, encoder, gauge, permit))));
            }
            // After the last chunk, one more item closes the zstd frame (its epilogue).
            let last = chunk.is_none();
            let item = encoder
                .encode(chunk.as_deref().unwrap_or_default(), last)
                .map(bytes::Bytes::from);
            if let Err(e) = &item {
                tracing::error!(error = %e, "compressing a stream failed; closing it");
            }
            if last && item.as_ref().is_ok_and(|b| b.is_empty()) {
                return None;
            }
            let next = (!last && item.is_ok()).then_some((client, encoder, gauge, permit));
            Some((item, next))
        },
    );
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    if compression != Compression::None {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(compression.as_str()),
        );
    }
    // The answer depends on Accept-Encoding: caches must not serve it to other clients.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(FRAMES_CONTENT_TYPE),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies such as nginx buffer responses unless told not to; a live stream must not wait.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Counts an HTTP client in `walcast_clients{transport="http"}` for as long as its body lives.
struct ClientGauge(Arc<crate::metrics::Metrics>);

impl ClientGauge {
    fn new(m: Arc<crate::metrics::Metrics>) -> Self {
        m.clients_http.fetch_add(1, Relaxed);
        ClientGauge(m)
    }
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.clients_http.fetch_sub(1, Relaxed);
    }
}

async fn status(
    State(state): State<HttpState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if state.gate.auth_enabled() {
        // Only the token matters here; other parameters are ignored.
        let query_token = url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned());
        if let Err(refusal) = state
            .gate
            .authenticate(bearer(&headers, query_token.as_deref()))
        {
            return refusal_response(&refusal);
        }
    }
    let body = state.status.status_json();
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics(State(state): State<HttpState>) -> Response {
    let mut body = state.hub.metrics.render();
    let durable = state.hub.log.durable().lsn;
    let views = state
        .hub
        .consumers
        .views(durable, crate::consumers::now_unix_ms());
    crate::metrics::render_consumers(&mut body, &views);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn readyz(State(state): State<HttpState>) -> Response {
    match state.status.not_ready_reason() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}
