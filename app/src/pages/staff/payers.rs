//! The payer directory for staff: every previous plan members can pick (from configuration,
//! or loaded from SMART User-access Brand Bundles by URL or file and refreshed with ETags),
//! this plan's registration at each, and what discovery found — a plan that does not offer
//! PKCE S256 is refused, and staff see why here. Admins also switch configured plans off and
//! on (the setting is stored and wins over configuration; authorizations already given keep
//! their transfers running, no new one starts), and pin a brands entry's SMART endpoints and
//! scopes.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::StaffNav;
use super::discovery::DiscoverySummary;
use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

use baton_vocab::views::console::{DirectoryRow, DirectoryView, PayerState};

#[server(endpoint = "staff/payers")]
pub async fn load_directory() -> Result<DirectoryView, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    services.console.payer_directory(&staff).await.map_err(crate::ssr::console_error)
}

/// Loads (or refreshes) a brands file from its URL.
#[server(endpoint = "staff/payers/load")]
pub async fn load_brands(url: String) -> Result<(), AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    match services.console.load_brands_url(&staff, &url).await {
        Ok(baton_staff::BrandsLoad::Loaded) => leptos_axum::redirect("/staff/payers"),
        Ok(baton_staff::BrandsLoad::Refused) => leptos_axum::redirect("/staff/payers?problem=load"),
        Err(baton_staff::ConsoleError::Invalid(_)) => leptos_axum::redirect("/staff/payers?problem=url"),
        Err(error) => return Err(crate::ssr::console_error(error)),
    }
    Ok(())
}

/// Admins: this plan's registration at a brands entry: client id, credential name, offered or not.
#[server(endpoint = "staff/payers/register")]
pub async fn register_payer(
    id: String,
    client_id: String,
    credential: String,
    enabled: Option<String>,
) -> Result<(), AppError> {
    // Registering is what offers a plan to members (with a credential of this plan's): admins,
    // like switching configured plans on and off.
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let enabled = enabled.is_some_and(|e| e == "yes");
    services
        .console
        .register_payer(&admin, &id, &client_id, &credential, enabled)
        .await
        .map_err(crate::ssr::console_error)?;
    leptos_axum::redirect("/staff/payers");
    Ok(())
}

/// Admins switch a configured payer `on` or `off` (stored; wins over configuration), or back
/// to what configuration says (`config`). A payer switched off is not offered to members and no
/// new authorization starts with it; transfers members already authorized keep running.
#[server(endpoint = "staff/payers/enable")]
pub async fn set_payer_enabled(id: String, enabled: String) -> Result<(), AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let choice = match enabled.as_str() {
        "on" => Some(true),
        "off" => Some(false),
        "config" => None,
        _ => return Err(invalid(&id)(baton_staff::ConsoleError::Invalid("enabled"))),
    };
    services.console.set_payer_enabled(&admin, &id, choice).await.map_err(invalid(&id))?;
    leptos_axum::redirect("/staff/payers");
    Ok(())
}

/// Admins pin a brands entry's SMART authorization and token endpoints and its scope override
/// (each optional; an empty field clears it). URLs must be absolute https (http only for a
/// loopback host); scopes must be SMART scopes asking for patient data.
#[server(endpoint = "staff/payers/endpoints")]
pub async fn pin_payer_endpoints(
    id: String,
    authorize_url: String,
    token_url: String,
    scopes: String,
) -> Result<(), AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    services
        .console
        .pin_payer_endpoints(&admin, &id, &authorize_url, &token_url, &scopes)
        .await
        .map_err(invalid(&id))?;
    leptos_axum::redirect("/staff/payers");
    Ok(())
}

/// The console's error for a payer's form: a refused field sends a plain form post back to the
/// page, which says what is wrong (`?problem=invalid_{field}&payer={id}`); a call from script
/// gets 400 and the field.
#[cfg(feature = "ssr")]
fn invalid(id: &str) -> impl Fn(baton_staff::ConsoleError) -> AppError + '_ {
    move |error| {
        if let baton_staff::ConsoleError::Invalid(field) = &error {
            leptos_axum::redirect(&format!(
                "/staff/payers?problem=invalid_{field}&payer={}",
                super::members::encode(id)
            ));
        }
        crate::ssr::console_error(error)
    }
}

