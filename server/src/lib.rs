//! The `baton` server: configuration, HTTP wiring, and the commands of the binary.
//!
//! `main.rs` only parses the command line; everything else lives here so that integration
//! tests can start a real server on a free port ([`startup::Application`]).

pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod payers;
pub mod secrets;
pub mod startup;
pub mod telemetry;
