//! What Baton holds about a member: by kind of record (claims and prior authorizations as a
//! timeline, newest first), each with where it came from, opening to its FHIR JSON and its
//! sanitized narrative. Sensitive records stay hidden until a `privacy` staff member reveals
//! them, which is recorded; the server sends nothing of a hidden record.

use baton_vocab::Category;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::StaffNav;
use super::members::encode;
use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};
use crate::pages::transfer::category_label;

/// Session key: the `Type/id`s this session's privacy officer revealed.
#[cfg(feature = "ssr")]
const REVEALED: &str = "baton.revealed";

pub use baton_vocab::views::staff::{MemberRecords as RecordsView, RecordDetail as RecordView};

#[cfg(feature = "ssr")]
async fn revealed() -> Result<std::collections::HashSet<String>, AppError> {
    let session = crate::ssr::session().await?;
    Ok(session
        .get::<Vec<String>>(REVEALED)
        .await
        .map_err(crate::ssr::session_error)?
        .unwrap_or_default()
        .into_iter()
        .collect())
}

#[server(endpoint = "staff/records")]
pub async fn load_member_records(member: String, kind: String) -> Result<RecordsView, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let shown = revealed().await?;
    services
        .console
        .member_records(&staff, &member, &kind, |t, id| shown.contains(&format!("{t}/{id}")))
        .await
        .map_err(crate::ssr::console_error)
}

#[component]
pub fn MemberRecordsPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let query = use_query_map();
    let member = move || params.read().get("id").unwrap_or_default();
    let kind = move || query.read().get("kind").unwrap_or_default();
    let data = Resource::new(move || (member(), kind()), |(member, kind)| load_member_records(member, kind));
    view! {
        <Title text=t_string!(i18n, console.records_title).to_string()/>
        <Loaded data=data render={move |v: RecordsView| view! { <Records v/> }}/>
    }
}

#[component]
fn Records(v: RecordsView) -> impl IntoView {
    let i18n = use_i18n();
    let member = v.member;
    let total = v.total;
    let shown = v.items.len() as u64;
    let current = v.kind;
    view! {
        <StaffNav admin=v.admin/>
        <h1>{t!(i18n, console.records_heading, name = v.member_name.clone())}</h1>
        <p><A exact=true href=format!("/staff/members/{member}")>{t!(i18n, console.back_to_member)}</A></p>
        <nav aria-label=move || t_string!(i18n, console.kinds_label) class="tabs">
            <ul>{Category::STAFF_ORDER.into_iter().map(|k| {
                let here = k == current;
                view! { <li><a href=format!("/staff/members/{member}/records?kind={k}") aria-current=here.then_some("page")>{category_label(k.as_str())}</a></li> }
            }).collect_view()}</ul>
        </nav>
        <h2>{category_label(v.kind.as_str())}" "<span class="count">{format!("({total})")}</span></h2>
        {(shown < total).then(|| view! { <p class="field__hint">{t!(i18n, console.records_limited, shown = move || shown, total = move || total)}</p> })}
        {if v.items.is_empty() {
            view! { <p id="no-records">{t!(i18n, console.no_records)}</p> }.into_any()
        } else {
            view! {
                <ol class="timeline records" id="records">
                    {v.items.into_iter().map(|item| {
                        let href = format!("/staff/records/{}/{}", encode(&item.resource_type), encode(&item.id));
                        if item.hidden {
                            view! {
                                <li class="record record--hidden" data-sensitive="hidden">
                                    <span>{t!(i18n, console.sensitive_hidden)}</span>" "
                                    <a href=href>{t!(i18n, console.open)}</a>
                                </li>
                            }.into_any()
                        } else {
                            view! {
                                <li class="record" data-type=item.resource_type.clone()>
                                    <time>{item.date.clone().unwrap_or_else(|| "–".into())}</time>" "
                                    <a href=href>{item.title.clone().unwrap_or_default()}</a>
                                    {item.sensitive.then(|| view! { " " <span class="badge">{t!(i18n, console.sensitive_badge)}</span> })}
                                    <p class="record__source">
                                        {match item.from.clone() {
                                            Some(from) => t!(i18n, console.came_from, plan = from.clone()).into_any(),
                                            None => t!(i18n, console.this_plan).into_any(),
                                        }}
                                        {item.sources.into_iter().map(|s| {
                                            let at = s.recorded.clone().unwrap_or_default();
                                            if s.agents.is_empty() {
                                                view! { " · "{t!(i18n, console.provenance_recorded, at = at.clone())} }.into_any()
                                            } else {
                                                view! { " · "{t!(i18n, console.provenance, who = s.agents.join(", "), at = at.clone())} }.into_any()
                                            }
                                        }).collect_view()}
                                    </p>
                                </li>
                            }.into_any()
                        }
                    }).collect_view()}
                </ol>
            }.into_any()
        }}
    }
}

