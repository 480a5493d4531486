//! Invitations: a single-use link, valid for a while, for a member to set their password.
//!
//! The token is 256 random bits. The store keeps its SHA-256 (to find it) and the token sealed
//! under the token key (so staff can show the link again until it is used); never in clear.
//! It travels in the link's query string, which request logs leave out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton_accounts::{NewPassword, PasswordError};
use baton_store::{AccountId, Invitation, Store, StoreError, Timestamp};
use baton_transfer::TokenCipher;
use rand::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// How long an invitation link works.
pub const VALID_FOR_MS: i64 = 14 * 24 * 60 * 60 * 1000;

/// The path of the page an invitation link opens.
pub const PATH: &str = "/welcome";

#[derive(Debug, Error)]
pub enum InvitationError {
    /// Unknown, used, revoked or expired: the member asks staff for a new link.
    #[error("this invitation link is not valid any more")]
    NotValid,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("the invitation could not be sealed or opened")]
    Seal,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What staff see about a member's invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationStatus {
    /// The link, while it can still be used.
    pub link: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Clone)]
pub struct Invitations {
    store: Store,
    cipher: TokenCipher,
    /// This Baton's public URL, without a trailing slash.
    public_url: String,
}

impl Invitations {
    pub fn new(store: Store, cipher: TokenCipher, public_url: &str) -> Self {
        Self { store, cipher, public_url: public_url.trim_end_matches('/').to_owned() }
    }

    /// A new link for `account`; earlier open links stop working.
    pub async fn issue(
        &self,
        account: AccountId,
        by: Option<AccountId>,
        now: Timestamp,
    ) -> Result<String, InvitationError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let token_hash = hash(&token);
        let sealed_token = self.cipher.seal_for(&token, &place(&token_hash)).map_err(|_| InvitationError::Seal)?;
        self.store
            .insert_invitation(&Invitation {
                token_hash,
                account_id: account.0,
                sealed_token,
                created_by: by.map(|b| b.0),
                created_at: now.millis(),
                expires_at: now.millis() + VALID_FOR_MS,
                used_at: None,
                revoked_at: None,
            })
            .await?;
        Ok(self.link(&token))
    }

    fn link(&self, token: &str) -> String {
        format!("{}{PATH}?token={token}", self.public_url)
    }

    /// The member's newest invitation, with its link while it is open.
    pub async fn status(
        &self,
        account: AccountId,
        now: Timestamp,
    ) -> Result<Option<InvitationStatus>, InvitationError> {
        let Some(invitation) = self.store.latest_invitation(account).await? else { return Ok(None) };
        let link = if invitation.is_open(now) {
            let token = self
                .cipher
                .open_for(&invitation.sealed_token, &place(&invitation.token_hash))
                .map_err(|_| InvitationError::Seal)?;
            Some(self.link(&token))
        } else {
            None
        };
        Ok(Some(InvitationStatus {
            link,
            created_at: invitation.created_at,
            expires_at: invitation.expires_at,
            used_at: invitation.used_at,
        }))
    }

    /// Whose invitation `token` is, when it can still be used.
    pub async fn check(&self, token: &str, now: Timestamp) -> Result<AccountId, InvitationError> {
        match self.store.invitation(&hash(token)).await? {
            Some(invitation) if invitation.is_open(now) => Ok(AccountId(invitation.account_id)),
            _ => Err(InvitationError::NotValid),
        }
    }

    /// Whom the link is for (name and username) while it still works; `None` for a link that
    /// does not.
    pub async fn invitee(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<Option<baton_vocab::views::Invitee>, InvitationError> {
        match self.check(token, now).await {
            Ok(account) => Ok(self
                .store
                .account_by_id(account)
                .await?
                .map(|a| baton_vocab::views::Invitee { name: a.display_name, username: a.username })),
            Err(InvitationError::NotValid) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Sets the password and uses the invitation up, at once.
    pub async fn accept(
        &self,
        token: &str,
        password: NewPassword,
        now: Timestamp,
    ) -> Result<AccountId, InvitationError> {
        self.check(token, now).await?;
        let password_hash = baton_accounts::password::hash_async(password).await?;
        self.store.accept_invitation(&hash(token), &password_hash, now).await?.ok_or(InvitationError::NotValid)
    }
}

/// Where an invitation's token is sealed: bound to its own row.
fn place(token_hash: &str) -> String {
    format!("invitation/{token_hash}")
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
