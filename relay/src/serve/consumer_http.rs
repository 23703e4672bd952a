//! The HTTP API of durable consumers:
//!
//! - `PUT /v1/consumers/{name}` registers (idempotent; optional body `{"from": "LSN"}`);
//! - `POST /v1/consumers/{name}/ack` with `{"lsn": "LSN"}` acknowledges;
//! - `GET /v1/consumers`, `GET /v1/consumers/{name}` inspect;
//! - `DELETE /v1/consumers/{name}` removes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::control;
use super::http::{error_response, HttpState};
use crate::consumers::{now_unix_ms, ConsumerError, Registered};

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/consumers", get(list))
        .route(
            "/v1/consumers/{name}",
            get(inspect).put(register).delete(remove),
        )
        .route("/v1/consumers/{name}/ack", post(ack))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn failure(e: ConsumerError) -> Response {
    if matches!(e, ConsumerError::Io { .. } | ConsumerError::Corrupt { .. }) {
        tracing::error!(error = %e, "consumer registry write failed");
    }
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_response(status, e.code(), &e.to_string())
}

fn bad(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "bad_request", message)
}

async fn list(State(state): State<HttpState>) -> Response {
    let durable = state.hub.log.durable().lsn;
    let views = state.hub.consumers.views(durable, now_unix_ms());
    json(
        StatusCode::OK,
        serde_json::json!({ "durable_lsn": durable.to_string(), "consumers": views }),
    )
}

async fn inspect(State(state): State<HttpState>, Path(name): Path<String>) -> Response {
    if let Err(e) = crate::consumers::validate_name(&name) {
        return failure(e);
    }
    let durable = state.hub.log.durable().lsn;
    match state.hub.consumers.view(&name, durable, now_unix_ms()) {
        Some(v) => json(StatusCode::OK, serde_json::to_value(v).unwrap_or_default()),
        None => failure(ConsumerError::NotFound(name)),
    }
}

async fn register(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let from = match control::parse_register_body(&body) {
        Ok(f) => f,
        Err(e) => return bad(&e.0),
    };
    match control::register(&state.hub, &name, from) {
        Ok((r, view)) => json(
            if r == Registered::Created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            serde_json::to_value(view).unwrap_or_default(),
        ),
        Err(e) => failure(e),
    }
}

async fn ack(State(state): State<HttpState>, Path(name): Path<String>, body: Bytes) -> Response {
    let lsn = match control::parse_ack_body(&body) {
        Ok(l) => l,
        Err(e) => return bad(&e.0),
    };
    match control::ack(&state.hub, &name, lsn) {
        Ok(view) => json(
            StatusCode::OK,
            serde_json::to_value(view).unwrap_or_default(),
        ),
        Err(e) => failure(e),
    }
}

async fn remove(State(state): State<HttpState>, Path(name): Path<String>) -> Response {
    match control::remove(&state.hub, &name) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failure(e),
    }
}
