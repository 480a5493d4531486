//! Finding a member, and everything about one: coverage, consents (with their HRex Consent
//! JSON), previous-plan links, transfers, what was received, and their invitation link.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use super::{StaffNav, state_label};
use crate::components::outcome::outcome;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub account: i64,
    pub name: String,
    pub member_id: String,
    pub birth_date: String,
    pub coverage_start: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSearch {
    pub admin: bool,
    pub rows: Vec<MemberRow>,
    pub more: bool,
}

#[cfg(feature = "ssr")]
const PAGE: u32 = 50;

#[server(endpoint = "staff/members")]
pub async fn search_members(q: String, birth: String, page: u32) -> Result<MemberSearch, AppError> {
    let account = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let birth = birth.trim().to_owned();
    if !birth.is_empty() && super::day_start(&birth).is_none() {
        return Err(crate::ssr::fail(AppError::Invalid { field: "birth".into() }));
    }
    let found = services
        .store
        .search_members(&baton_store::MemberQuery {
            text: Some(q.clone()),
            birth_date: Some(birth.clone()),
            limit: PAGE + 1,
            offset: page.saturating_mul(PAGE),
        })
        .await
        .map_err(crate::ssr::unavailable)?;
    crate::ssr::audit(
        &account,
        baton_staff::audit::action::MEMBER_SEARCH,
        None,
        &format!("q={q} birth={birth}"),
        &format!("{} found", found.len().min(PAGE as usize)),
    )
    .await?;
    let more = found.len() > PAGE as usize;
    Ok(MemberSearch {
        admin: account.roles.has(baton_accounts::Role::Admin),
        more,
        rows: found
            .into_iter()
            .take(PAGE as usize)
            .map(|a| MemberRow {
                account: a.id.0,
                name: a.display_name,
                member_id: a.member_id.unwrap_or_default(),
                birth_date: a.birth_date.unwrap_or_default(),
                coverage_start: a.coverage_start.unwrap_or_default(),
            })
            .collect(),
    })
}

#[component]
pub fn MembersPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let birth = move || query.read().get("birth").unwrap_or_default();
    let page = move || query.read().get("page").and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
    let data = Resource::new(move || (q(), birth(), page()), |(q, birth, page)| search_members(q, birth, page));
    view! {
        <Title text=t_string!(i18n, console.members_title).to_string()/>
        <h1>{t!(i18n, console.members_title)}</h1>
        <form method="get" action="/staff/members" class="form form--inline" role="search">
            <div class="field">
                <label for="member-q">{t!(i18n, console.search_label)}</label>
                <input id="member-q" name="q" type="search" prop:value=q value=q/>
            </div>
            <div class="field">
                <label for="member-birth">{t!(i18n, console.birth_date)}</label>
                <input id="member-birth" name="birth" type="date" value=birth/>
            </div>
            <button type="submit" class="button">{t!(i18n, console.search)}</button>
        </form>
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, move |found: MemberSearch| {
                let next = format!("/staff/members?q={}&birth={}&page={}", encode(&q()), encode(&birth()), page() + 1);
                view! {
                    <StaffNav admin=found.admin/>
                    {if found.rows.is_empty() {
                        view! { <p id="no-members">{t!(i18n, console.no_members)}</p> }.into_any()
                    } else {
                        view! {
                            <table class="data" id="members">
                                <thead><tr>
                                    <th scope="col">{t!(i18n, console.member_name)}</th>
                                    <th scope="col">{t!(i18n, console.member_id)}</th>
                                    <th scope="col">{t!(i18n, console.birth_date)}</th>
                                    <th scope="col">{t!(i18n, console.coverage_start)}</th>
                                </tr></thead>
                                <tbody>
                                    {found.rows.into_iter().map(|m| view! {
                                        <tr>
                                            <td><A href=format!("/staff/members/{}", m.account)>{m.name}</A></td>
                                            <td>{m.member_id}</td>
                                            <td>{m.birth_date}</td>
                                            <td>{m.coverage_start}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any()
                    }}
                    {found.more.then(|| view! { <p><a href=next>{t!(i18n, console.next_page)}</a></p> })}
                }
            }))}
        </Suspense>
    }
}

