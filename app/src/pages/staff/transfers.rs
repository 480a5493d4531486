//! Transfers for staff: a filtered, sorted, paged list, and one transfer in full — timeline,
//! every request made to the previous plan, errors in plain words, counts per type and per
//! exclusion reason — with retry and cancel (confirmed, recorded).

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::members::encode;
use baton_vocab::{EventKind, TransferSort, TransferState};

use super::{StaffNav, state_label};
use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

pub use baton_vocab::views::staff::{StaffTransfer as StaffTransferView, TransferList};

#[server(endpoint = "staff/transfers")]
pub async fn list_transfers(
    state: String,
    payer: String,
    from: String,
    to: String,
    sort: String,
    page: u32,
) -> Result<TransferList, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let query = baton_staff::TransferQuery { state, payer, from, to, sort, page };
    services.console.transfers(&staff, &query).await.map_err(crate::ssr::console_error)
}

#[component]
pub fn TransfersPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let get = move |key: &'static str| move || query.read().get(key).unwrap_or_default();
    let (state, payer, from, to, sort) = (get("state"), get("payer"), get("from"), get("to"), get("sort"));
    let page = move || query.read().get("page").and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
    let data = Resource::new(
        move || (state(), payer(), from(), to(), sort(), page()),
        |(state, payer, from, to, sort, page)| list_transfers(state, payer, from, to, sort, page),
    );
    view! {
        <Title text=t_string!(i18n, console.transfers_title).to_string()/>
        <h1>{t!(i18n, console.transfers_title)}</h1>
        <Loaded data=data render={move |list: TransferList| {
                let next = format!(
                    "/staff/transfers?state={}&payer={}&from={}&to={}&sort={}&page={}",
                    encode(&state()), encode(&payer()), encode(&from()), encode(&to()), encode(&sort()), page() + 1
                );
                let selected_state = state();
                let selected_payer = payer();
                let selected_sort = sort();
                view! {
                    <StaffNav admin=list.admin/>
                    <form method="get" action="/staff/transfers" class="form form--inline" id="transfer-filters">
                        <div class="field">
                            <label for="f-state">{t!(i18n, console.state)}</label>
                            <select id="f-state" name="state">
                                <option value="">{t!(i18n, console.any)}</option>
                                {TransferState::ALL.into_iter().map(|s| view! {
                                    <option value=s.as_str() selected=selected_state == s.as_str()>{state_label(s)}</option>
                                }).collect_view()}
                                <option value="withdrawn" selected=selected_state == "withdrawn">{t!(i18n, console.permission_withdrawn)}</option>
                            </select>
                        </div>
                        <div class="field">
                            <label for="f-payer">{t!(i18n, console.old_plan)}</label>
                            <select id="f-payer" name="payer">
                                <option value="">{t!(i18n, console.any)}</option>
                                {list.payers.into_iter().map(|(id, name)| {
                                    let selected = selected_payer == id;
                                    view! { <option value=id selected=selected>{name}</option> }
                                }).collect_view()}
                            </select>
                        </div>
                        <div class="field">
                            <label for="f-from">{t!(i18n, console.from)}</label>
                            <input id="f-from" name="from" type="date" value=from()/>
                        </div>
                        <div class="field">
                            <label for="f-to">{t!(i18n, console.to)}</label>
                            <input id="f-to" name="to" type="date" value=to()/>
                        </div>
                        <div class="field">
                            <label for="f-sort">{t!(i18n, console.sort)}</label>
                            <select id="f-sort" name="sort">
                                {TransferSort::ALL.into_iter().map(|sort| {
                                    let selected = selected_sort == sort.as_str()
                                        || (selected_sort.is_empty() && sort == TransferSort::default());
                                    view! { <option value=sort.as_str() selected=selected>{sort_label(sort)}</option> }
                                }).collect_view()}
                            </select>
                        </div>
                        <button type="submit" class="button">{t!(i18n, console.filter)}</button>
                    </form>
                    {if list.rows.is_empty() {
                        view! { <p id="no-transfers">{t!(i18n, console.no_transfers)}</p> }.into_any()
                    } else {
                        view! {
                            <table class="data" id="transfers">
                                <thead><tr>
                                    <th scope="col">{t!(i18n, console.started)}</th>
                                    <th scope="col">{t!(i18n, console.member_name)}</th>
                                    <th scope="col">{t!(i18n, console.old_plan)}</th>
                                    <th scope="col">{t!(i18n, console.state)}</th>
                                    <th scope="col">{t!(i18n, console.finished)}</th>
                                    <th scope="col" class="num">{t!(i18n, console.stored)}</th>
                                </tr></thead>
                                <tbody>{list.rows.into_iter().map(|r| view! {
                                    <tr data-state=r.state.as_str()>
                                        <td><A exact=true href=format!("/staff/transfers/{}", r.id)>{r.created_at}</A></td>
                                        <td><A exact=true href=format!("/staff/members/{}", r.member)>{r.member_name}</A></td>
                                        <td>{r.payer}</td>
                                        <td>{state_label(r.state)}{r.withdrawn.then(|| view! {
                                            <br/><span class="muted" data-withdrawn="true">{t!(i18n, console.permission_withdrawn)}</span>
                                        })}</td>
                                        <td>{r.finished_at.unwrap_or_default()}</td>
                                        <td class="num">{r.stored}</td>
                                    </tr>
                                }).collect_view()}</tbody>
                            </table>
                        }.into_any()
                    }}
                    {list.more.then(|| view! { <p><a href=next>{t!(i18n, console.next_page)}</a></p> })}
                }
            }}/>
    }
}

