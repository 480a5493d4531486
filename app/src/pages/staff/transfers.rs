//! Transfers for staff: a filtered, sorted, paged list, and one transfer in full — timeline,
//! every request made to the previous plan, errors in plain words, counts per type and per
//! exclusion reason — with retry and cancel (confirmed, recorded).

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use super::members::encode;
use super::{StaffNav, state_label};
use crate::components::outcome::outcome;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedTransfer {
    pub id: String,
    pub member: i64,
    pub member_name: String,
    pub payer: String,
    pub state: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub stored: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferList {
    pub admin: bool,
    pub payers: Vec<(String, String)>,
    pub rows: Vec<ListedTransfer>,
    pub more: bool,
}

#[cfg(feature = "ssr")]
const PAGE: u32 = 50;
const STATES: [&str; 6] = ["queued", "running", "completed", "failed", "cancelled", "needs_reauthorization"];

#[server(endpoint = "staff/transfers")]
pub async fn list_transfers(
    state: String,
    payer: String,
    from: String,
    to: String,
    sort: String,
    page: u32,
) -> Result<TransferList, AppError> {
    use baton_store::{TransferFilter, TransferSort};
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let invalid = |field: &str| crate::ssr::fail(AppError::Invalid { field: field.into() });
    if !state.is_empty() && !STATES.contains(&state.as_str()) {
        return Err(invalid("state"));
    }
    let day = |text: &str, field: &str| match text.trim() {
        "" => Ok(None),
        t => super::day_start(t).map(Some).ok_or_else(|| invalid(field)),
    };
    let created_from = day(&from, "from")?;
    // "to" is inclusive: up to the end of that day.
    let created_before = day(&to, "to")?.map(|t| t.plus(time::Duration::days(1)));
    let sort = match sort.as_str() {
        "" | "newest" => TransferSort::NewestFirst,
        "oldest" => TransferSort::OldestFirst,
        "finished" => TransferSort::RecentlyFinished,
        "received" => TransferSort::MostReceived,
        _ => return Err(invalid("sort")),
    };
    let payer_name = |id: &str| services.journey.payers.known(id).map_or_else(|| id.to_owned(), |p| p.name.clone());
    let rows = services
        .store
        .list_transfer_rows(&TransferFilter {
            states: if state.is_empty() { vec![] } else { vec![state.clone()] },
            payer_id: Some(payer.clone()).filter(|p| !p.is_empty()),
            created_from,
            created_before,
            sort,
            limit: PAGE + 1,
            offset: page.saturating_mul(PAGE),
            ..Default::default()
        })
        .await
        .map_err(crate::ssr::unavailable)?;
    crate::ssr::audit(
        &staff,
        baton_staff::audit::action::TRANSFER_LIST,
        None,
        &format!("state={state} payer={payer} from={from} to={to}"),
        "",
    )
    .await?;
    Ok(TransferList {
        admin: staff.roles.has(baton_accounts::Role::Admin),
        payers: services.journey.payers.all_known().iter().map(|p| (p.id.clone(), p.name.clone())).collect(),
        more: rows.len() > PAGE as usize,
        rows: rows
            .into_iter()
            .take(PAGE as usize)
            .map(|row| ListedTransfer {
                payer: payer_name(&row.payer_id),
                member: row.transfer.member_account.0,
                member_name: row.member_name,
                state: row.transfer.state,
                created_at: super::utc(row.transfer.created_at),
                finished_at: row.transfer.finished_at.map(super::utc),
                stored: row.transfer.resources_stored,
                id: row.transfer.id,
            })
            .collect(),
    })
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
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, move |list: TransferList| {
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
                                {STATES.into_iter().map(|s| view! {
                                    <option value=s selected=selected_state == s>{state_label(s)}</option>
                                }).collect_view()}
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
                                <option value="newest" selected=selected_sort.is_empty() || selected_sort == "newest">{t!(i18n, console.sort_newest)}</option>
                                <option value="oldest" selected=selected_sort == "oldest">{t!(i18n, console.sort_oldest)}</option>
                                <option value="finished" selected=selected_sort == "finished">{t!(i18n, console.sort_finished)}</option>
                                <option value="received" selected=selected_sort == "received">{t!(i18n, console.sort_received)}</option>
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
                                    <tr data-state=r.state.clone()>
                                        <td><A href=format!("/staff/transfers/{}", r.id)>{r.created_at}</A></td>
                                        <td><A href=format!("/staff/members/{}", r.member)>{r.member_name}</A></td>
                                        <td>{r.payer}</td>
                                        <td>{state_label(&r.state)}</td>
                                        <td>{r.finished_at.unwrap_or_default()}</td>
                                        <td class="num">{r.stored}</td>
                                    </tr>
                                }).collect_view()}</tbody>
                            </table>
                        }.into_any()
                    }}
                    {list.more.then(|| view! { <p><a href=next>{t!(i18n, console.next_page)}</a></p> })}
                }
            }))}
        </Suspense>
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRow {
    pub at: String,
    pub method: String,
    pub url: String,
    pub status: Option<i32>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeRow {
    pub resource_type: String,
    pub received: u64,
    pub stored: u64,
    pub excluded: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffTransferView {
    pub admin: bool,
    pub id: String,
    pub member: i64,
    pub member_name: String,
    pub payer: String,
    pub state: String,
    pub kind: String,
    pub attempts: i32,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub include_sensitive: bool,
    pub events: Vec<(String, String, String)>,
    pub requests: Vec<RequestRow>,
    pub types: Vec<TypeRow>,
    pub excluded: Vec<(String, u64)>,
    pub rejections: Vec<(String, String, String)>,
    pub not_permitted: Vec<String>,
}

#[server(endpoint = "staff/transfer")]
pub async fn load_staff_transfer(id: String) -> Result<StaffTransferView, AppError> {
    use crate::ssr::unavailable;
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let store = &services.store;
    let transfer =
        store.transfer(&id).await.map_err(unavailable)?.ok_or_else(|| crate::ssr::fail(AppError::NotFound))?;
    let link = store.link(&transfer.link_id).await.map_err(unavailable)?.ok_or(AppError::Unavailable)?;
    let member = store.account_by_id(transfer.member_account).await.map_err(unavailable)?;
    let progress = baton_transfer::Progress::from_json(&transfer.progress);
    let events = store
        .transfer_events(&id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|e| (super::utc(e.at), e.kind, e.detail))
        .collect();
    let requests = store
        .transfer_requests(&id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|r| RequestRow {
            at: super::utc(r.at),
            method: r.method,
            url: r.url,
            status: r.status,
            duration_ms: r.duration_ms,
            error: r.error,
        })
        .collect();
    let rejections = store
        .transfer_rejections(&id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|r| (super::utc(r.at), r.source, r.reason))
        .collect();
    crate::ssr::audit(
        &staff,
        baton_staff::audit::action::TRANSFER_VIEW,
        Some(transfer.member_account),
        &format!("transfer {id}"),
        "",
    )
    .await?;
    Ok(StaffTransferView {
        admin: staff.roles.has(baton_accounts::Role::Admin),
        member: transfer.member_account.0,
        member_name: member.map(|m| m.display_name).unwrap_or_default(),
        payer: services.journey.payers.known(&link.payer_id).map_or_else(|| link.payer_id.clone(), |p| p.name.clone()),
        state: transfer.state,
        kind: transfer.kind,
        attempts: transfer.attempts,
        created_at: super::utc(transfer.created_at),
        started_at: transfer.started_at.map(super::utc),
        finished_at: transfer.finished_at.map(super::utc),
        error: transfer.error,
        include_sensitive: link.include_sensitive,
        events,
        requests,
        types: progress
            .types
            .iter()
            .map(|(t, c)| TypeRow {
                resource_type: t.clone(),
                received: c.received,
                stored: c.stored,
                excluded: c.excluded,
                rejected: c.rejected,
            })
            .collect(),
        excluded: progress.excluded.clone().into_iter().collect(),
        rejections,
        not_permitted: progress.not_permitted.clone(),
        id,
    })
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
    use baton_staff::audit::action;
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let store = &services.store;
    let transfer = store
        .transfer(&id)
        .await
        .map_err(crate::ssr::unavailable)?
        .ok_or_else(|| crate::ssr::fail(AppError::NotFound))?;
    let by = format!("staff {}", staff.username.as_str());
    let now = baton_store::Timestamp::now();
    let changed =
        if cancel { store.cancel_transfer(&id, &by, now).await } else { store.retry_transfer(&id, &by, now).await }
            .map_err(crate::ssr::unavailable)?;
    let what = if cancel { action::TRANSFER_CANCEL } else { action::TRANSFER_RETRY };
    let detail = if changed { "done" } else { "refused: not in a state that allows it" };
    crate::ssr::audit(&staff, what, Some(transfer.member_account), &format!("transfer {id}"), detail).await?;
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
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, |v: StaffTransferView| view! { <TransferDetails v/> }))}
        </Suspense>
    }
}