pub(crate) use crate::url::encode;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRow {
    pub id: String,
    pub payer: String,
    /// regular (sensitive excluded) | sensitive (included)
    pub policy: String,
    pub given_at: String,
    pub until: String,
    pub withdrawn_at: Option<String>,
    pub json: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRow {
    pub payer: String,
    pub state: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLine {
    pub id: String,
    pub payer: String,
    pub state: String,
    pub created_at: String,
    pub stored: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberData {
    pub admin: bool,
    pub account: i64,
    pub name: String,
    pub username: String,
    pub member_id: String,
    pub birth_date: String,
    pub coverage_start: String,
    pub plan: Option<String>,
    pub has_password: bool,
    pub invitation_link: Option<String>,
    pub invitation_expires: Option<String>,
    pub consents: Vec<ConsentRow>,
    pub links: Vec<LinkRow>,
    pub transfers: Vec<TransferLine>,
    pub received: u64,
}

#[cfg(feature = "ssr")]
pub(crate) async fn member_account(id: &str) -> Result<baton_store::Account, AppError> {
    let services = crate::ssr::services()?;
    let id: i64 = id.parse().map_err(|_| crate::ssr::fail(AppError::NotFound))?;
    match services.store.account_by_id(baton_store::AccountId(id)).await.map_err(crate::ssr::unavailable)? {
        Some(account) if account.member_id.is_some() => Ok(account),
        _ => Err(crate::ssr::fail(AppError::NotFound)),
    }
}

#[server(endpoint = "staff/member")]
pub async fn load_member(id: String) -> Result<MemberData, AppError> {
    use crate::ssr::unavailable;
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let store = &services.store;
    let member = member_account(&id).await?;
    let payer_name = |id: &str| services.journey.payers.known(id).map_or_else(|| id.to_owned(), |p| p.name.clone());
    let now = baton_store::Timestamp::now();
    let invitation = services.enrollment.invitations.status(member.id, now).await.map_err(unavailable)?;
    let consents = store
        .consents_of(member.id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|c| ConsentRow {
            payer: payer_name(&c.payer_id),
            policy: c.policy,
            given_at: super::utc(c.given_at),
            until: super::utc(c.period_end),
            withdrawn_at: c.withdrawn_at.map(super::utc),
            json: serde_json::from_str::<serde_json::Value>(&c.resource)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(c.resource),
            id: c.id,
        })
        .collect();
    let links = store
        .links_of(member.id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|l| LinkRow { payer: payer_name(&l.payer_id), state: l.state, created_at: super::utc(l.created_at) })
        .collect();
    let transfers = store
        .list_transfer_rows(&baton_store::TransferFilter {
            member_account: Some(member.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|row| TransferLine {
            payer: payer_name(&row.payer_id),
            state: row.transfer.state,
            created_at: super::utc(row.transfer.created_at),
            stored: row.transfer.resources_stored,
            id: row.transfer.id,
        })
        .collect();
    let received = store
        .count_resources(&baton_store::ResourceQuery { member_account: Some(member.id), ..Default::default() })
        .await
        .map_err(unavailable)?;
    let plan = match &member.patient_id {
        Some(_) => store
            .read_resource("Coverage", &format!("coverage-{}", member.id.0))
            .await
            .map_err(unavailable)?
            .and_then(|c| serde_json::from_str::<serde_json::Value>(&c.body).ok())
            .and_then(|c| c.pointer("/class/0/name").and_then(|v| v.as_str()).map(str::to_owned)),
        None => None,
    };
    crate::ssr::audit(
        &staff,
        baton_staff::audit::action::MEMBER_VIEW,
        Some(member.id),
        &format!("member {}", member.id.0),
        "",
    )
    .await?;
    Ok(MemberData {
        admin: staff.roles.has(baton_accounts::Role::Admin),
        account: member.id.0,
        name: member.display_name,
        username: member.username,
        member_id: member.member_id.unwrap_or_default(),
        birth_date: member.birth_date.unwrap_or_default(),
        coverage_start: member.coverage_start.unwrap_or_default(),
        plan,
        has_password: member.password_hash.is_some(),
        invitation_link: invitation.as_ref().and_then(|i| i.link.clone()),
        invitation_expires: invitation.as_ref().filter(|i| i.link.is_some()).map(|i| super::utc(i.expires_at)),
        consents,
        links,
        transfers,
        received,
    })
}

/// A new invitation link for a member (earlier links stop working).
#[server(endpoint = "staff/invite")]
pub async fn issue_invitation(member: String) -> Result<(), AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let account = member_account(&member).await?;
    services
        .enrollment
        .invitations
        .issue(account.id, Some(staff.id), baton_store::Timestamp::now())
        .await
        .map_err(crate::ssr::unavailable)?;
    crate::ssr::audit(
        &staff,
        baton_staff::audit::action::INVITATION_CREATE,
        Some(account.id),
        &format!("member {}", account.id.0),
        "",
    )
    .await?;
    leptos_axum::redirect(&format!("/staff/members/{}", account.id.0));
    Ok(())
}

#[component]
pub fn MemberPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let data = Resource::new(id, load_member);
    view! {
        <Title text=t_string!(i18n, console.member_title).to_string()/>
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, |m: MemberData| view! { <MemberDetails m/> }))}
        </Suspense>
    }
}

