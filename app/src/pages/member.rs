use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use serde::{Deserialize, Serialize};

use crate::components::outcome::outcome;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

/// What the member home shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberHomeData {
    pub display_name: String,
    pub member_id: Option<String>,
    /// Coverage start as (year, month, day).
    pub coverage_start: Option<(i32, u8, u8)>,
    /// Each previous plan the member linked, newest first.
    pub links: Vec<LinkSummary>,
}

/// A previous-plan link and how its latest transfer stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSummary {
    pub payer_id: String,
    pub payer_name: String,
    /// The latest transfer's id and state (queued, running, completed, failed, cancelled,
    /// needs_reauthorization).
    pub transfer_id: Option<String>,
    pub state: String,
    pub stored: u64,
    pub withdrawn: bool,
}

#[server(endpoint = "member/home")]
pub async fn load_member_home() -> Result<MemberHomeData, AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    let store = &services.store;
    let mut links = Vec::new();
    let mut found = store.links_of(account.id).await.map_err(crate::ssr::unavailable)?;
    found.sort_by_key(|l| std::cmp::Reverse(l.created_at));
    for link in found {
        let filter = baton_store::TransferFilter {
            link_id: Some(link.id.clone()),
            member_account: Some(link.member_account),
            limit: 1,
            ..Default::default()
        };
        let latest = store.list_transfers(&filter).await.map_err(crate::ssr::unavailable)?.into_iter().next();
        let withdrawn = link.state == "revoked";
        links.push(LinkSummary {
            payer_name: services
                .journey
                .payers
                .get(&link.payer_id)
                .map_or_else(|| link.payer_id.clone(), |p| p.name.clone()),
            payer_id: link.payer_id,
            stored: latest.as_ref().map_or(0, |t| t.resources_stored.max(0) as u64),
            state: latest.as_ref().map_or_else(|| "queued".to_owned(), |t| t.state.clone()),
            transfer_id: latest.map(|t| t.id),
            withdrawn,
        });
    }
    Ok(MemberHomeData {
        display_name: account.display_name,
        member_id: account.member_id,
        coverage_start: account.coverage_start.map(|d| (d.year(), u8::from(d.month()), d.day())),
        links,
    })
}

#[component]
pub fn MemberHome() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| load_member_home());
    view! {
        <Title text=t_string!(i18n, nav.member_home).to_string()/>
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, |home: MemberHomeData| {
                let name = home.display_name.clone();
                view! {
                    <h1>{t!(i18n, member.title, name = name.clone())}</h1>
                    <dl class="facts">
                        {home.member_id.map(|id| view! {
                            <div><dt>{t!(i18n, member.member_id)}</dt><dd>{id}</dd></div>
                        })}
                        {home.coverage_start.and_then(|(y, m, d)| icu_date(y, m, d)).map(|date| view! {
                            <div>
                                <dt>{t!(i18n, member.coverage_start)}</dt>
                                <dd>{t!(i18n, member.coverage_start_value, date = move || date)}</dd>
                            </div>
                        })}
                    </dl>
                    {(!home.links.is_empty()).then(|| view! {
                        <section aria-labelledby="links-title">
                            <h2 id="links-title">{t!(i18n, member.links_title)}</h2>
                            <ul class="links">
                                {home.links.clone().into_iter().map(|link| view! { <LinkItem link/> }).collect_view()}
                            </ul>
                        </section>
                    })}
                    <section class="card card--feature" aria-labelledby="bring-title">
                        <h2 id="bring-title">{t!(i18n, member.bring_title)}</h2>
                        <p>{t!(i18n, member.bring_body)}</p>
                        <p><A href="/member/bring" attr:class="button">{t!(i18n, member.bring_start)}</A></p>
                    </section>
                }
            }))}
        </Suspense>
    }
}

/// One previous plan on the member home: its state in words, and what to do.
#[component]
fn LinkItem(link: LinkSummary) -> impl IntoView {
    let i18n = use_i18n();
    let old = link.payer_name.clone();
    let stored = link.stored;
    let state = if link.withdrawn { "withdrawn".to_owned() } else { link.state.clone() };
    let words = match state.as_str() {
        "withdrawn" => t!(i18n, member.link_withdrawn).into_any(),
        "queued" | "running" => t!(i18n, member.link_in_progress).into_any(),
        "completed" => t!(i18n, member.link_done, count = move || stored).into_any(),
        "needs_reauthorization" => t!(i18n, member.link_reauthorize, old = old.clone()).into_any(),
        "cancelled" => t!(i18n, member.link_cancelled).into_any(),
        _ => t!(i18n, member.link_failed).into_any(),
    };
    let action = match state.as_str() {
        "needs_reauthorization" | "withdrawn" | "cancelled" => Some(view! {
            <A href=format!("/member/bring/{}", link.payer_id)>{t!(i18n, member.link_sign_in_again, old = old.clone())}</A>
        }.into_any()),
        _ => None,
    };
    view! {
        <li class="link-item" data-state=state.clone()>
            <h3 class="link-item__name">{link.payer_name.clone()}</h3>
            <p class="link-item__state">{words}</p>
            <p class="link-item__actions">
                {link.transfer_id.map(|id| view! {
                    <A href=format!("/member/transfers/{id}")>{t!(i18n, member.link_details)}</A>
                })}
                {action}
            </p>
        </li>
    }
}

/// An ICU calendar date for locale-aware formatting.
pub fn icu_date(
    year: i32,
    month: u8,
    day: u8,
) -> Option<leptos_i18n::reexports::icu::calendar::Date<leptos_i18n::reexports::icu::calendar::Iso>> {
    leptos_i18n::reexports::icu::calendar::Date::try_new_iso(year, month, day).ok()
}