#[server(endpoint = "staff/transfer")]
pub async fn load_staff_transfer(id: String) -> Result<StaffTransferView, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    services.console.transfer(&staff, &id).await.map_err(crate::ssr::console_error)
}

/// Staff action: a failed, cancelled or stuck-on-reauthorization transfer runs again.
#[server(endpoint = "staff/transfer/retry")]
pub async fn staff_retry_transfer(id: String) -> Result<(), AppError> {
    transfer_action(id, false).await
}

/// Staff action, after confirmation: a queued or running transfer is cancelled.
#[server(endpoint = "staff/transfer/cancel")]
pub async fn staff_cancel_transfer(id: String) -> Result<(), AppError> {
    transfer_action(id, true).await
}

#[cfg(feature = "ssr")]
async fn transfer_action(id: String, cancel: bool) -> Result<(), AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let changed = services.console.transfer_action(&staff, &id, cancel).await.map_err(crate::ssr::console_error)?;
    let problem = if changed { "" } else { "?problem=state" };
    leptos_axum::redirect(&format!("/staff/transfers/{}{problem}", encode(&id)));
    Ok(())
}

#[component]
pub fn StaffTransferPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let data = Resource::new(id, load_staff_transfer);
    view! {
        <Title text=t_string!(i18n, console.transfer_title).to_string()/>
        <Loaded data=data render={move |v: StaffTransferView| view! { <TransferDetails v/> }}/>
    }
}

