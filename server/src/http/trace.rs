//! One `tracing` span per request: method, path (never the query string, which can carry
//! OAuth codes and state), request id; the response status and latency when it completes.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %request_id,
            status = tracing::field::Empty,
        )
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LogResponse;

impl OnResponse<Body> for LogResponse {
    fn on_response(self, response: &Response<Body>, latency: Duration, span: &Span) {
        span.record("status", response.status().as_u16());
        tracing::info!(status = response.status().as_u16(), latency_ms = latency.as_millis() as u64, "response");
    }
}

pub fn layer()
-> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, tower_http::trace::DefaultOnRequest, LogResponse> {
    TraceLayer::new_for_http().make_span_with(RequestSpan).on_response(LogResponse)
}
