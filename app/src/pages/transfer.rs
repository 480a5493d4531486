//! A transfer as the member sees it: a progress bar and counts per kind of record that update
//! while it runs (streamed as Server-Sent Events when JavaScript runs; the page refreshes itself
//! when it does not), then what arrived, with dates, and what did not and why. From here the member
//! can withdraw the permission (and ask for what arrived to be deleted).

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::components::outcome::outcome;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};
use crate::pages::member::icu_date;

/// Kinds of record always listed (in this order), so counts never move the page around: every
/// kind a pull stores, and last the supporting details (care providers, where records came from).
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
pub const MEMBER_CATEGORIES: [&str; 13] = [
    "claims",
    "prior_authorizations",
    "conditions",
    "medications",
    "visits",
    "labs",
    "immunizations",
    "documents",
    "procedures",
    "allergies",
    "care_plans",
    "coverage",
    "supporting",
];

/// A day as (year, month, day).
pub type Day = (i32, u8, u8);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCount {
    pub key: String,
    pub count: u64,
    pub first: Option<Day>,
    pub last: Option<Day>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    pub id: String,
    pub payer_id: String,
    pub payer_name: String,
    /// queued, running, completed, failed, cancelled, needs_reauthorization.
    pub state: String,
    pub active: bool,
    pub received: u64,
    pub stored: u64,
    pub expected: Option<u64>,
    pub categories: Vec<CategoryCount>,
    pub excluded_total: u64,
    /// Excluded at the member's request, per kind of care (behavioral_health, substance_use…).
    pub excluded: Vec<(String, u64)>,
    pub not_permitted: Vec<String>,
    pub rejected: u64,
    pub consent_id: Option<String>,
    pub consent_withdrawn: bool,
    /// The last day the permission lasts.
    pub consent_until: Option<Day>,
    pub include_sensitive: bool,
}

#[server(endpoint = "member/transfer")]
pub async fn load_transfer(id: String) -> Result<TransferView, AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    member_transfer(&services, account.id.0, &id).await?.ok_or_else(|| crate::ssr::fail(AppError::NotFound))
}

/// The member's transfer as their page shows it; `None` when it is not theirs (another
/// member's transfer does not exist, as far as this member can tell). Also what the live
/// progress stream (`/member/transfers/{id}/live`) sends.
#[cfg(feature = "ssr")]
pub async fn member_transfer(
    services: &crate::ssr::Services,
    member: i64,
    id: &str,
) -> Result<Option<TransferView>, AppError> {
    let store = &services.store;
    let transfer = store.transfer(id).await.map_err(crate::ssr::unavailable)?;
    let Some(transfer) = transfer.filter(|t| t.member_account.0 == member) else {
        return Ok(None);
    };
    let link = store.link(&transfer.link_id).await.map_err(crate::ssr::unavailable)?.ok_or(AppError::Unavailable)?;
    let consent = match &link.consent_id {
        Some(id) => store.consent(id).await.map_err(crate::ssr::unavailable)?,
        None => None,
    };
    let payer_name =
        services.journey.payers.known(&link.payer_id).map_or_else(|| link.payer_id.clone(), |p| p.name.clone());
    let progress = baton_transfer::Progress::from_json(&transfer.progress);
    Ok(Some(view_of(transfer, link, consent, payer_name, &progress)))
}

