//! Puts the client's address into request extensions ([`app::ssr::ClientIp`]) for sign-in
//! throttling. `X-Forwarded-For` is believed only when `trust_proxy` is configured, and then
//! only its last hop (the one our proxy added).

use std::net::{IpAddr, SocketAddr};

use app::ssr::ClientIp;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

#[derive(Debug, Clone, Copy)]
pub struct TrustProxy(pub bool);

pub async fn client_ip(State(TrustProxy(trust)): State<TrustProxy>, mut request: Request, next: Next) -> Response {
    let forwarded = trust
        .then(|| request.headers().get("x-forwarded-for"))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    if let Some(ip) = forwarded.or(peer) {
        request.extensions_mut().insert(ClientIp(ip));
    }
    next.run(request).await
}
