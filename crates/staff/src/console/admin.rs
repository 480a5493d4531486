//! What only admins do: API tokens for the plan's other systems, and the audit log.

use base64::Engine as _;
use baton_store::{Account, AccountId, ApiToken, AuditQuery, Timestamp};
use baton_vocab::day;
use baton_vocab::views::console::{AuditFilters, AuditRow, AuditView, TokenRow, TokensView};
use rand::RngCore as _;

use super::{Console, ConsoleError};
use crate::audit::Action;
use baton_vocab::Role;

/// Audit events per page of a search.
const AUDIT_PAGE: u32 = 100;

/// A token just issued, to show once: its secret sealed under the token key, so that what
/// waits in the admin's session for the next page is never the token in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub name: String,
    pub sealed_secret: String,
}

impl Console {
    /// Every API token, newest first, for the page at `api_base`.
    pub async fn api_tokens(&self, admin: &Account, api_base: &str) -> Result<TokensView, ConsoleError> {
        let tokens = self.store.api_tokens().await?;
        Ok(TokensView {
            privacy: admin.roles.has(Role::Privacy),
            api_base: api_base.to_owned(),
            new_token: None,
            tokens: tokens
                .into_iter()
                .map(|t| TokenRow {
                    id: t.id,
                    name: t.name,
                    include_sensitive: t.include_sensitive,
                    created_at: day::utc(t.created_at),
                    last_used_at: t.last_used_at.map(day::utc),
                    revoked_at: t.revoked_at.map(day::utc),
                })
                .collect(),
        })
    }

    /// Issues a token named `name`; only its hash is kept. Sensitive records only for tokens a
    /// privacy officer issues.
    pub async fn issue_api_token(
        &self,
        admin: &Account,
        name: &str,
        include_sensitive: bool,
    ) -> Result<IssuedToken, ConsoleError> {
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ConsoleError::Invalid("name"));
        }
        if include_sensitive && !admin.roles.has(Role::Privacy) {
            return Err(ConsoleError::Forbidden);
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("baton_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
        let id = uuid::Uuid::new_v4().to_string();
        self.store
            .insert_api_token(&ApiToken {
                id: id.clone(),
                name: name.clone(),
                token_hash: baton_holder::oauth::token_hash(&secret),
                include_sensitive,
                created_by: admin.id.0,
                created_at: Timestamp::now().millis(),
                last_used_at: None,
                revoked_at: None,
                revoked_by: None,
            })
            .await?;
        let detail = if include_sensitive { "includes sensitive records" } else { "" };
        self.audit(admin, Action::ApiTokenCreate, None, &format!("api token {id} \"{name}\""), detail).await?;
        let sealed_secret = self
            .journey
            .cipher
            .seal_for(&secret, &issued_place(admin))
            .map_err(|e| ConsoleError::Failed(e.to_string()))?;
        Ok(IssuedToken { name, sealed_secret })
    }

    /// The secret of a token `admin` just issued, for the one page that shows it to them.
    pub fn issued_secret(&self, admin: &Account, token: &IssuedToken) -> Option<String> {
        self.journey.cipher.open_for(&token.sealed_secret, &issued_place(admin)).ok()
    }

    /// Revokes a token (revoking one already revoked, or unknown, changes nothing).
    pub async fn revoke_api_token(&self, admin: &Account, id: &str) -> Result<(), ConsoleError> {
        let revoked = self.store.revoke_api_token(id, admin.id, Timestamp::now()).await?;
        let detail = if revoked { "done" } else { "already revoked or unknown" };
        self.audit(admin, Action::ApiTokenRevoke, None, &format!("api token {id}"), detail).await
    }

    /// Page `page` of the audit events `filters` select, newest first.
    pub async fn search_audit(
        &self,
        admin: &Account,
        filters: &AuditFilters,
        page: u32,
    ) -> Result<AuditView, ConsoleError> {
        let mut query = audit_query(filters)?;
        query.limit = AUDIT_PAGE + 1;
        query.offset = page.saturating_mul(AUDIT_PAGE);
        let events = self.store.search_audit(&query).await?;
        self.audit(admin, Action::AuditSearch, None, &filters.describe(), "").await?;
        Ok(AuditView {
            more: events.len() > AUDIT_PAGE as usize,
            rows: events
                .into_iter()
                .take(AUDIT_PAGE as usize)
                .map(|e| AuditRow {
                    at: day::utc(e.at),
                    actor: e.actor,
                    action: e.action,
                    member: e.member_account,
                    subject: e.subject,
                    detail: e.detail,
                })
                .collect(),
        })
    }

    /// Every audit event `filters` select, as CSV (the export is itself audited).
    pub async fn export_audit(&self, admin: &Account, filters: &AuditFilters) -> Result<String, ConsoleError> {
        let events = self.store.search_audit(&audit_query(filters)?).await?;
        let detail = format!("{} events", events.len());
        self.audit(admin, Action::AuditExport, None, &filters.describe(), &detail).await?;
        Ok(crate::audit::to_csv(&events))
    }
}

/// A token just issued is sealed for the admin who issued it.
fn issued_place(admin: &Account) -> String {
    format!("api_token_shown_to/{}", admin.id.0)
}

/// The store query the filters mean, or which field is malformed.
fn audit_query(filters: &AuditFilters) -> Result<AuditQuery, ConsoleError> {
    let day = |text: &str, field: &'static str| match text.trim() {
        "" => Ok(None),
        t => day::parse(t)
            .map(|d| Some(Timestamp::from_millis(day::start_millis(d))))
            .ok_or(ConsoleError::Invalid(field)),
    };
    let member = match filters.member.trim() {
        "" => None,
        m => Some(AccountId(m.parse().map_err(|_| ConsoleError::Invalid("member"))?)),
    };
    Ok(AuditQuery {
        actor: Some(filters.actor.clone()),
        action: Some(filters.action.clone()),
        member_account: member,
        from: day(&filters.from, "from")?,
        before: day(&filters.to, "to")?.map(|t| t.plus(time::Duration::days(1))),
        ..Default::default()
    })
}
