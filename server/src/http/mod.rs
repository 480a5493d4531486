//! HTTP plumbing shared by every route: health checks, language switch, security headers,
//! cross-origin (CSRF) protection, client address, request tracing, panics.

pub mod callback;
pub mod client_ip;
pub mod health;
pub mod live;
pub mod locale;
pub mod p2p;
pub mod panic;
pub mod security;
pub mod staff;
pub mod trace;