#[component]
fn TransferDetails(v: StaffTransferView) -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let confirming = query.read_untracked().get("confirm").is_some_and(|c| c == "cancel");
    let refused = query.read_untracked().get("problem").is_some();
    let can_retry = TransferState::RETRYABLE.contains(&v.state);
    let can_cancel = TransferState::UNFINISHED.contains(&v.state);
    let id = v.id.clone();
    view! {
        <StaffNav admin=v.admin/>
        <h1>{t!(i18n, console.transfer_heading, name = v.member_name.clone(), old = v.payer.clone())}</h1>
        {refused.then(|| view! { <p class="alert" role="alert">{t!(i18n, console.action_refused)}</p> })}
        <dl class="facts">
            <div><dt>{t!(i18n, console.state)}</dt><dd id="transfer-state" data-state=v.state.as_str()>{state_label(v.state)}</dd></div>
            <div><dt>{t!(i18n, console.member_name)}</dt><dd><A exact=true href=format!("/staff/members/{}", v.member)>{v.member_name.clone()}</A></dd></div>
            <div><dt>{t!(i18n, console.started)}</dt><dd>{v.created_at.clone()}</dd></div>
            <div><dt>{t!(i18n, console.finished)}</dt><dd>{v.finished_at.clone().unwrap_or_else(|| "–".into())}</dd></div>
            <div><dt>{t!(i18n, console.attempts)}</dt><dd>{v.attempts}</dd></div>
            <div><dt>{t!(i18n, console.sensitive_choice)}</dt><dd>{if v.include_sensitive {
                t!(i18n, console.policy_sensitive).into_any()
            } else {
                t!(i18n, console.policy_regular).into_any()
            }}</dd></div>
        </dl>
        {v.error.clone().map(|e| view! { <p class="alert" id="transfer-error">{e}</p> })}
        <div class="actions">
            {can_retry.then(|| view! {
                <form method="post" action=StaffRetryTransfer::url() class="inline-form">
                    <input type="hidden" name="id" value=id.clone()/>
                    <button type="submit" class="button" id="retry-transfer">{t!(i18n, console.retry)}</button>
                </form>
            })}
            {(can_cancel && !confirming).then(|| view! {
                <a class="button button--secondary" href=format!("/staff/transfers/{}?confirm=cancel", encode(&id))>{t!(i18n, console.cancel)}</a>
            })}
            {(can_cancel && confirming).then(|| view! {
                <form method="post" action=StaffCancelTransfer::url() class="card" role="alertdialog" aria-labelledby="confirm-cancel">
                    <p id="confirm-cancel">{t!(i18n, console.cancel_confirm)}</p>
                    <input type="hidden" name="id" value=id.clone()/>
                    <button type="submit" class="button" id="confirm-cancel-button">{t!(i18n, console.cancel_yes)}</button>
                    " "<a href=format!("/staff/transfers/{}", encode(&id))>{t!(i18n, console.cancel_no)}</a>
                </form>
            })}
        </div>
        <section aria-labelledby="types-title">
            <h2 id="types-title">{t!(i18n, console.types_title)}</h2>
            <table class="data" id="transfer-types">
                <thead><tr>
                    <th scope="col">{t!(i18n, console.resource_type)}</th>
                    <th scope="col" class="num">{t!(i18n, console.received)}</th>
                    <th scope="col" class="num">{t!(i18n, console.stored)}</th>
                    <th scope="col" class="num">{t!(i18n, console.excluded)}</th>
                    <th scope="col" class="num">{t!(i18n, console.rejected)}</th>
                </tr></thead>
                <tbody>{v.types.into_iter().map(|t| view! {
                    <tr><th scope="row">{t.resource_type}</th><td class="num">{t.received}</td><td class="num">{t.stored}</td>
                        <td class="num">{t.excluded}</td><td class="num">{t.rejected}</td></tr>
                }).collect_view()}</tbody>
            </table>
            {(!v.excluded.is_empty()).then(|| view! {
                <h3>{t!(i18n, console.excluded_reasons)}</h3>
                <ul id="excluded-reasons">{v.excluded.into_iter().map(|(reason, n)| view! { <li>{reason}": "{n}</li> }).collect_view()}</ul>
            })}
            {(!v.not_permitted.is_empty()).then(|| view! {
                <p>{t!(i18n, console.not_permitted, types = v.not_permitted.join(", "))}</p>
            })}
        </section>
        <section aria-labelledby="timeline-title">
            <h2 id="timeline-title">{t!(i18n, console.timeline_title)}</h2>
            <ol class="timeline" id="timeline">{v.events.into_iter().map(|e| view! {
                <li data-kind=e.kind.as_str()><time>{e.at}</time>" — "<strong>{event_label(e.kind)}</strong>
                    {(!e.detail.is_empty()).then(|| format!(": {}", e.detail))}</li>
            }).collect_view()}</ol>
        </section>
        {(!v.rejections.is_empty()).then(|| view! {
            <section aria-labelledby="rejections-title">
                <h2 id="rejections-title">{t!(i18n, console.rejections_title)}</h2>
                <ul>{v.rejections.into_iter().map(|r| view! { <li>{r.at}" — "{r.source}": "{r.reason}</li> }).collect_view()}</ul>
            </section>
        })}
        <section aria-labelledby="requests-title">
            <h2 id="requests-title">{t!(i18n, console.requests_title)}</h2>
            <div class="table-scroll" tabindex="0" role="region" aria-labelledby="requests-title">
                <table class="data" id="requests">
                    <thead><tr>
                        <th scope="col">{t!(i18n, console.at)}</th>
                        <th scope="col">{t!(i18n, console.request)}</th>
                        <th scope="col" class="num">{t!(i18n, console.status)}</th>
                        <th scope="col" class="num">{t!(i18n, console.duration)}</th>
                    </tr></thead>
                    <tbody>{v.requests.into_iter().map(|r| view! {
                        <tr>
                            <td>{r.at}</td>
                            <td class="url">{r.method}" "{r.url}{r.error.map(|e| format!(" ({e})"))}</td>
                            <td class="num">{r.status.map(|s| s.to_string()).unwrap_or_else(|| "–".into())}</td>
                            <td class="num">{format!("{} ms", r.duration_ms)}</td>
                        </tr>
                    }).collect_view()}</tbody>
                </table>
            </div>
        </section>
    }
}

