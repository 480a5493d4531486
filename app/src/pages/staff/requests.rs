//! This plan's requests to previous plans (the Payer-to-Payer API, server to server): the
//! latest requests with their counts, the members who opted in but were not asked yet (late past
//! the rule's week), and one request with each member's result — retry and cancel, confirmed and
//! recorded. Plain forms: everything works without JavaScript.

use baton_vocab::views::Day;
use baton_vocab::views::requests::{RequestView, RequestsPage};
use baton_vocab::{MatchResult, RequestState};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::members::encode;
use super::{StaffNav, state_label};
use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

/// The rule's week: members waiting longer are late.
const WEEK_DAYS: i64 = 7;

#[server(endpoint = "staff/requests")]
pub async fn list_requests(payer: String) -> Result<RequestsPage, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    services.console.requests(&staff, &payer).await.map_err(crate::ssr::console_error)
}

#[server(endpoint = "staff/request")]
pub async fn load_request(id: String) -> Result<RequestView, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    services.console.request(&staff, &id).await.map_err(crate::ssr::console_error)
}

/// Staff action: a failed or cancelled request runs again from where it stopped.
#[server(endpoint = "staff/request/retry")]
pub async fn staff_retry_request(id: String) -> Result<(), AppError> {
    request_action(id, false).await
}

/// Staff action, after confirmation: an unfinished request stops.
#[server(endpoint = "staff/request/cancel")]
pub async fn staff_cancel_request(id: String) -> Result<(), AppError> {
    request_action(id, true).await
}

#[cfg(feature = "ssr")]
async fn request_action(id: String, cancel: bool) -> Result<(), AppError> {
    use baton_staff::RequestAction;
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let action = if cancel { RequestAction::Cancel } else { RequestAction::Retry };
    let changed = services.console.request_action(&staff, &id, action).await.map_err(crate::ssr::console_error)?;
    let problem = if changed { "" } else { "?problem=state" };
    leptos_axum::redirect(&format!("/staff/requests/{}{problem}", encode(&id)));
    Ok(())
}

/// A day as staff pages show them.
pub fn iso(day: Day) -> String {
    format!("{:04}-{:02}-{:02}", day.0, day.1, day.2)
}

/// The words for where a request stands.
pub fn request_state_label(state: RequestState) -> AnyView {
    let i18n = use_i18n();
    match state {
        RequestState::Queued => t!(i18n, requests.state_queued).into_any(),
        RequestState::Matching => t!(i18n, requests.state_matching).into_any(),
        RequestState::Exporting => t!(i18n, requests.state_exporting).into_any(),
        RequestState::Downloading => t!(i18n, requests.state_downloading).into_any(),
        RequestState::Delivering => t!(i18n, requests.state_delivering).into_any(),
        RequestState::Completed => t!(i18n, requests.state_completed).into_any(),
        RequestState::Failed => t!(i18n, requests.state_failed).into_any(),
        RequestState::Cancelled => t!(i18n, requests.state_cancelled).into_any(),
    }
}

/// The words for what the previous plan answered for a member (none: not yet).
pub fn result_label(result: Option<MatchResult>) -> AnyView {
    let i18n = use_i18n();
    match result {
        Some(MatchResult::Matched) => t!(i18n, requests.result_matched).into_any(),
        Some(MatchResult::NoMatch) => t!(i18n, requests.result_no_match).into_any(),
        Some(MatchResult::SeveralMatches) => t!(i18n, requests.result_several).into_any(),
        Some(MatchResult::ConsentRefused) => t!(i18n, requests.result_consent).into_any(),
        None => t!(i18n, requests.result_waiting).into_any(),
    }
}

