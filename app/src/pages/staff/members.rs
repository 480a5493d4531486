//! Finding a member, and everything about one: coverage, consents (with their HRex Consent
//! JSON), previous-plan links, transfers, what was received, and their invitation link.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use baton_vocab::{ConsentPolicy, LinkState};

use super::{StaffNav, state_label};
use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

pub use baton_vocab::views::staff::{MemberDetail as MemberData, MemberSearch};

#[server(endpoint = "staff/members")]
pub async fn search_members(q: String, birth: String, page: u32) -> Result<MemberSearch, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    services.console.search_members(&staff, &q, &birth, page).await.map_err(crate::ssr::console_error)
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
        <Loaded data=data render={move |found: MemberSearch| {
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
                                            <td><A exact=true href=format!("/staff/members/{}", m.account)>{m.name}</A></td>
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
            }}/>
    }
}

pub(crate) use crate::url::encode;

#[server(endpoint = "staff/member")]
pub async fn load_member(id: String) -> Result<MemberData, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    services.console.member_detail(&staff, &id).await.map_err(crate::ssr::console_error)
}

/// A new invitation link for a member (earlier links stop working).
#[server(endpoint = "staff/invite")]
pub async fn issue_invitation(member: String) -> Result<(), AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let account = services.console.issue_invitation(&staff, &member).await.map_err(crate::ssr::console_error)?;
    leptos_axum::redirect(&format!("/staff/members/{account}"));
    Ok(())
}

/// Admins only: take a member's password away, for a reason (kept in the audit log), and make
/// a new invitation link for them.
#[server(endpoint = "staff/member/reset")]
pub async fn reset_access(member: String, reason: String) -> Result<(), AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    match services.console.reset_access(&admin, &member, &reason).await {
        Ok((account, told)) => leptos_axum::redirect(&format!("/staff/members/{account}?reset={}", told.as_str())),
        Err(baton_staff::ConsoleError::Invalid("reason")) => {
            leptos_axum::redirect(&format!("/staff/members/{}?problem=reason", encode(&member)));
        }
        Err(error) => return Err(crate::ssr::console_error(error)),
    }
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
        <Loaded data=data render={move |m: MemberData| view! { <MemberDetails m/> }}/>
    }
}

#[component]
fn MemberDetails(m: MemberData) -> AnyView {
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
            {(m.has_password && m.admin).then(|| view! { <ResetAccessForm account/> })}
            <ResetOutcome/>
        </section>
        <super::previous::StaffPreviousPlans account plans=m.previous.clone() payers=m.payers.clone()/>
        <section aria-labelledby="received-title">
            <h2 id="received-title">{t!(i18n, console.received_title)}</h2>
            <p id="member-received" data-count=received.to_string()>{t!(i18n, console.received_count, count = move || received)}" "
                <A exact=true href=format!("/staff/members/{account}/records")>{t!(i18n, console.open_records)}</A></p>
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
                            <td><A exact=true href=format!("/staff/transfers/{}", tr.id)>{tr.created_at}</A></td>
                            <td>{tr.payer}</td>
                            <td>{state_label(tr.state)}</td>
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
                    <li>{l.payer}" — "{link_state_label(l.state)}" ("{l.created_at}")"</li>
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
                                {match c.policy {
                                    ConsentPolicy::Sensitive => t!(i18n, console.policy_sensitive).into_any(),
                                    ConsentPolicy::Regular => t!(i18n, console.policy_regular).into_any(),
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
    .into_any()
}

/// The words for a link's state.
fn link_state_label(state: LinkState) -> AnyView {
    let i18n = use_i18n();
    match state {
        LinkState::Pending => t!(i18n, console.link_pending).into_any(),
        LinkState::Active => t!(i18n, console.link_active).into_any(),
        LinkState::NeedsReauthorization => t!(i18n, console.link_needs_reauthorization).into_any(),
        LinkState::Revoked => t!(i18n, console.link_revoked).into_any(),
    }
}

/// The admin's reset form, with the reason it asks for.
#[component]
fn ResetAccessForm(account: i64) -> impl IntoView {
    let i18n = use_i18n();
    let query = leptos_router::hooks::use_query_map();
    let missing = move || query.read().get("problem").as_deref() == Some("reason");
    view! {
        <form method="post" action=ResetAccess::url() class="form" id="reset-access">
            <input type="hidden" name="member" value=account.to_string()/>
            <div class="field">
                <label for="reset-reason">{t!(i18n, console.reset_reason)}</label>
                <textarea id="reset-reason" name="reason" rows="2" required maxlength="500"
                    aria-describedby="reset-hint" aria-invalid=move || missing().then_some("true")></textarea>
                <p class="field__hint" id="reset-hint">{t!(i18n, console.reset_hint)}</p>
                {move || missing().then(|| view! { <p class="field__error" role="alert">{t!(i18n, console.reset_reason_required)}</p> })}
            </div>
            <button type="submit" class="button button--secondary">{t!(i18n, console.reset_access)}</button>
        </form>
    }
}

/// What a reset just did about telling the member (`?reset=`).
#[component]
fn ResetOutcome() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    move || {
        query.read().get("reset").map(|told| {
            let words = match told.as_str() {
                "emailed" => t!(i18n, console.reset_emailed).into_any(),
                "no_address" => t!(i18n, console.reset_no_address).into_any(),
                _ => t!(i18n, console.reset_not_sent).into_any(),
            };
            view! { <p class="alert" role="status" id="reset-outcome">{words}</p> }
        })
    }
}
