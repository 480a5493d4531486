//! API tokens for the plan's other systems (`/api/fhir`): admins issue them (the token is
//! shown once, only its hash is kept), see when each was last used, and revoke them.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;

use super::StaffNav;
use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

/// Session key: a token just issued, shown once on the next page load.
#[cfg(feature = "ssr")]
const NEW_TOKEN: &str = "baton.new_api_token";

use baton_vocab::views::console::TokensView;

#[server(endpoint = "staff/api-tokens")]
pub async fn load_api_tokens() -> Result<TokensView, AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let session = crate::ssr::session().await?;
    // Sealed in the session; opened (and gone from the session) for this one page.
    let new_token = session.remove::<(String, String)>(NEW_TOKEN).await.map_err(crate::ssr::session_error)?;
    let new_token = new_token.and_then(|(name, sealed_secret)| {
        let secret =
            services.console.issued_secret(&admin, &baton_staff::IssuedToken { name: name.clone(), sealed_secret })?;
        Some((name, secret))
    });
    let public = services.local_base.trim_end_matches('/').trim_end_matches("/fhir");
    let view = services.console.api_tokens(&admin, &format!("{public}/api/fhir")).await;
    Ok(TokensView { new_token, ..view.map_err(crate::ssr::console_error)? })
}

#[server(endpoint = "staff/api-tokens/create")]
pub async fn create_api_token(name: String, sensitive: Option<String>) -> Result<(), AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let include_sensitive = sensitive.is_some_and(|s| s == "yes");
    let issued =
        services.console.issue_api_token(&admin, &name, include_sensitive).await.map_err(crate::ssr::console_error)?;
    let session = crate::ssr::session().await?;
    session.insert(NEW_TOKEN, (issued.name, issued.sealed_secret)).await.map_err(crate::ssr::session_error)?;
    leptos_axum::redirect("/staff/api-tokens");
    Ok(())
}

#[server(endpoint = "staff/api-tokens/revoke")]
pub async fn revoke_api_token(id: String) -> Result<(), AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    services.console.revoke_api_token(&admin, &id).await.map_err(crate::ssr::console_error)?;
    leptos_axum::redirect("/staff/api-tokens");
    Ok(())
}

#[component]
pub fn ApiTokensPage() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| load_api_tokens());
    view! {
        <Title text=t_string!(i18n, console.tokens_title).to_string()/>
        <Loaded data render={move |v: TokensView| view! {
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
                                // Asks first (without JavaScript too): the programs using it stop at once.
                                None => {
                                    let name = row.name.clone();
                                    view! {
                                        <details class="confirm">
                                            <summary class="button button--secondary">{t!(i18n, console.token_revoke)}</summary>
                                            <form method="post" action=RevokeApiToken::url() class="form">
                                                <p>{t!(i18n, console.token_revoke_warning, name = name.clone())}</p>
                                                <input type="hidden" name="id" value=row.id.clone()/>
                                                <button type="submit" class="button button--danger">
                                                    {t!(i18n, console.token_revoke_confirm, name = name.clone())}
                                                </button>
                                            </form>
                                        </details>
                                    }.into_any()
                                }
                            }}</td>
                        </tr>
                    }).collect_view()}</tbody>
                </table>
            }}/>
    }
}