#[component]
pub fn RequestsListPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let payer = move || query.read().get("payer").unwrap_or_default();
    let data = Resource::new(payer, list_requests);
    view! {
        <Title text=t_string!(i18n, requests.title).to_string()/>
        <h1>{t!(i18n, requests.title)}</h1>
        <Loaded data=data render={move |page: RequestsPage| {
            let selected = payer();
            view! {
                <StaffNav admin=page.admin/>
                <p>{t!(i18n, requests.lead)}</p>
                <form method="get" action="/staff/requests" class="form form--inline">
                    <div class="field">
                        <label for="r-payer">{t!(i18n, console.old_plan)}</label>
                        <select id="r-payer" name="payer">
                            <option value="">{t!(i18n, console.any)}</option>
                            {page.payers.into_iter().map(|(id, name)| {
                                let chosen = selected == id;
                                view! { <option value=id selected=chosen>{name}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                    <button type="submit" class="button">{t!(i18n, console.filter)}</button>
                </form>
                <Waiting waiting=page.waiting/>
                <section aria-labelledby="requests-list-title">
                    <h2 id="requests-list-title">{t!(i18n, requests.list_title)}</h2>
                    {if page.requests.is_empty() {
                        view! { <p id="no-requests">{t!(i18n, requests.none)}</p> }.into_any()
                    } else {
                        view! {
                            <div class="table-scroll" tabindex="0" role="region" aria-labelledby="requests-list-title">
                                <table class="data" id="p2p-requests">
                                    <thead><tr>
                                        <th scope="col">{t!(i18n, requests.sent)}</th>
                                        <th scope="col">{t!(i18n, console.old_plan)}</th>
                                        <th scope="col">{t!(i18n, console.state)}</th>
                                        <th scope="col" class="num">{t!(i18n, requests.members)}</th>
                                        <th scope="col" class="num">{t!(i18n, requests.matched)}</th>
                                        <th scope="col" class="num">{t!(i18n, requests.not_matched)}</th>
                                        <th scope="col" class="num">{t!(i18n, requests.constrained)}</th>
                                        <th scope="col" class="num">{t!(i18n, requests.records)}</th>
                                    </tr></thead>
                                    <tbody>{page.requests.into_iter().map(|r| view! {
                                        <tr data-state=r.state.as_str()>
                                            <td><A exact=true href=format!("/staff/requests/{}", r.id)>{iso(r.created_on)}</A></td>
                                            <td>{r.payer_name}</td>
                                            <td>{request_state_label(r.state)}{r.error.map(|e| view! { <br/><span class="muted">{e}</span> })}</td>
                                            <td class="num">{r.members}</td>
                                            <td class="num">{r.matched}</td>
                                            <td class="num">{r.not_matched}</td>
                                            <td class="num">{r.constrained}</td>
                                            <td class="num">{r.records}</td>
                                        </tr>
                                    }).collect_view()}</tbody>
                                </table>
                            </div>
                        }.into_any()
                    }}
                </section>
            }
        }}/>
    }
}

/// Members who opted in and were not asked for yet, the late ones marked.
#[component]
fn Waiting(waiting: Vec<baton_vocab::views::requests::WaitingMember>) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <section aria-labelledby="waiting-title" class="card">
            <h2 id="waiting-title">{t!(i18n, requests.waiting_title)}</h2>
            {if waiting.is_empty() {
                view! { <p id="no-waiting">{t!(i18n, requests.waiting_none)}</p> }.into_any()
            } else {
                view! {
                    <p>{t!(i18n, requests.waiting_lead)}</p>
                    <div class="table-scroll" tabindex="0" role="region" aria-labelledby="waiting-title">
                    <table class="data" id="waiting">
                        <thead><tr>
                            <th scope="col">{t!(i18n, console.member_name)}</th>
                            <th scope="col">{t!(i18n, console.old_plan)}</th>
                            <th scope="col">{t!(i18n, requests.opted_on)}</th>
                            <th scope="col" class="num">{t!(i18n, requests.days_waiting)}</th>
                        </tr></thead>
                        <tbody>{waiting.into_iter().map(|w| {
                            let late = w.days > WEEK_DAYS;
                            view! {
                                <tr data-late=late.to_string()>
                                    <td><A exact=true href=format!("/staff/members/{}", w.account)>{w.name}</A></td>
                                    <td>{w.payer_name}</td>
                                    <td>{w.opted_on.map(iso).unwrap_or_else(|| "–".into())}</td>
                                    <td class="num">{w.days}{late.then(|| view! { " " <strong class="badge badge--warn">{t!(i18n, requests.late)}</strong> })}</td>
                                </tr>
                            }
                        }).collect_view()}</tbody>
                    </table>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

#[component]
pub fn RequestPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let data = Resource::new(id, load_request);
    view! {
        <Title text=t_string!(i18n, requests.request_title).to_string()/>
        <Loaded data=data render={move |r: RequestView| view! { <RequestDetails r/> }}/>
    }
}

#[component]
fn RequestDetails(r: RequestView) -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let confirming = query.read_untracked().get("confirm").is_some_and(|c| c == "cancel");
    let refused = query.read_untracked().get("problem").is_some();
    let can_retry = matches!(r.state, RequestState::Failed | RequestState::Cancelled);
    let can_cancel = !r.state.is_finished();
    let id = r.id.clone();
    view! {
        <StaffNav admin=r.admin/>
        <h1>{t!(i18n, requests.heading, old = r.payer_name.clone())}</h1>
        {refused.then(|| view! { <p class="alert" role="alert">{t!(i18n, console.action_refused)}</p> })}
        <dl class="facts">
            <div><dt>{t!(i18n, console.state)}</dt><dd id="request-state" data-state=r.state.as_str()>{request_state_label(r.state)}</dd></div>
            <div><dt>{t!(i18n, requests.sent)}</dt><dd>{iso(r.created_on)}</dd></div>
            <div><dt>{t!(i18n, requests.members)}</dt><dd id="request-members">{r.members}</dd></div>
            <div><dt>{t!(i18n, requests.matched)}</dt><dd id="request-matched">{r.matched}</dd></div>
            <div><dt>{t!(i18n, requests.not_matched)}</dt><dd>{r.not_matched}</dd></div>
            <div><dt>{t!(i18n, requests.constrained)}</dt><dd>{r.constrained}</dd></div>
            <div><dt>{t!(i18n, requests.lines)}</dt><dd>{r.lines}</dd></div>
            <div><dt>{t!(i18n, requests.rejected)}</dt><dd>{r.rejected}</dd></div>
            <div><dt>{t!(i18n, requests.records)}</dt><dd id="request-records">{r.records}</dd></div>
            {r.since.clone().map(|since| view! { <div><dt>{t!(i18n, requests.since)}</dt><dd>{since}</dd></div> })}
            {r.note.clone().map(|note| view! { <div><dt>{t!(i18n, requests.note)}</dt><dd>{note}</dd></div> })}
        </dl>
        {r.error.clone().map(|e| view! { <p class="alert" id="request-error">{e}</p> })}
        <div class="actions">
            {can_retry.then(|| view! {
                <form method="post" action=StaffRetryRequest::url() class="inline-form">
                    <input type="hidden" name="id" value=id.clone()/>
                    <button type="submit" class="button" id="retry-request">{t!(i18n, console.retry)}</button>
                </form>
            })}
            {(can_cancel && !confirming).then(|| view! {
                <a class="button button--secondary" href=format!("/staff/requests/{}?confirm=cancel", encode(&id))>{t!(i18n, requests.cancel)}</a>
            })}
            {(can_cancel && confirming).then(|| view! {
                <form method="post" action=StaffCancelRequest::url() class="card" role="alertdialog" aria-labelledby="confirm-cancel">
                    <p id="confirm-cancel">{t!(i18n, requests.cancel_confirm)}</p>
                    <input type="hidden" name="id" value=id.clone()/>
                    <button type="submit" class="button" id="confirm-cancel-button">{t!(i18n, console.cancel_yes)}</button>
                    " "<a href=format!("/staff/requests/{}", encode(&id))>{t!(i18n, console.cancel_no)}</a>
                </form>
            })}
        </div>
        {(!r.problems.is_empty()).then(|| view! {
            <section aria-labelledby="problems-title">
                <h2 id="problems-title">{t!(i18n, requests.problems)}</h2>
                <ul id="request-problems">{r.problems.clone().into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}</ul>
            </section>
        })}
        <section aria-labelledby="request-members-title">
            <h2 id="request-members-title">{t!(i18n, requests.members_title)}</h2>
            <div class="table-scroll" tabindex="0" role="region" aria-labelledby="request-members-title">
            <table class="data" id="request-member-rows">
                <thead><tr>
                    <th scope="col">{t!(i18n, console.member_name)}</th>
                    <th scope="col">{t!(i18n, requests.result)}</th>
                    <th scope="col">{t!(i18n, requests.filing)}</th>
                    <th scope="col" class="num">{t!(i18n, requests.records)}</th>
                </tr></thead>
                <tbody>{r.members_list.into_iter().map(|m| view! {
                    <tr data-result=m.result.map_or("waiting", MatchResult::as_str)>
                        <td><A exact=true href=format!("/staff/members/{}", m.account)>{m.name}</A></td>
                        <td>{result_label(m.result)}</td>
                        <td>{match (m.transfer_id, m.transfer_state) {
                            (Some(id), Some(state)) => view! { <A exact=true href=format!("/staff/transfers/{id}")>{state_label(state)}</A> }.into_any(),
                            _ => "–".into_any(),
                        }}</td>
                        <td class="num">{m.records}</td>
                    </tr>
                }).collect_view()}</tbody>
            </table>
            </div>
        </section>
    }
}
