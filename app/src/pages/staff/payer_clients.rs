//! Other plans' systems (the Payer-to-Payer API, SMART Backend Services): admins register
//! them with their keys and scopes, suspend and resume them, and remove those registered here.

use baton_vocab::views::console::{PayerClientRow, PayerClientsView};
use baton_vocab::{ClientOrigin, ClientState};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::StaffNav;
use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

#[cfg(feature = "ssr")]
const PAGE: &str = "/staff/payer-clients";

#[server(endpoint = "staff/payer-clients")]
pub async fn load_payer_clients() -> Result<PayerClientsView, AppError> {
    crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let fhir_base = services.local_base.trim_end_matches('/');
    let token_url = format!("{}/oauth/token", fhir_base.trim_end_matches("/fhir"));
    services.console.payer_clients(fhir_base, &token_url).await.map_err(crate::ssr::console_error)
}

#[server(endpoint = "staff/payer-clients/register")]
pub async fn register_payer_client(
    client_id: String,
    name: String,
    jwks_url: String,
    jwks: String,
    scopes: String,
    identifiers: String,
) -> Result<(), AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let new = baton_staff::NewPayerClient { client_id, name, jwks_url, jwks, scopes, identifiers };
    services.console.register_payer_client(&admin, &new).await.map_err(refused)?;
    leptos_axum::redirect(&format!("{PAGE}?done=registered"));
    Ok(())
}

#[server(endpoint = "staff/payer-clients/state")]
pub async fn set_payer_client_state(client_id: String, state: String) -> Result<(), AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let state: ClientState =
        state.parse().map_err(|_| crate::ssr::console_error(baton_staff::ConsoleError::Invalid("state")))?;
    services.console.set_payer_client_state(&admin, &client_id, state).await.map_err(refused)?;
    leptos_axum::redirect(PAGE);
    Ok(())
}

/// A refused field sends a plain form post back to the page, which says what is wrong.
#[cfg(feature = "ssr")]
fn refused(error: baton_staff::ConsoleError) -> AppError {
    if let baton_staff::ConsoleError::Invalid(field) = &error {
        leptos_axum::redirect(&format!("{PAGE}?problem={field}"));
    }
    crate::ssr::console_error(error)
}

#[component]
pub fn PayerClientsPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let problem = move || query.read().get("problem");
    let registered = move || query.read().get("done").is_some_and(|d| d == "registered");
    let data = Resource::new(|| (), |_| load_payer_clients());
    view! {
        <Title text=t_string!(i18n, console.clients_title).to_string()/>
        <Loaded data render={move |v: PayerClientsView| { let none = v.clients.is_empty(); view! {
            <StaffNav admin=true/>
            <h1>{t!(i18n, console.clients_title)}</h1>
            <p>{t!(i18n, console.clients_intro)}</p>
            <dl class="facts">
                <dt>{t!(i18n, console.clients_fhir_base)}</dt><dd><code>{v.fhir_base.clone()}</code></dd>
                <dt>{t!(i18n, console.clients_token_url)}</dt><dd><code>{v.token_url.clone()}</code></dd>
            </dl>
            {problem().map(|p| view! { <p class="alert alert--error" role="alert" id="clients-problem">{match p.as_str() {
                "client_id" => t!(i18n, console.clients_problem_client_id).into_any(),
                "client_id_taken" => t!(i18n, console.clients_problem_taken).into_any(),
                "name" => t!(i18n, console.clients_problem_name).into_any(),
                "jwks_url" => t!(i18n, console.clients_problem_jwks_url).into_any(),
                "keys" => t!(i18n, console.clients_problem_keys).into_any(),
                "jwks" => t!(i18n, console.clients_problem_jwks).into_any(),
                "scopes" => t!(i18n, console.clients_problem_scopes).into_any(),
                "identifiers" => t!(i18n, console.clients_problem_identifiers).into_any(),
                "configured" => t!(i18n, console.clients_problem_configured).into_any(),
                _ => t!(i18n, console.clients_problem_state).into_any(),
            }}</p> })}
            {registered().then(|| view! { <p class="alert" role="status">{t!(i18n, console.clients_registered)}</p> })}
            {none.then(|| view! { <p id="no-clients">{t!(i18n, console.clients_none)}</p> })}
            <table class="data" id="payer-clients" hidden=none>
                <caption>{t!(i18n, console.clients_list)}</caption>
                <thead><tr>
                    <th scope="col">{t!(i18n, console.clients_name)}</th>
                    <th scope="col">{t!(i18n, console.clients_keys)}</th>
                    <th scope="col">{t!(i18n, console.payers_scopes)}</th>
                    <th scope="col">{t!(i18n, console.state)}</th>
                </tr></thead>
                <tbody>{v.clients.into_iter().map(|row| view! { <ClientRow row/> }).collect_view()}</tbody>
            </table>
            <RegisterForm default_scopes=v.default_scopes/>
        }}}/>
    }
}