/// Runs discovery for one payer now, so staff see whether members can use it.
#[server(endpoint = "staff/payers/check")]
pub async fn check_payer(id: String) -> Result<(), AppError> {
    crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let problem = services.console.check_payer(&id).await;
    let mark = if problem.is_some() { "problem" } else { "ok" };
    leptos_axum::redirect(&format!("/staff/payers?checked={}&result={mark}", super::members::encode(&id)));
    Ok(())
}

#[component]
pub fn PayersPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let problem = move || query.read().get("problem");
    let problem_payer = move || query.read().get("payer");
    let checked = move || query.read().get("checked").zip(query.read().get("result"));
    let data = Resource::new(|| (), |_| load_directory());
    view! {
        <Title text=t_string!(i18n, console.payers_title).to_string()/>
        <Loaded data=data render={move |v: DirectoryView| {
                let credentials = v.credentials.clone();
                let admin = v.admin;
                view! {
                    <StaffNav admin=v.admin/>
                    <h1>{t!(i18n, console.payers_title)}</h1>
                    <p>{t!(i18n, console.payers_intro)}</p>
                    {problem().map(|p| {
                        let payer = problem_payer().unwrap_or_default();
                        view! { <p class="alert" role="alert" id="payers-problem">{match p.as_str() {
                            "url" => t!(i18n, console.payers_problem_url).into_any(),
                            "empty" => t!(i18n, console.roster_problem_empty).into_any(),
                            "invalid_authorize_url" => t!(i18n, console.payers_problem_authorize_url, id = payer.clone()).into_any(),
                            "invalid_token_url" => t!(i18n, console.payers_problem_token_url, id = payer.clone()).into_any(),
                            "invalid_scopes" => t!(i18n, console.payers_problem_scopes, id = payer.clone()).into_any(),
                            "invalid_enabled" => t!(i18n, console.payers_problem_enabled, id = payer.clone()).into_any(),
                            _ => t!(i18n, console.payers_problem_load).into_any(),
                        }}</p> }
                    })}
                    {checked().map(|(id, result)| view! { <p class="alert" role="status" id="payers-checked">{
                        if result == "ok" { t!(i18n, console.payers_check_ok, id = id.clone()).into_any() }
                        else { t!(i18n, console.payers_check_problem, id = id.clone()).into_any() }
                    }</p> })}
                    <section class="card" aria-labelledby="load-title">
                        <h2 id="load-title">{t!(i18n, console.payers_load_title)}</h2>
                        <form method="post" action=LoadBrands::url() class="form form--inline">
                            <div class="field">
                                <label for="brands-url">{t!(i18n, console.payers_url)}</label>
                                <input id="brands-url" name="url" type="url" required placeholder="https://…/brands.json"/>
                            </div>
                            <button type="submit" class="button">{t!(i18n, console.payers_load)}</button>
                        </form>
                        <form method="post" action="/staff/payers/brands" enctype="multipart/form-data" class="form form--inline">
                            <div class="field">
                                <label for="brands-file">{t!(i18n, console.payers_file)}</label>
                                <input id="brands-file" name="file" type="file" accept=".json,application/json,application/fhir+json"/>
                            </div>
                            <button type="submit" class="button button--secondary">{t!(i18n, console.payers_load_file)}</button>
                        </form>
                    </section>
                    {(!v.sources.is_empty()).then(|| view! {
                        <section aria-labelledby="sources-title">
                            <h2 id="sources-title">{t!(i18n, console.payers_sources)}</h2>
                            <table class="data" id="brand-sources">
                                <thead><tr>
                                    <th scope="col">{t!(i18n, console.payers_source)}</th>
                                    <th scope="col">{t!(i18n, console.payers_checked)}</th>
                                    <th scope="col">{t!(i18n, console.payers_changed)}</th>
                                    <th scope="col">{t!(i18n, console.status)}</th>
                                    <th scope="col"><span class="visually-hidden">{t!(i18n, console.payers_refresh)}</span></th>
                                </tr></thead>
                                <tbody>{v.sources.into_iter().map(|s| view! {
                                    <tr>
                                        <td class="url">{s.url.clone()}</td>
                                        <td>{s.checked_at}</td>
                                        <td>{s.changed_at}</td>
                                        <td class="source-status">{s.status}</td>
                                        <td>{s.refreshable.then(|| view! {
                                            <form method="post" action=LoadBrands::url() class="inline-form">
                                                <input type="hidden" name="url" value=s.url.clone()/>
                                                <button type="submit" class="button button--secondary">{t!(i18n, console.payers_refresh)}</button>
                                            </form>
                                        })}</td>
                                    </tr>
                                }).collect_view()}</tbody>
                            </table>
                        </section>
                    })}
                    <section aria-labelledby="plans-title">
                        <h2 id="plans-title">{t!(i18n, console.payers_plans)}</h2>
                        <ul class="payer-admin" id="directory">
                            {v.rows.into_iter().map(|row| payer_card(row, credentials.clone(), admin)).collect_view()}
                        </ul>
                    </section>
                }
            }}/>
    }
}

