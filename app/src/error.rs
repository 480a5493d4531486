//! The one error type server functions return; pages turn it into words with the locale files.

use std::fmt;

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppError {
    /// Nobody is signed in.
    SignInRequired,
    /// Signed in, but this account may not do this.
    Forbidden,
    /// Wrong username or password (never says which).
    InvalidCredentials,
    /// Too many failed sign-ins; wait this long.
    TooManyAttempts { retry_after_secs: u64 },
    /// There is no such thing, or it is not this account's to see.
    NotFound,
    /// A form field is missing or malformed (the field's name).
    Invalid { field: String },
    /// Something failed on the server; details are in its log, not here.
    Unavailable,
    /// The request did not reach the server function, or its answer did not come back.
    Transport(String),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::SignInRequired => f.write_str("sign-in required"),
            AppError::Forbidden => f.write_str("forbidden"),
            AppError::NotFound => f.write_str("not found"),
            AppError::InvalidCredentials => f.write_str("invalid credentials"),
            AppError::TooManyAttempts { retry_after_secs } => {
                write!(f, "too many attempts; retry after {retry_after_secs} s")
            }
            AppError::Invalid { field } => write!(f, "invalid {field}"),
            AppError::Unavailable => f.write_str("service unavailable"),
            AppError::Transport(message) => write!(f, "request failed: {message}"),
        }
    }
}

impl std::error::Error for AppError {}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(error: ServerFnErrorErr) -> Self {
        AppError::Transport(error.to_string())
    }
}

impl AppError {
    /// The HTTP status a page showing this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::SignInRequired => 401,
            AppError::Forbidden => 403,
            AppError::NotFound => 404,
            AppError::InvalidCredentials => 401,
            AppError::TooManyAttempts { .. } => 429,
            AppError::Invalid { .. } => 400,
            AppError::Unavailable | AppError::Transport(_) => 500,
        }
    }
}