#[component]
fn MemberDetails(m: MemberData) -> impl IntoView {
    let i18n = use_i18n();
    let account = m.account;
    let received = m.received;
    view! {
        <StaffNav admin=m.admin/>
        <h1 id="member-name">{m.name.clone()}</h1>
        <dl class="facts">
            <div><dt>{t!(i18n, console.member_id)}</dt><dd id="member-id">{m.member_id.clone()}</dd></div>
            <div><dt>{t!(i18n, console.username)}</dt><dd>{m.username.clone()}</dd></div>
            <div><dt>{t!(i18n, console.birth_date)}</dt><dd>{m.birth_date.clone()}</dd></div>
            <div><dt>{t!(i18n, console.coverage_start)}</dt><dd>{m.coverage_start.clone()}</dd></div>
            <div><dt>{t!(i18n, console.plan)}</dt><dd>{m.plan.clone().unwrap_or_else(|| "–".into())}</dd></div>
        </dl>
        <section aria-labelledby="invitation-title" class="card">
            <h2 id="invitation-title">{t!(i18n, console.invitation_title)}</h2>
            {match (m.has_password, m.invitation_link.clone()) {
                (true, _) => view! { <p>{t!(i18n, console.has_password)}</p> }.into_any(),
                (false, Some(link)) => {
                    let expires = m.invitation_expires.clone().unwrap_or_default();
                    view! {
                        <p>{t!(i18n, console.invitation_link_hint, expires = expires.clone())}</p>
                        <p><input class="copy" id="invitation-link" type="text" readonly value=link
                            aria-labelledby="invitation-title"/></p>
                    }.into_any()
                }
                (false, None) => view! { <p>{t!(i18n, console.no_invitation)}</p> }.into_any(),
            }}
            {(!m.has_password).then(|| view! {
                <form method="post" action=IssueInvitation::url() class="inline-form">
                    <input type="hidden" name="member" value=account.to_string()/>
                    <button type="submit" class="button button--secondary">{t!(i18n, console.new_invitation)}</button>
                </form>
            })}
        </section>
        <section aria-labelledby="received-title">
            <h2 id="received-title">{t!(i18n, console.received_title)}</h2>
            <p>{t!(i18n, console.received_count, count = move || received)}" "
                <A href=format!("/staff/members/{account}/records")>{t!(i18n, console.open_records)}</A></p>
        </section>
        <section aria-labelledby="transfers-title">
            <h2 id="transfers-title">{t!(i18n, console.transfers_title)}</h2>
            {if m.transfers.is_empty() {
                view! { <p>{t!(i18n, console.no_transfers)}</p> }.into_any()
            } else {
                view! { <table class="data" id="member-transfers">
                    <thead><tr>
                        <th scope="col">{t!(i18n, console.started)}</th>
                        <th scope="col">{t!(i18n, console.old_plan)}</th>
                        <th scope="col">{t!(i18n, console.state)}</th>
                        <th scope="col" class="num">{t!(i18n, console.stored)}</th>
                    </tr></thead>
                    <tbody>{m.transfers.into_iter().map(|tr| view! {
                        <tr>
                            <td><A href=format!("/staff/transfers/{}", tr.id)>{tr.created_at}</A></td>
                            <td>{tr.payer}</td>
                            <td>{state_label(&tr.state)}</td>
                            <td class="num">{tr.stored}</td>
                        </tr>
                    }).collect_view()}</tbody>
                </table> }.into_any()
            }}
        </section>
        <section aria-labelledby="links-title">
            <h2 id="links-title">{t!(i18n, console.links_title)}</h2>
            {if m.links.is_empty() {
                view! { <p>{t!(i18n, console.no_links)}</p> }.into_any()
            } else {
                view! { <ul>{m.links.into_iter().map(|l| view! {
                    <li>{l.payer}" — "{l.state}" ("{l.created_at}")"</li>
                }).collect_view()}</ul> }.into_any()
            }}
        </section>
        <section aria-labelledby="consents-title">
            <h2 id="consents-title">{t!(i18n, console.consents_title)}</h2>
            {if m.consents.is_empty() {
                view! { <p>{t!(i18n, console.no_consents)}</p> }.into_any()
            } else {
                m.consents.into_iter().map(|c| {
                    let withdrawn = c.withdrawn_at.clone();
                    view! {
                        <article class="card consent" data-consent=c.id.clone()>
                            <h3>{c.payer.clone()}</h3>
                            <p>
                                {if c.policy == "sensitive" {
                                    t!(i18n, console.policy_sensitive).into_any()
                                } else {
                                    t!(i18n, console.policy_regular).into_any()
                                }}
                                " · "{t!(i18n, console.given_at, at = c.given_at.clone())}
                                " · "{t!(i18n, console.until, at = c.until.clone())}
                            </p>
                            {withdrawn.map(|at| view! { <p class="alert">{t!(i18n, console.withdrawn_at, at = at.clone())}</p> })}
                            <details>
                                <summary>{t!(i18n, console.consent_json)}</summary>
                                <pre class="json" tabindex="0"><code>{c.json}</code></pre>
                            </details>
                        </article>
                    }
                }).collect_view().into_any()
            }}
        </section>
    }
}