/// One plan's card: where it comes from, whether members are offered it and why, discovery's
/// last problem, and the forms staff (and admins) may use on it. Parts are type-erased
/// (`into_any`): the whole card as one static view type overflowed a 2 MiB worker stack in
/// debug builds.
fn payer_card(row: DirectoryRow, credentials: Vec<String>, admin: bool) -> AnyView {
    let i18n = use_i18n();
    let settings = row.enabled_in_config.map(|in_config| {
        view! {
            <p class="payer-config">{if in_config {
                t!(i18n, console.payers_config_on).into_any()
            } else {
                t!(i18n, console.payers_config_off).into_any()
            }}</p>
            <p class="payer-override">{match row.enabled_override {
                Some(true) => t!(i18n, console.payers_override_on).into_any(),
                Some(false) => t!(i18n, console.payers_override_off).into_any(),
                None => t!(i18n, console.payers_override_none).into_any(),
            }}</p>
        }
        .into_any()
    });
    let off_note = (row.state == PayerState::Disabled)
        .then(|| view! { <p class="payer-note">{t!(i18n, console.payers_off_note)}</p> }.into_any());
    let problem = row.discovery.clone().map(|discovery| view! { <DiscoverySummary discovery/> }.into_any());
    let registration = match (row.editable, admin) {
        (false, _) => None,
        (true, true) => Some(
            view! {
                <RegistrationForm id=row.id.clone() client_id=row.client_id.clone() credential=row.credential.clone()
                    enabled=row.enabled credentials/>
            }
            .into_any(),
        ),
        (true, false) => Some(
            view! { <RegistrationSummary client_id=row.client_id.clone() credential=row.credential.clone()/> }
                .into_any(),
        ),
    };
    let pin = (admin && row.editable).then(|| {
        view! {
            <PinForm id=row.id.clone() authorize_url=row.authorize_url.clone() token_url=row.token_url.clone() scopes=row.scopes.clone()/>
        }
        .into_any()
    });
    let switch = (admin && row.enabled_in_config.is_some()).then(|| {
        view! {
            <SwitchForm id=row.id.clone() in_config=row.enabled_in_config.unwrap_or(true) current=row.enabled_override/>
        }
        .into_any()
    });
    let source = row.source.clone().unwrap_or_else(|| t_string!(i18n, console.payers_from_config).to_string());
    view! {
        <li class="card" data-payer=row.id.clone() data-state=row.state.as_str()>
            <h3>{row.name.clone()}</h3>
            <p class="url">{row.fhir_base.clone()}" · "{source}</p>
            <p class="payer-state">{payer_state(row.state)}</p>
            {settings}
            {off_note}
            <PinnedSummary authorize_url=row.authorize_url.clone() token_url=row.token_url.clone() scopes=row.scopes.clone()/>
            {problem}
            <form method="post" action=CheckPayer::url() class="inline-form">
                <input type="hidden" name="id" value=row.id.clone()/>
                <button type="submit" class="button button--quiet">{t!(i18n, console.payers_check)}</button>
            </form>
            {registration}
            {pin}
            {switch}
        </li>
    }
    .into_any()
}