#[component]
fn TransferDetails(v: StaffTransferView) -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let confirming = query.read_untracked().get("confirm").is_some_and(|c| c == "cancel");
    let refused = query.read_untracked().get("problem").is_some();
    let can_retry = matches!(v.state.as_str(), "failed" | "cancelled" | "needs_reauthorization");
    let can_cancel = matches!(v.state.as_str(), "queued" | "running");
    let id = v.id.clone();
    view! {
        <StaffNav admin=v.admin/>
        <h1>{t!(i18n, console.transfer_heading, name = v.member_name.clone(), old = v.payer.clone())}</h1>
        {refused.then(|| view! { <p class="alert" role="alert">{t!(i18n, console.action_refused)}</p> })}
        <dl class="facts">
            <div><dt>{t!(i18n, console.state)}</dt><dd id="transfer-state" data-state=v.state.clone()>{state_label(&v.state)}</dd></div>
            <div><dt>{t!(i18n, console.member_name)}</dt><dd><A href=format!("/staff/members/{}", v.member)>{v.member_name.clone()}</A></dd></div>
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
            <ol class="timeline" id="timeline">{v.events.into_iter().map(|(at, kind, detail)| view! {
                <li><time>{at}</time>" — "<strong>{kind}</strong>{(!detail.is_empty()).then(|| format!(": {detail}"))}</li>
            }).collect_view()}</ol>
        </section>
        {(!v.rejections.is_empty()).then(|| view! {
            <section aria-labelledby="rejections-title">
                <h2 id="rejections-title">{t!(i18n, console.rejections_title)}</h2>
                <ul>{v.rejections.into_iter().map(|(at, source, reason)| view! { <li>{at}" — "{source}": "{reason}</li> }).collect_view()}</ul>
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
