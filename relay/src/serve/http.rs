//! The HTTP side: `/v1/stream` (chunked frames, live), `/v1/status`, `/metrics`, `/healthz`,
//! `/readyz`. HTTP/1.1 and HTTP/2 (cleartext prior knowledge) on one port, CORS for browsers.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tower_http::cors::{Any, CorsLayer};

use super::request::StreamRequest;
use super::session::{ClientStream, Hub, OpenError};
use super::status::StatusSource;

/// Media type of a walcast frame stream (`docs/frames.md`).
pub const FRAMES_CONTENT_TYPE: &str = "application/x-walcast-frames";

#[derive(Clone)]
pub struct HttpState {
    pub hub: Hub,
    pub status: Arc<dyn StatusSource>,
}

/// The API routes.
pub fn router(state: HttpState) -> Router {
    router_with_ui(state, None)
}

/// The API routes, plus static files from `ui_dir` (the demo page and the npm package build)
/// for every other path when the operator gives one.
pub fn router_with_ui(state: HttpState, ui_dir: Option<&std::path::Path>) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any);
    let mut routes = Router::new()
        .route("/v1/stream", get(stream))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(super::consumer_http::routes());
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

async fn stream(State(state): State<HttpState>, RawQuery(query): RawQuery) -> Response {
    let metrics = &state.hub.metrics;
    let request = match StreamRequest::from_query(query.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            metrics.clients_rejected.fetch_add(1, Relaxed);
            tracing::info!(error = %e, "refused a stream request");
            return error_response(StatusCode::BAD_REQUEST, "bad_request", &e.0);
        }
    };
    let client = match state.hub.open(&request) {
        Ok(c) => c,
        Err(e) => {
            let status = match e {
                OpenError::ResyncRequired { .. } => StatusCode::GONE,
                OpenError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                OpenError::Log(_) => StatusCode::INTERNAL_SERVER_ERROR,
                OpenError::Consumer(ref c) => {
                    StatusCode::from_u16(c.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
                }
            };
            return error_response(status, e.code(), &e.to_string());
        }
    };
    let gauge = ClientGauge::new(state.hub.metrics.clone());
    let body = futures_util::stream::unfold(
        (client, gauge),
        |(mut client, gauge): (ClientStream, ClientGauge)| async move {
            client
                .next_chunk()
                .await
                .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), (client, gauge)))
        },
    );
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
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

async fn status(State(state): State<HttpState>) -> Response {
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