/// The words for a list order.
fn sort_label(sort: TransferSort) -> AnyView {
    let i18n = use_i18n();
    match sort {
        TransferSort::NewestFirst => t!(i18n, console.sort_newest).into_any(),
        TransferSort::OldestFirst => t!(i18n, console.sort_oldest).into_any(),
        TransferSort::RecentlyFinished => t!(i18n, console.sort_finished).into_any(),
        TransferSort::MostReceived => t!(i18n, console.sort_received).into_any(),
    }
}

/// The words for what a transfer's timeline records.
fn event_label(kind: EventKind) -> AnyView {
    let i18n = use_i18n();
    match kind {
        EventKind::Queued => t!(i18n, console.event_queued).into_any(),
        EventKind::Claimed => t!(i18n, console.event_claimed).into_any(),
        EventKind::Planned => t!(i18n, console.event_planned).into_any(),
        EventKind::Fetched => t!(i18n, console.event_fetched).into_any(),
        EventKind::Resolved => t!(i18n, console.event_resolved).into_any(),
        EventKind::Finished => t!(i18n, console.event_finished).into_any(),
        EventKind::Warning => t!(i18n, console.event_warning).into_any(),
        EventKind::NotPermitted => t!(i18n, console.event_not_permitted).into_any(),
        EventKind::NotSupported => t!(i18n, console.event_not_supported).into_any(),
        EventKind::Paused => t!(i18n, console.event_paused).into_any(),
        EventKind::Retry => t!(i18n, console.event_retry).into_any(),
        EventKind::Deleted => t!(i18n, console.event_deleted).into_any(),
        EventKind::Completed => t!(i18n, console.state_completed).into_any(),
        EventKind::Failed => t!(i18n, console.state_failed).into_any(),
        EventKind::Cancelled => t!(i18n, console.state_cancelled).into_any(),
        EventKind::NeedsReauthorization => t!(i18n, console.state_needs_reauthorization).into_any(),
        EventKind::AccessEnded => t!(i18n, console.event_access_ended).into_any(),
    }
}