#[cfg(feature = "ssr")]
fn view_of(
    transfer: baton_store::Transfer,
    link: baton_store::PayerLink,
    consent: Option<baton_store::MemberConsent>,
    payer_name: String,
    progress: &baton_transfer::Progress,
) -> TransferView {
    let day = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .ok()
            .map(|t| (t.year(), u8::from(t.month()), t.day()))
    };
    let count = |key: &str| {
        let dates = progress.category_dates.get(key);
        CategoryCount {
            key: key.to_owned(),
            count: progress.categories.get(key).copied().unwrap_or(0),
            first: dates.and_then(|(first, _)| day(*first)),
            last: dates.and_then(|(_, last)| day(*last)),
        }
    };
    let mut categories: Vec<CategoryCount> = MEMBER_CATEGORIES.iter().map(|key| count(key)).collect();
    for (key, n) in &progress.categories {
        if *n > 0 && !MEMBER_CATEGORIES.contains(&key.as_str()) {
            categories.push(count(key));
        }
    }
    // "label:substance_use" and "classifier:substance_use" are one kind of care to the member.
    let mut excluded = std::collections::BTreeMap::<String, u64>::new();
    for (reason, n) in &progress.excluded {
        let kind = reason.rsplit(':').next().unwrap_or(reason);
        *excluded.entry(kind.to_owned()).or_default() += n;
    }
    TransferView {
        active: baton_journey::Journey::is_active(&transfer.state),
        id: transfer.id,
        payer_id: link.payer_id,
        payer_name,
        state: transfer.state,
        received: progress.received(),
        stored: progress.stored(),
        expected: progress.expected,
        categories,
        excluded_total: progress.excluded_total(),
        excluded: excluded.into_iter().collect(),
        not_permitted: progress.not_permitted.clone(),
        rejected: progress.rejected,
        consent_withdrawn: consent.as_ref().is_some_and(|c| c.withdrawn_at.is_some()),
        consent_until: consent.as_ref().and_then(|c| day(c.period_end)),
        consent_id: consent.map(|c| c.id),
        include_sensitive: link.include_sensitive,
    }
}

/// The member withdraws their permission; with `delete` ticked, what arrived is deleted too.
#[server(endpoint = "member/withdraw")]
pub async fn withdraw_consent(consent: String, transfer: String, delete: Option<String>) -> Result<(), AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    let delete = delete.is_some_and(|d| d == "yes");
    match services.journey.withdraw(account.id, &consent, delete, baton_store::Timestamp::now()).await {
        Ok(_) => {
            let transfer = percent_encoding::utf8_percent_encode(&transfer, percent_encoding::NON_ALPHANUMERIC);
            leptos_axum::redirect(&format!("/member/transfers/{transfer}"));
            Ok(())
        }
        Err(baton_journey::JourneyError::UnknownConsent) => Err(crate::ssr::fail(AppError::NotFound)),
        Err(error) => Err(crate::ssr::unavailable(error)),
    }
}

/// The member asks for a failed transfer to be tried again.
#[server(endpoint = "member/retry")]
pub async fn retry_transfer(transfer: String) -> Result<(), AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    let store = &services.store;
    let owned = store.transfer(&transfer).await.map_err(crate::ssr::unavailable)?;
    if owned.is_none_or(|t| t.member_account.0 != account.id.0) {
        return Err(crate::ssr::fail(AppError::NotFound));
    }
    store
        .retry_transfer(&transfer, "the member", baton_store::Timestamp::now())
        .await
        .map_err(crate::ssr::unavailable)?;
    let path = percent_encoding::utf8_percent_encode(&transfer, percent_encoding::NON_ALPHANUMERIC);
    leptos_axum::redirect(&format!("/member/transfers/{path}"));
    Ok(())
}

#[component]
pub fn TransferPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let data = Resource::new(id, load_transfer);
    // While the transfer runs, each change the server streams replaces what was loaded.
    let live = RwSignal::new(None::<TransferView>);
    Effect::new(move |_| {
        let id = id();
        let running = data.get_untracked().and_then(Result::ok).is_none_or(|v| v.active);
        if running {
            follow(&id, live);
        }
    });
    view! {
        <Title text=t_string!(i18n, transfer.title).to_string()/>
        <Transition fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || {
                // A view streamed for another transfer (before a navigation) is not shown.
                let current = live.get().filter(|v| v.id == id()).map(Ok).or_else(|| data.get());
                current.map(|result| outcome(result, |view: TransferView| view! { <TransferDetails view/> }))
            }}
        </Transition>
    }
}