#[component]
fn ClientRow(row: PayerClientRow) -> impl IntoView {
    let i18n = use_i18n();
    let keys = match &row.jwks_url {
        Some(url) => view! { <code>{url.clone()}</code> }.into_any(),
        None => t!(i18n, console.clients_inline_keys, count = row.inline_keys).into_any(),
    };
    let state = match row.state {
        ClientState::Active => t!(i18n, console.clients_active).into_any(),
        ClientState::Suspended => t!(i18n, console.clients_suspended).into_any(),
        ClientState::Removed => t!(i18n, console.clients_removed).into_any(),
    };
    let by = row
        .state_changed_by
        .clone()
        .map(|by| view! { " " <span class="field__hint">{t!(i18n, console.clients_by, who = by.clone())}</span> });
    let origin = match row.origin {
        ClientOrigin::Configuration => t!(i18n, console.payers_from_config).into_any(),
        ClientOrigin::Console => t!(i18n, console.clients_from_console).into_any(),
    };
    let action = |state: ClientState, label: AnyView, id: &str| {
        view! {
            <form method="post" action=SetPayerClientState::url() class="inline-form">
                <input type="hidden" name="client_id" value=id.to_owned()/>
                <input type="hidden" name="state" value=state.as_str()/>
                <button type="submit" class="button button--secondary">{label}</button>
            </form>
        }
    };
    let actions = match row.state {
        ClientState::Active => {
            Some(action(ClientState::Suspended, t!(i18n, console.clients_suspend).into_any(), &row.client_id))
        }
        ClientState::Suspended => {
            Some(action(ClientState::Active, t!(i18n, console.clients_resume).into_any(), &row.client_id))
        }
        ClientState::Removed => None,
    };
    let remove = (row.origin == ClientOrigin::Console && row.state != ClientState::Removed)
        .then(|| action(ClientState::Removed, t!(i18n, console.clients_remove).into_any(), &row.client_id));
    view! {
        <tr id=format!("client-{}", row.client_id)>
            <td>
                <strong>{row.name.clone()}</strong><br/><code>{row.client_id.clone()}</code><br/>
                {row.identifiers.iter().map(|i| view! { <code>{i.clone()}</code><br/> }).collect_view()}
                <span class="field__hint">{origin}</span>
            </td>
            <td>{keys}</td>
            <td><ul>{row.scopes.iter().map(|s| view! { <li><code>{s.clone()}</code></li> }).collect_view()}</ul></td>
            <td>{state}{by}{actions}{remove}</td>
        </tr>
    }
}

#[component]
fn RegisterForm(default_scopes: String) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <form method="post" action=RegisterPayerClient::url() class="form card" aria-labelledby="register-client-title">
            <h2 id="register-client-title">{t!(i18n, console.clients_register_title)}</h2>
            <div class="field">
                <label for="client-id">{t!(i18n, console.payers_client_id)}</label>
                <input id="client-id" name="client_id" type="text" required maxlength="200" autocomplete="off"/>
            </div>
            <div class="field">
                <label for="client-name">{t!(i18n, console.clients_name)}</label>
                <input id="client-name" name="name" type="text" required maxlength="200"/>
            </div>
            <div class="field">
                <label for="client-jwks-url">{t!(i18n, console.clients_jwks_url)}</label>
                <input id="client-jwks-url" name="jwks_url" type="url" aria-describedby="client-keys-hint"/>
            </div>
            <div class="field">
                <label for="client-jwks">{t!(i18n, console.clients_jwks)}</label>
                <textarea id="client-jwks" name="jwks" rows="4" aria-describedby="client-keys-hint"></textarea>
                <p class="field__hint" id="client-keys-hint">{t!(i18n, console.clients_keys_hint)}</p>
            </div>
            <div class="field">
                <label for="client-scopes">{t!(i18n, console.payers_scopes)}</label>
                <textarea id="client-scopes" name="scopes" rows="3" required aria-describedby="client-scopes-hint">{default_scopes}</textarea>
                <p class="field__hint" id="client-scopes-hint">{t!(i18n, console.clients_scopes_hint)}</p>
            </div>
            <div class="field">
                <label for="client-identifiers">{t!(i18n, console.clients_identifiers)}</label>
                <textarea id="client-identifiers" name="identifiers" rows="2" aria-describedby="client-identifiers-hint"></textarea>
                <p class="field__hint" id="client-identifiers-hint">{t!(i18n, console.clients_identifiers_hint)}</p>
            </div>
            <button type="submit" class="button">{t!(i18n, console.clients_register)}</button>
        </form>
    }
}
