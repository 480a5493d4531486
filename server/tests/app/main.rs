//! Baton over HTTP, black box: real apps on free ports, side by side, one test binary.
//!
//! Tests once ran one at a time: with apps side by side a page render now and then waited for
//! good. The cause was Baton's: every app listed its routes at start, which switches resource
//! loading off process-wide for a moment, and a render starting then never resumed. The route
//! list is now made once per process (`server::startup`), which `baton demo` needs too.

mod support;

mod access_reset;
mod http;
mod journey;
mod kill;
mod kill_requests;
mod payer_clients;
mod payer_to_payer;
mod staff;