#[component]
fn TransferDetails(view: TransferView) -> impl IntoView {
    let i18n = use_i18n();
    let old = view.payer_name.clone();
    let percent = match (view.active, view.expected) {
        (false, _) => Some(100),
        (true, Some(expected)) if expected > 0 => Some((view.received * 100 / expected).min(99)),
        _ => None,
    };
    let stored = view.stored;
    let status = status_message(&view);
    let excluded_total = view.excluded_total;
    view! {
        <h1>{t!(i18n, transfer.heading, old = old.clone())}</h1>
        // Refreshes the page without JavaScript while the transfer runs.
        {view.active.then(|| view! { <noscript><meta http-equiv="refresh" content="3"/></noscript> })}
        <section class="card transfer" aria-labelledby="transfer-status">
            <h2 id="transfer-status" class="transfer__status" data-state=view.state.clone()>{status}</h2>
            <progress class="transfer__bar" max="100" value=percent.map(|p| p.to_string())
                aria-label=move || t_string!(i18n, transfer.progress_label).to_string()></progress>
            <p class="transfer__total" aria-live="polite">{t!(i18n, transfer.stored, count = move || stored)}</p>
            {view.active.then(|| view! {
                <p class="field__hint">{t!(i18n, transfer.leave_and_return)}</p>
                <noscript><p><a href="">{t!(i18n, transfer.refresh)}</a></p></noscript>
            })}
        </section>

        <section aria-labelledby="arrived-title">
            <h2 id="arrived-title">{t!(i18n, transfer.arrived_title)}</h2>
            <table class="counts">
                <thead><tr>
                    <th scope="col">{t!(i18n, transfer.kind)}</th>
                    <th scope="col" class="num">{t!(i18n, transfer.count)}</th>
                    <th scope="col">{t!(i18n, transfer.dates)}</th>
                </tr></thead>
                <tbody>
                    {view.categories.into_iter().map(|c| {
                        let count = c.count;
                        let dates = match (c.first.and_then(|d| icu_date(d.0, d.1, d.2)), c.last.and_then(|d| icu_date(d.0, d.1, d.2))) {
                            (Some(first), Some(last)) => t!(i18n, transfer.date_range, first = move || first, last = move || last).into_any(),
                            _ => view! { <span aria-hidden="true">"–"</span> }.into_any(),
                        };
                        view! {
                            <tr data-category=c.key.clone()>
                                <th scope="row">{category_label(&c.key)}</th>
                                <td class="num">{t!(i18n, transfer.count_value, count = move || count)}</td>
                                <td>{dates}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>

        <section aria-labelledby="not-received-title">
            <h2 id="not-received-title">{t!(i18n, transfer.not_received_title)}</h2>
            {if excluded_total == 0 && view.not_permitted.is_empty() && view.rejected == 0 {
                view! { <p>{t!(i18n, transfer.nothing_left_out)}</p> }.into_any()
            } else {
                let rejected = view.rejected;
                view! {
                    <ul class="not-received">
                        {(excluded_total > 0).then(|| view! {
                            <li id="excluded-sensitive">
                                {t!(i18n, transfer.excluded, count = move || excluded_total)}
                                <ul>
                                    {view.excluded.into_iter().map(|(kind, n)| view! {
                                        <li>{sensitive_label(&kind)}": "{n}</li>
                                    }).collect_view()}
                                </ul>
                            </li>
                        })}
                        {(!view.not_permitted.is_empty()).then(|| {
                            let types = view.not_permitted.join(", ");
                            view! { <li>{t!(i18n, transfer.not_permitted, types = types.clone())}</li> }
                        })}
                        {(rejected > 0).then(|| view! { <li>{t!(i18n, transfer.rejected, count = move || rejected)}</li> })}
                    </ul>
                }.into_any()
            }}
        </section>

        {(view.state == "failed").then(|| view! {
            <form method="post" action=RetryTransfer::url() class="inline-form">
                <input type="hidden" name="transfer" value=view.id.clone()/>
                <button type="submit" class="button">{t!(i18n, transfer.retry)}</button>
            </form>
        })}
        {(view.state == "needs_reauthorization").then(|| {
            let old = old.clone();
            view! {
                <p><A href=format!("/member/bring/{}", view.payer_id) attr:class="button">{t!(i18n, transfer.sign_in_again, old = old.clone())}</A></p>
            }
        })}

        {match (view.consent_id, view.consent_withdrawn) {
            (Some(_), true) => view! { <p class="alert" id="withdrawn">{t!(i18n, transfer.withdrawn)}</p> }.into_any(),
            (Some(consent), false) => view! {
                <section class="card" aria-labelledby="withdraw-title">
                    <h2 id="withdraw-title">{t!(i18n, transfer.withdraw_title)}</h2>
                    <p id="your-choice">
                        {if view.include_sensitive {
                            t!(i18n, transfer.chose_include).into_any()
                        } else {
                            t!(i18n, transfer.chose_exclude).into_any()
                        }}
                        " "
                        {view.consent_until.and_then(|d| icu_date(d.0, d.1, d.2)).map(|date| {
                            t!(i18n, transfer.lasts_until, date = move || date)
                        })}
                    </p>
                    <p>{t!(i18n, transfer.withdraw_body, old = old.clone())}</p>
                    <form method="post" action=WithdrawConsent::url() class="form">
                        <input type="hidden" name="consent" value=consent/>
                        <input type="hidden" name="transfer" value=view.id.clone()/>
                        <div class="choice__option">
                            <input type="checkbox" id="withdraw-delete" name="delete" value="yes"/>
                            <label for="withdraw-delete">{t!(i18n, transfer.withdraw_delete)}</label>
                        </div>
                        <button type="submit" class="button button--secondary">{t!(i18n, transfer.withdraw_submit)}</button>
                    </form>
                </section>
            }.into_any(),
            (None, _) => ().into_any(),
        }}
        <p><A href="/member">{t!(i18n, transfer.back_home)}</A></p>
    }
}

fn status_message(view: &TransferView) -> AnyView {
    let i18n = use_i18n();
    let old = view.payer_name.clone();
    match view.state.as_str() {
        "queued" => t!(i18n, transfer.state_queued).into_any(),
        "running" => t!(i18n, transfer.state_running, old = old.clone()).into_any(),
        "completed" => t!(i18n, transfer.state_completed).into_any(),
        "needs_reauthorization" => t!(i18n, transfer.state_reauthorize, old = old.clone()).into_any(),
        "cancelled" => t!(i18n, transfer.state_cancelled).into_any(),
        _ => t!(i18n, transfer.state_failed).into_any(),
    }
}

/// Follows a running transfer: opens the page's Server-Sent Events stream and puts each view it
/// sends into `live`; closed once the transfer has ended, or when the page goes away.
#[cfg(feature = "hydrate")]
fn follow(id: &str, live: RwSignal<Option<TransferView>>) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;

    let path = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
    let Ok(source) = web_sys::EventSource::new(&format!("/member/transfers/{path}/live")) else { return };
    let this = source.clone();
    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        let Some(view) = event.data().as_string().and_then(|text| serde_json::from_str::<TransferView>(&text).ok())
        else {
            return;
        };
        if !view.active {
            this.close();
        }
        live.set(Some(view));
    });
    source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    let held = send_wrapper::SendWrapper::new((source, on_message));
    on_cleanup(move || held.0.close());
}

/// On the server the page is rendered once; there is nothing to follow.
#[cfg(not(feature = "hydrate"))]
fn follow(_id: &str, _live: RwSignal<Option<TransferView>>) {}

/// The member's words for a kind of record.
pub fn category_label(key: &str) -> AnyView {
    let i18n = use_i18n();
    match key {
        "claims" => t!(i18n, categories.claims).into_any(),
        "prior_authorizations" => t!(i18n, categories.prior_authorizations).into_any(),
        "coverage" => t!(i18n, categories.coverage).into_any(),
        "conditions" => t!(i18n, categories.conditions).into_any(),
        "medications" => t!(i18n, categories.medications).into_any(),
        "visits" => t!(i18n, categories.visits).into_any(),
        "labs" => t!(i18n, categories.labs).into_any(),
        "immunizations" => t!(i18n, categories.immunizations).into_any(),
        "procedures" => t!(i18n, categories.procedures).into_any(),
        "allergies" => t!(i18n, categories.allergies).into_any(),
        "documents" => t!(i18n, categories.documents).into_any(),
        "care_plans" => t!(i18n, categories.care_plans).into_any(),
        "supporting" => t!(i18n, categories.supporting).into_any(),
        other => other.to_owned().into_any(),
    }
}

/// The member's words for a kind of sensitive care.
fn sensitive_label(kind: &str) -> AnyView {
    let i18n = use_i18n();
    match kind {
        "behavioral_health" => t!(i18n, sensitive.behavioral_health).into_any(),
        "substance_use" => t!(i18n, sensitive.substance_use).into_any(),
        "hiv" => t!(i18n, sensitive.hiv).into_any(),
        "sexual_health" => t!(i18n, sensitive.sexual_health).into_any(),
        "violence" => t!(i18n, sensitive.violence).into_any(),
        _ => t!(i18n, sensitive.restricted).into_any(),
    }
}