#[server(endpoint = "staff/record")]
pub async fn load_record(resource_type: String, id: String) -> Result<RecordView, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let revealed = revealed().await?.contains(&format!("{resource_type}/{id}"));
    services.console.record(&staff, &resource_type, &id, revealed).await.map_err(crate::ssr::console_error)
}

/// A privacy officer reveals one sensitive record for the rest of their session (recorded).
#[server(endpoint = "staff/record/reveal")]
pub async fn reveal_record(resource_type: String, id: String, reason: String) -> Result<(), AppError> {
    let staff = crate::ssr::require(|roles| roles.has(baton_vocab::Role::Privacy)).await?;
    let services = crate::ssr::services()?;
    services.console.reveal(&staff, &resource_type, &id, &reason).await.map_err(crate::ssr::console_error)?;
    let key = format!("{resource_type}/{id}");
    let session = crate::ssr::session().await?;
    let mut shown = session.get::<Vec<String>>(REVEALED).await.map_err(crate::ssr::session_error)?.unwrap_or_default();
    if !shown.contains(&key) {
        shown.push(key);
    }
    session.insert(REVEALED, shown).await.map_err(crate::ssr::session_error)?;
    leptos_axum::redirect(&format!("/staff/records/{}/{}", encode(&resource_type), encode(&id)));
    Ok(())
}

#[component]
pub fn RecordPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let key = move || (params.read().get("type").unwrap_or_default(), params.read().get("id").unwrap_or_default());
    let data = Resource::new(key, |(t, id)| load_record(t, id));
    view! {
        <Title text=t_string!(i18n, console.record_title).to_string()/>
        <Loaded data=data render={move |v: RecordView| view! { <Record v/> }}/>
    }
}

#[component]
fn Record(v: RecordView) -> impl IntoView {
    let i18n = use_i18n();
    let heading = v.title.clone().unwrap_or_else(|| format!("{}/{}", v.resource_type, v.id));
    view! {
        <StaffNav admin=v.admin/>
        <h1 id="record-title">{if v.hidden { t_string!(i18n, console.sensitive_hidden).to_string() } else { heading }}</h1>
        {v.member.map(|m| view! { <p><A exact=true href=format!("/staff/members/{m}/records")>{t!(i18n, console.back_to_records)}</A></p> })}
        <p><code>{format!("{}/{}", v.resource_type, v.id)}</code></p>
        {match (v.hidden, v.privacy) {
            (true, true) => view! {
                <form method="post" action=RevealRecord::url() class="form card" id="reveal-form">
                    <p>{t!(i18n, console.reveal_explain)}</p>
                    <input type="hidden" name="resource_type" value=v.resource_type.clone()/>
                    <input type="hidden" name="id" value=v.id.clone()/>
                    <div class="field">
                        <label for="reveal-reason">{t!(i18n, console.reveal_reason)}</label>
                        <input id="reveal-reason" name="reason" type="text" required maxlength="500"/>
                    </div>
                    <button type="submit" class="button" id="reveal">{t!(i18n, console.reveal)}</button>
                </form>
            }.into_any(),
            (true, false) => view! { <p class="alert" id="needs-privacy">{t!(i18n, console.reveal_needs_privacy)}</p> }.into_any(),
            _ => view! {
                {v.sensitive.then(|| view! { <p class="badge">{t!(i18n, console.sensitive_badge)}</p> })}
                <dl class="facts">
                    <div><dt>{t!(i18n, console.source)}</dt><dd>{v.from.clone().unwrap_or_else(|| t_string!(i18n, console.this_plan).to_string())}</dd></div>
                    {v.source_id.clone().map(|s| view! { <div><dt>{t!(i18n, console.source_id)}</dt><dd>{s}</dd></div> })}
                    {(!v.security.is_empty()).then(|| view! { <div><dt>{t!(i18n, console.labels)}</dt><dd>{v.security.join(", ")}</dd></div> })}
                </dl>
                {v.narrative.clone().map(|html| view! {
                    <section aria-labelledby="narrative-title" class="card">
                        <h2 id="narrative-title">{t!(i18n, console.narrative)}</h2>
                        // Sanitized on the server by baton_records::narrative (allow-list; no script, handlers or loads).
                        <div class="narrative" id="narrative" inner_html=html></div>
                    </section>
                })}
                <section aria-labelledby="json-title">
                    <h2 id="json-title">{t!(i18n, console.fhir_json)}</h2>
                    <pre class="json" tabindex="0" id="record-json"><code>{v.json.clone().unwrap_or_default()}</code></pre>
                </section>
            }.into_any(),
        }}
    }
}