/// This plan's registration at a brands entry, for staff who are not admins: read only.
#[component]
fn RegistrationSummary(client_id: Option<String>, credential: Option<String>) -> impl IntoView {
    let i18n = use_i18n();
    let none = move || t_string!(i18n, console.payers_no_credential).to_string();
    view! {
        <dl class="payer-pinned payer-registration">
            <dt>{t!(i18n, console.payers_client_id)}</dt>
            <dd class="url">{client_id.unwrap_or_else(none)}</dd>
            <dt>{t!(i18n, console.payers_credential)}</dt>
            <dd class="url">{credential.unwrap_or_else(none)}</dd>
        </dl>
        <p class="payer-note">{t!(i18n, console.payers_registration_admin)}</p>
    }
}

/// Admins: this plan's registration at a brands entry: client id, credential name, offered.
#[component]
fn RegistrationForm(
    id: String,
    client_id: Option<String>,
    credential: Option<String>,
    enabled: bool,
    credentials: Vec<String>,
) -> impl IntoView {
    let i18n = use_i18n();
    let prefix = format!("reg-{id}");
    view! {
        <form method="post" action=RegisterPayer::url() class="form form--inline">
            <input type="hidden" name="id" value=id.clone()/>
            <div class="field">
                <label for=format!("{prefix}-client")>{t!(i18n, console.payers_client_id)}</label>
                <input id=format!("{prefix}-client") name="client_id" type="text" value=client_id.unwrap_or_default()/>
            </div>
            <div class="field">
                <label for=format!("{prefix}-credential")>{t!(i18n, console.payers_credential)}</label>
                <select id=format!("{prefix}-credential") name="credential">
                    <option value="">{t!(i18n, console.payers_no_credential)}</option>
                    {credentials.into_iter().map(|name| {
                        let selected = credential.as_deref() == Some(name.as_str());
                        view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
                    }).collect_view()}
                </select>
            </div>
            <div class="choice__option">
                <input type="checkbox" id=format!("{prefix}-enabled") name="enabled" value="yes" checked=enabled/>
                <label for=format!("{prefix}-enabled")>{t!(i18n, console.payers_enabled)}</label>
            </div>
            <button type="submit" class="button">{t!(i18n, console.payers_save)}</button>
        </form>
    }
    .into_any()
}

fn payer_state(state: PayerState) -> AnyView {
    let i18n = use_i18n();
    match state {
        PayerState::Offered => t!(i18n, console.payers_offered).into_any(),
        PayerState::Disabled => t!(i18n, console.payers_disabled).into_any(),
        PayerState::NoRegistration => t!(i18n, console.payers_no_registration).into_any(),
        PayerState::UnknownCredential => t!(i18n, console.payers_unknown_credential).into_any(),
        PayerState::Withdrawn => t!(i18n, console.payers_withdrawn).into_any(),
        PayerState::Shadowed => t!(i18n, console.payers_shadowed).into_any(),
    }
}

/// Pinned endpoints and scope override, when there are any.
#[component]
fn PinnedSummary(authorize_url: Option<String>, token_url: Option<String>, scopes: Option<String>) -> impl IntoView {
    let i18n = use_i18n();
    let any = authorize_url.is_some() || token_url.is_some() || scopes.is_some();
    any.then(|| {
        view! {
            <dl class="payer-pinned">
                {authorize_url.map(|u| view! { <dt>{t!(i18n, console.payers_authorize_url)}</dt><dd class="url">{u}</dd> })}
                {token_url.map(|u| view! { <dt>{t!(i18n, console.payers_token_url)}</dt><dd class="url">{u}</dd> })}
                {scopes.map(|s| view! { <dt>{t!(i18n, console.payers_scopes)}</dt><dd class="url">{s}</dd> })}
            </dl>
        }
    })
}

