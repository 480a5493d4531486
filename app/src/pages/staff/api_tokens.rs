//! API tokens for the plan's other systems (`/api/fhir`): admins issue them (the token is
//! shown once, only its hash is kept), see when each was last used, and revoke them.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use super::StaffNav;
use crate::components::outcome::outcome;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

/// Session key: a token just issued, shown once on the next page load.
#[cfg(feature = "ssr")]
const NEW_TOKEN: &str = "baton.new_api_token";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub include_sensitive: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensView {
    pub privacy: bool,
    pub api_base: String,
    /// The token just issued (only on the page load right after).
    pub new_token: Option<(String, String)>,
    pub tokens: Vec<TokenRow>,
}

#[server(endpoint = "staff/api-tokens")]
pub async fn load_api_tokens() -> Result<TokensView, AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let session = crate::ssr::session().await?;
    let new_token = session.remove::<(String, String)>(NEW_TOKEN).await.map_err(crate::ssr::session_error)?;
    let tokens = services.store.api_tokens().await.map_err(crate::ssr::unavailable)?;
    let public = services.local_base.trim_end_matches('/').trim_end_matches("/fhir").to_owned();
    Ok(TokensView {
        privacy: admin.roles.has(baton_accounts::Role::Privacy),
        api_base: format!("{public}/api/fhir"),
        new_token,
        tokens: tokens
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                name: t.name,
                include_sensitive: t.include_sensitive,
                created_at: baton_vocab::day::utc(t.created_at),
                last_used_at: t.last_used_at.map(baton_vocab::day::utc),
                revoked_at: t.revoked_at.map(baton_vocab::day::utc),
            })
            .collect(),
    })
}

#[server(endpoint = "staff/api-tokens/create")]
pub async fn create_api_token(name: String, sensitive: Option<String>) -> Result<(), AppError> {
    use base64::Engine;
    use rand::RngCore;
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(crate::ssr::fail(AppError::Invalid { field: "name".into() }));
    }
    // Sensitive records only for tokens a privacy officer issues.
    let include_sensitive = sensitive.is_some_and(|s| s == "yes");
    if include_sensitive && !admin.roles.has(baton_accounts::Role::Privacy) {
        return Err(crate::ssr::fail(AppError::Forbidden));
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("baton_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let id = uuid::Uuid::new_v4().to_string();
    services
        .store
        .insert_api_token(&baton_store::ApiToken {
            id: id.clone(),
            name: name.clone(),
            token_hash: baton_holder::oauth::token_hash(&secret),
            include_sensitive,
            created_by: admin.id.0,
            created_at: baton_store::Timestamp::now().millis(),
            last_used_at: None,
            revoked_at: None,
            revoked_by: None,
        })
        .await
        .map_err(crate::ssr::unavailable)?;
    crate::ssr::audit(
        &admin,
        baton_staff::audit::Action::ApiTokenCreate,
        None,
        &format!("api token {id} \"{name}\""),
        if include_sensitive { "includes sensitive records" } else { "" },
    )
    .await?;
    let session = crate::ssr::session().await?;
    session.insert(NEW_TOKEN, (name, secret)).await.map_err(crate::ssr::session_error)?;
    leptos_axum::redirect("/staff/api-tokens");
    Ok(())
}

#[server(endpoint = "staff/api-tokens/revoke")]
pub async fn revoke_api_token(id: String) -> Result<(), AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let revoked = services
        .store
        .revoke_api_token(&id, admin.id, baton_store::Timestamp::now())
        .await
        .map_err(crate::ssr::unavailable)?;
    crate::ssr::audit(
        &admin,
        baton_staff::audit::Action::ApiTokenRevoke,
        None,
        &format!("api token {id}"),
        if revoked { "done" } else { "already revoked or unknown" },
    )
    .await?;
    leptos_axum::redirect("/staff/api-tokens");
    Ok(())
}

#[component]
pub fn ApiTokensPage() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| load_api_tokens());
    view! {
        <Title text=t_string!(i18n, console.tokens_title).to_string()/>
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, |v: TokensView| view! {
                <StaffNav admin=true/>
                <h1>{t!(i18n, console.tokens_title)}</h1>
                <p>{t!(i18n, console.tokens_intro, base = v.api_base.clone())}</p>
                {v.new_token.map(|(name, secret)| view! {
                    <section class="card" role="status" aria-labelledby="new-token-title">
                        <h2 id="new-token-title">{t!(i18n, console.token_created, name = name.clone())}</h2>
                        <p>{t!(i18n, console.token_once)}</p>
                        <input class="copy" id="new-token" type="text" readonly value=secret aria-labelledby="new-token-title"/>
                    </section>
                })}
                <form method="post" action=CreateApiToken::url() class="form card">
                    <div class="field">
                        <label for="token-name">{t!(i18n, console.token_name)}</label>
                        <input id="token-name" name="name" type="text" required maxlength="100"/>
                    </div>
                    {v.privacy.then(|| view! {
                        <div class="choice__option">
                            <input type="checkbox" id="token-sensitive" name="sensitive" value="yes"/>
                            <label for="token-sensitive">{t!(i18n, console.token_sensitive)}</label>
                        </div>
                    })}
                    <button type="submit" class="button">{t!(i18n, console.token_create)}</button>
                </form>
                <table class="data" id="api-tokens">
                    <thead><tr>
                        <th scope="col">{t!(i18n, console.token_name)}</th>
                        <th scope="col">{t!(i18n, console.started)}</th>
                        <th scope="col">{t!(i18n, console.token_last_used)}</th>
                        <th scope="col">{t!(i18n, console.state)}</th>
                    </tr></thead>
                    <tbody>{v.tokens.into_iter().map(|row| view! {
                        <tr>
                            <td>{row.name.clone()}{row.include_sensitive.then(|| view! { " " <span class="badge">{t!(i18n, console.sensitive_badge)}</span> })}</td>
                            <td>{row.created_at.clone()}</td>
                            <td>{row.last_used_at.clone().unwrap_or_else(|| "–".into())}</td>
                            <td>{match row.revoked_at.clone() {
                                Some(at) => t!(i18n, console.token_revoked, at = at.clone()).into_any(),
                                None => view! {
                                    <form method="post" action=RevokeApiToken::url() class="inline-form">
                                        <input type="hidden" name="id" value=row.id.clone()/>
                                        <button type="submit" class="button button--secondary">{t!(i18n, console.token_revoke)}</button>
                                    </form>
                                }.into_any(),
                            }}</td>
                        </tr>
                    }).collect_view()}</tbody>
                </table>
            }))}
        </Suspense>
    }
}
