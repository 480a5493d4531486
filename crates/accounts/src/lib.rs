//! Baton accounts: who may sign in, with which roles, and how sign-in is protected.
//!
//! - [`Username`], [`NewPassword`]: input parsed once at the boundary.
//! - [`password`]: argon2id hashing (RustCrypto `argon2`), off the async executor.
//! - [`Roles`]: member, staff, privacy, admin.
//! - [`Accounts::sign_in`]: constant-shape sign-in with throttling per account and per IP,
//!   kept in the database so it holds across restarts and instances.

mod account;
pub mod password;
mod sign_in;
mod username;

pub use account::{AccountError, Accounts, NewMember, NewStaff};
pub use baton_store::Account;
pub use baton_vocab::{Role, Roles};
pub use password::{NewPassword, PasswordError};
pub use sign_in::{SignInError, ThrottlePolicy};
pub use username::{Username, UsernameError};

pub use baton_store::AccountId;

/// Session key holding the signed-in account's id (shared by every page of this plan).
pub const SESSION_ACCOUNT_KEY: &str = "account_id";

/// The client's address, put into request extensions by the server (honouring
/// `X-Forwarded-For` only when configured to trust a proxy); used to throttle sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub std::net::IpAddr);