/// Admins: a brands entry's pinned SMART endpoints and scope override (plain form post).
#[component]
fn PinForm(
    id: String,
    authorize_url: Option<String>,
    token_url: Option<String>,
    scopes: Option<String>,
) -> impl IntoView {
    let i18n = use_i18n();
    let prefix = format!("pin-{id}");
    let title = format!("{prefix}-title");
    let endpoint_hint = format!("{prefix}-endpoint-hint");
    let scopes_hint = format!("{prefix}-scopes-hint");
    view! {
        <form method="post" action=PinPayerEndpoints::url() class="form payer-pin" aria-labelledby=title.clone()>
            <h4 id=title.clone()>{t!(i18n, console.payers_pin_title)}</h4>
            <p class="field__hint" id=endpoint_hint.clone()>{t!(i18n, console.payers_endpoint_hint)}</p>
            <input type="hidden" name="id" value=id.clone()/>
            <div class="field">
                <label for=format!("{prefix}-authorize")>{t!(i18n, console.payers_authorize_url)}</label>
                <input id=format!("{prefix}-authorize") name="authorize_url" type="url" inputmode="url" autocomplete="off"
                    aria-describedby=endpoint_hint.clone() value=authorize_url.unwrap_or_default()/>
            </div>
            <div class="field">
                <label for=format!("{prefix}-token")>{t!(i18n, console.payers_token_url)}</label>
                <input id=format!("{prefix}-token") name="token_url" type="url" inputmode="url" autocomplete="off"
                    aria-describedby=endpoint_hint.clone() value=token_url.unwrap_or_default()/>
            </div>
            <div class="field">
                <label for=format!("{prefix}-scopes")>{t!(i18n, console.payers_scopes)}</label>
                <input id=format!("{prefix}-scopes") name="scopes" type="text" autocomplete="off" spellcheck="false"
                    aria-describedby=scopes_hint.clone() value=scopes.unwrap_or_default()/>
                <span class="field__hint" id=scopes_hint.clone()>{t!(i18n, console.payers_scopes_hint)}</span>
            </div>
            <button type="submit" class="button">{t!(i18n, console.payers_pin_save)}</button>
        </form>
    }
    .into_any()
}

/// Admins: offer a configured plan or not, or leave it to configuration (plain form post).
#[component]
fn SwitchForm(id: String, in_config: bool, current: Option<bool>) -> impl IntoView {
    let i18n = use_i18n();
    let prefix = format!("switch-{id}");
    let hint = format!("{prefix}-hint");
    let choice = match current {
        Some(true) => "on",
        Some(false) => "off",
        None => "config",
    };
    let option = move |value: &'static str, label: AnyView| {
        let input = format!("{prefix}-{value}");
        view! {
            <div class="choice__option">
                <input type="radio" id=input.clone() name="enabled" value=value checked={choice == value}/>
                <label for=input>{label}</label>
            </div>
        }
    };
    let config_label = if in_config {
        t!(i18n, console.payers_switch_config_on).into_any()
    } else {
        t!(i18n, console.payers_switch_config_off).into_any()
    };
    view! {
        <form method="post" action=SetPayerEnabled::url() class="form payer-switch">
            <input type="hidden" name="id" value=id.clone()/>
            <fieldset class="choice" aria-describedby=hint.clone()>
                <legend>{t!(i18n, console.payers_switch_legend)}</legend>
                <p class="field__hint" id=hint.clone()>{t!(i18n, console.payers_off_note)}</p>
                {option("config", config_label)}
                {option("on", t!(i18n, console.payers_switch_on).into_any())}
                {option("off", t!(i18n, console.payers_switch_off).into_any())}
            </fieldset>
            <button type="submit" class="button">{t!(i18n, console.payers_save)}</button>
        </form>
    }
    .into_any()
}
