//! `GET /p2p/jwks.json`: the public key of this plan's system at other plans (the
//! Payer-to-Payer API), at a stable address other plans register as its `jwks_url`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_transfer::BackendKey;

pub async fn jwks(State(key): State<Option<BackendKey>>) -> Response {
    match key {
        Some(key) => ([(header::CACHE_CONTROL, "public, max-age=300")], Json(key.jwks())).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "This Baton has no Backend Services key (secrets.backend_key): it does not ask other plans for records \
             through the Payer-to-Payer API.",
        )
            .into_response(),
    }
}
