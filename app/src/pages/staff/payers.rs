//! The payer directory for staff: every previous plan members can pick (from configuration,
//! or loaded from SMART User-access Brand Bundles by URL or file and refreshed with ETags),
//! this plan's registration at each, and what discovery found — a plan that does not offer
//! PKCE S256 is refused, and staff see why here.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use super::StaffNav;
use crate::components::outcome::outcome;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryRow {
    pub id: String,
    pub name: String,
    pub fhir_base: String,
    /// `config`, or the brands file it came from.
    pub source: String,
    /// offered | disabled | no_registration | unknown_credential | shadowed
    pub state: String,
    pub client_id: Option<String>,
    pub credential: Option<String>,
    pub enabled: bool,
    pub editable: bool,
    /// What discovery found the last time it ran (e.g. no S256).
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRow {
    pub url: String,
    pub checked_at: String,
    pub changed_at: String,
    pub status: String,
    pub refreshable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryView {
    pub admin: bool,
    pub rows: Vec<DirectoryRow>,
    pub sources: Vec<SourceRow>,
    pub credentials: Vec<String>,
}

#[server(endpoint = "staff/payers")]
pub async fn load_directory() -> Result<DirectoryView, AppError> {
    use baton_journey::EntryState;
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let journey = &services.journey;
    let directory = &journey.payers;
    let mut rows: Vec<DirectoryRow> = directory
        .configured()
        .iter()
        .map(|p| DirectoryRow {
            id: p.id.clone(),
            name: p.name.clone(),
            fhir_base: p.fhir_base.to_string(),
            source: "config".into(),
            state: "offered".into(),
            client_id: Some(p.credentials.client_id.clone()),
            credential: None,
            enabled: true,
            editable: false,
            problem: journey.discovery.problem(&p.id),
        })
        .collect();
    for entry in services.store.payer_entries().await.map_err(crate::ssr::unavailable)? {
        let state = match directory.state_of(&entry) {
            EntryState::Offered => "offered",
            EntryState::Disabled => "disabled",
            EntryState::NoRegistration => "no_registration",
            EntryState::UnknownCredential => "unknown_credential",
            EntryState::Shadowed => "shadowed",
        };
        rows.push(DirectoryRow {
            problem: journey.discovery.problem(&entry.id),
            id: entry.id,
            name: entry.name,
            fhir_base: entry.fhir_base,
            source: entry.source_url,
            state: state.into(),
            client_id: entry.client_id,
            credential: entry.credential,
            enabled: entry.enabled,
            editable: true,
        });
    }
    rows.sort_by_key(|r| r.name.to_lowercase());
    let sources = services
        .store
        .brand_sources()
        .await
        .map_err(crate::ssr::unavailable)?
        .into_iter()
        .map(|s| SourceRow {
            refreshable: s.url.starts_with("http"),
            url: s.url,
            checked_at: super::utc(s.checked_at),
            changed_at: super::utc(s.changed_at),
            status: s.status,
        })
        .collect();
    Ok(DirectoryView {
        admin: staff.roles.has(baton_accounts::Role::Admin),
        rows,
        sources,
        credentials: directory.credential_names(),
    })
}

/// Loads (or refreshes) a brands file from its URL.
#[server(endpoint = "staff/payers/load")]
pub async fn load_brands(url: String) -> Result<(), AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let Ok(parsed) = url::Url::parse(url.trim()) else {
        leptos_axum::redirect("/staff/payers?problem=url");
        return Ok(());
    };
    let result = services.journey.import_brands_url(&parsed, baton_store::Timestamp::now()).await;
    let detail = match &result {
        Ok(import) if import.not_modified => "not modified".to_owned(),
        Ok(import) => format!("{} plans, {} new", import.entries, import.added),
        Err(error) => format!("failed: {error}"),
    };
    crate::ssr::audit(&staff, baton_staff::audit::action::PAYERS_LOAD, None, parsed.as_str(), &detail).await?;
    leptos_axum::redirect(if result.is_ok() { "/staff/payers" } else { "/staff/payers?problem=load" });
    Ok(())
}

/// This plan's registration at a brands entry: client id, credential name, offered or not.
#[server(endpoint = "staff/payers/register")]
pub async fn register_payer(
    id: String,
    client_id: String,
    credential: String,
    enabled: Option<String>,
) -> Result<(), AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let client_id = Some(client_id.trim()).filter(|c| !c.is_empty());
    if client_id.is_some_and(|c| c.len() > 200 || c.chars().any(char::is_control)) {
        return Err(crate::ssr::fail(AppError::Invalid { field: "client_id".into() }));
    }
    let credential = Some(credential.trim()).filter(|c| !c.is_empty());
    if credential.is_some_and(|c| !services.journey.payers.credential_names().iter().any(|n| n == c)) {
        return Err(crate::ssr::fail(AppError::Invalid { field: "credential".into() }));
    }
    let enabled = enabled.is_some_and(|e| e == "yes");
    let known = services
        .journey
        .register_payer(&id, client_id, credential, enabled, baton_store::Timestamp::now())
        .await
        .map_err(crate::ssr::unavailable)?;
    if !known {
        return Err(crate::ssr::fail(AppError::NotFound));
    }
    crate::ssr::audit(
        &staff,
        baton_staff::audit::action::PAYERS_REGISTER,
        None,
        &format!("payer {id}"),
        &format!("client_id={} credential={} enabled={enabled}", client_id.unwrap_or("-"), credential.unwrap_or("-")),
    )
    .await?;
    leptos_axum::redirect("/staff/payers");
    Ok(())
}

/// Runs discovery for one payer now, so staff see whether members can use it.
#[server(endpoint = "staff/payers/check")]
pub async fn check_payer(id: String) -> Result<(), AppError> {
    crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let problem = services.journey.check_payer(&id).await;
    let mark = if problem.is_some() { "problem" } else { "ok" };
    leptos_axum::redirect(&format!("/staff/payers?checked={}&result={mark}", super::members::encode(&id)));
    Ok(())
}

#[component]
pub fn PayersPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let problem = move || query.read().get("problem");
    let checked = move || query.read().get("checked").zip(query.read().get("result"));
    let data = Resource::new(|| (), |_| load_directory());
    view! {
        <Title text=t_string!(i18n, console.payers_title).to_string()/>
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, move |v: DirectoryView| {
                let credentials = v.credentials.clone();
                view! {
                    <StaffNav admin=v.admin/>
                    <h1>{t!(i18n, console.payers_title)}</h1>
                    <p>{t!(i18n, console.payers_intro)}</p>
                    {problem().map(|p| view! { <p class="alert" role="alert" id="payers-problem">{match p.as_str() {
                        "url" => t!(i18n, console.payers_problem_url).into_any(),
                        "empty" => t!(i18n, console.roster_problem_empty).into_any(),
                        _ => t!(i18n, console.payers_problem_load).into_any(),
                    }}</p> })}
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
                            {v.rows.into_iter().map(|row| {
                                let credentials = credentials.clone();
                                view! {
                                    <li class="card" data-payer=row.id.clone() data-state=row.state.clone()>
                                        <h3>{row.name.clone()}</h3>
                                        <p class="url">{row.fhir_base.clone()}" · "{if row.source == "config" {
                                            t_string!(i18n, console.payers_from_config).to_string()
                                        } else { row.source.clone() }}</p>
                                        <p class="payer-state">{payer_state(&row.state)}</p>
                                        {row.problem.clone().map(|p| view! { <p class="alert payer-problem">{t!(i18n, console.payers_discovery_problem, problem = p.clone())}</p> })}
                                        <form method="post" action=CheckPayer::url() class="inline-form">
                                            <input type="hidden" name="id" value=row.id.clone()/>
                                            <button type="submit" class="button button--quiet">{t!(i18n, console.payers_check)}</button>
                                        </form>
                                        {row.editable.then(|| {
                                            let prefix = format!("reg-{}", row.id);
                                            view! {
                                                <form method="post" action=RegisterPayer::url() class="form form--inline">
                                                    <input type="hidden" name="id" value=row.id.clone()/>
                                                    <div class="field">
                                                        <label for=format!("{prefix}-client")>{t!(i18n, console.payers_client_id)}</label>
                                                        <input id=format!("{prefix}-client") name="client_id" type="text" value=row.client_id.clone().unwrap_or_default()/>
                                                    </div>
                                                    <div class="field">
                                                        <label for=format!("{prefix}-credential")>{t!(i18n, console.payers_credential)}</label>
                                                        <select id=format!("{prefix}-credential") name="credential">
                                                            <option value="">{t!(i18n, console.payers_no_credential)}</option>
                                                            {credentials.into_iter().map(|name| {
                                                                let selected = row.credential.as_deref() == Some(name.as_str());
                                                                view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
                                                            }).collect_view()}
                                                        </select>
                                                    </div>
                                                    <div class="choice__option">
                                                        <input type="checkbox" id=format!("{prefix}-enabled") name="enabled" value="yes" checked=row.enabled/>
                                                        <label for=format!("{prefix}-enabled")>{t!(i18n, console.payers_enabled)}</label>
                                                    </div>
                                                    <button type="submit" class="button">{t!(i18n, console.payers_save)}</button>
                                                </form>
                                            }
                                        })}
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    </section>
                }
            }))}
        </Suspense>
    }
}

fn payer_state(state: &str) -> AnyView {
    let i18n = use_i18n();
    match state {
        "offered" => t!(i18n, console.payers_offered).into_any(),
        "disabled" => t!(i18n, console.payers_disabled).into_any(),
        "no_registration" => t!(i18n, console.payers_no_registration).into_any(),
        "unknown_credential" => t!(i18n, console.payers_unknown_credential).into_any(),
        _ => t!(i18n, console.payers_shadowed).into_any(),
    }
}
