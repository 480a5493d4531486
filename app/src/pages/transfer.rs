//! A transfer as the member sees it: a progress bar and counts per kind of record that update
//! while it runs (streamed as Server-Sent Events when JavaScript runs; the page refreshes itself
//! when it does not), then what arrived, with dates, and what did not and why. From here the member
//! can withdraw the permission (and ask for what arrived to be deleted).

use baton_vocab::{SensitiveSharing, TransferState};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::components::outcome::outcome;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};
use crate::pages::member::icu_date;

pub use baton_vocab::views::TransferView;

#[server(endpoint = "member/transfer")]
pub async fn load_transfer(id: String) -> Result<TransferView, AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    match services.journey.member_transfer(account.id, &id).await {
        Ok(Some(view)) => Ok(view),
        Ok(None) => Err(crate::ssr::fail(AppError::NotFound)),
        Err(error) => Err(crate::ssr::unavailable(error)),
    }
}

/// The member withdraws their permission. With `delete` ticked, nothing happens until they
/// have seen exactly what would be deleted and confirmed it (`confirm`): the first post leads
/// to the confirmation page.
#[server(endpoint = "member/withdraw")]
pub async fn withdraw_consent(
    consent: String,
    transfer: String,
    delete: Option<String>,
    confirm: Option<String>,
) -> Result<(), AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    let delete = delete.is_some_and(|d| d == "yes");
    let path = crate::url::encode(&transfer);
    if delete && confirm.as_deref() != Some("yes") {
        leptos_axum::redirect(&format!("/member/transfers/{path}/withdraw"));
        return Ok(());
    }
    match services.journey.withdraw(account.id, &consent, delete, baton_store::Timestamp::now()).await {
        Ok(_) => {
            leptos_axum::redirect(&format!("/member/transfers/{path}#withdrawn"));
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
    let theirs =
        services.journey.retry_member_transfer(account.id, &transfer).await.map_err(crate::ssr::unavailable)?;
    if !theirs {
        return Err(crate::ssr::fail(AppError::NotFound));
    }
    let path = crate::url::encode(&transfer);
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
    let failed = view.state == TransferState::Failed;
    let percent = match (view.active, view.expected) {
        // A transfer that failed is not shown as finished.
        (false, _) if failed => None,
        (false, _) => Some(100),
        (true, Some(expected)) if expected > 0 => Some((view.received * 100 / expected).min(99)),
        _ => None,
    };
    let stored = view.stored;
    let status = status_message(&view);
    let not_received = view.clone();
    view! {
        <h1>{t!(i18n, transfer.heading, old = old.clone())}</h1>
        // Refreshes the page without JavaScript while the transfer runs.
        {view.active.then(|| view! { <noscript><meta http-equiv="refresh" content="3"/></noscript> })}
        <section class="card transfer" aria-labelledby="transfer-status">
            // One live region: a screen reader hears how it ended and how many arrived, together.
            <div id="transfer-announce" aria-live="polite" aria-atomic="true">
                <h2 id="transfer-status" class="transfer__status" data-state=view.state.as_str()>{status}</h2>
                <p class="transfer__total">{if view.active {
                    t!(i18n, transfer.stored, count = move || stored).into_any()
                } else {
                    t!(i18n, transfer.stored_done, count = move || stored).into_any()
                }}</p>
            </div>
            {(!failed).then(|| view! {
                <progress class="transfer__bar" max="100" value=percent.map(|p| p.to_string())
                    aria-label=move || t_string!(i18n, transfer.progress_label).to_string()></progress>
            })}
            {failed.then(|| {
                let old = old.clone();
                view! {
                    <div id="failure">
                        <p>{t!(i18n, transfer.failed_what, old = old.clone())}</p>
                        <p>{t!(i18n, transfer.failed_next)}</p>
                    </div>
                }
            })}
            {view.active.then(|| view! {
                <p class="field__hint">{t!(i18n, transfer.leave_and_return)}</p>
                <noscript><p><a href="">{t!(i18n, transfer.refresh)}</a></p></noscript>
            })}
        </section>

        <section aria-labelledby="arrived-title">
            <h2 id="arrived-title">{t!(i18n, transfer.arrived_title)}</h2>
            {(!view.active && stored == 0).then(|| {
                let old = old.clone();
                view! { <p id="nothing-arrived">{t!(i18n, transfer.nothing_arrived, old = old.clone())}</p> }
            })}
            <table class="counts" hidden={!view.active && stored == 0}>
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
            {(view.supporting > 0).then(|| {
                let supporting = view.supporting;
                view! { <p id="supporting" class="field__hint">{t!(i18n, transfer.supporting, count = move || supporting)}</p> }
            })}
        </section>

        <section aria-labelledby="not-received-title">
            <h2 id="not-received-title">{t!(i18n, transfer.not_received_title)}</h2>
            <NotReceived view=not_received/>
        </section>

        {(view.state == TransferState::Failed).then(|| view! {
            <form method="post" action=RetryTransfer::url() class="inline-form">
                <input type="hidden" name="transfer" value=view.id.clone()/>
                <button type="submit" class="button">{t!(i18n, transfer.retry)}</button>
            </form>
        })}
        {(view.state == TransferState::NeedsReauthorization).then(|| {
            let old = old.clone();
            view! {
                <p><A exact=true href=format!("/member/bring/{}", view.payer_id) attr:class="button">{t!(i18n, transfer.sign_in_again, old = old.clone())}</A></p>
            }
        })}

        {match (view.consent_id, view.consent_withdrawn) {
            (Some(_), true) => view! {
                <div class="alert" id="withdrawn" role="status">
                    <p>{t!(i18n, transfer.withdrawn)}</p>
                    {view.deletion.map(|d| {
                        let (deleted, kept, shared) = (d.deleted, d.kept, d.shared);
                        view! {
                            <p id="deleted">{t!(i18n, transfer.deleted, count = move || deleted)}</p>
                            {(kept > 0).then(|| view! { <p id="kept">{t!(i18n, transfer.kept, count = move || kept)}</p> })}
                            {(shared > 0).then(|| view! { <p id="shared">{t!(i18n, transfer.shared, count = move || shared)}</p> })}
                        }
                    })}
                </div>
            }.into_any(),
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
        <p><A exact=true href="/member">{t!(i18n, transfer.back_home)}</A></p>
    }
}

/// What did not arrive, and why — only what is true: what this plan left out at the member's
/// request, what the previous plan said it held back, and, when it said nothing, that nobody
/// here can tell whether it left anything out.
#[component]
fn NotReceived(view: TransferView) -> impl IntoView {
    let i18n = use_i18n();
    let old = view.payer_name.clone();
    let excluded_total = view.excluded_total;
    let rejected = view.rejected;
    let held_back = view.source_sensitive == Some(SensitiveSharing::Excluded);
    let unknown = view.source_sensitive.is_none();
    if view.state == TransferState::Failed {
        // Not everything arrived, and not by anyone's choice: say that, not "nothing left out".
        return view! { <p id="not-finished">{t!(i18n, transfer.not_finished, old = old.clone())}</p> }.into_any();
    }
    let nothing = excluded_total == 0 && !held_back && !unknown && view.not_permitted.is_empty() && rejected == 0;
    if nothing {
        return view! { <p id="nothing-left-out">{t!(i18n, transfer.nothing_left_out)}</p> }.into_any();
    }
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
            {held_back.then(|| {
                let old = old.clone();
                view! { <li id="source-held-back">{t!(i18n, transfer.source_held_back, old = old.clone())}</li> }
            })}
            {unknown.then(|| {
                let old = old.clone();
                view! { <li id="source-unknown">{t!(i18n, transfer.source_unknown, old = old.clone())}</li> }
            })}
            {(!view.not_permitted.is_empty()).then(|| {
                let types = view.not_permitted.join(", ");
                view! { <li>{t!(i18n, transfer.not_permitted, types = types.clone())}</li> }
            })}
            {(rejected > 0).then(|| view! { <li>{t!(i18n, transfer.rejected, count = move || rejected)}</li> })}
        </ul>
    }
    .into_any()
}

fn status_message(view: &TransferView) -> AnyView {
    let i18n = use_i18n();
    let old = view.payer_name.clone();
    match view.state {
        TransferState::Queued => t!(i18n, transfer.state_queued).into_any(),
        TransferState::Running => t!(i18n, transfer.state_running, old = old.clone()).into_any(),
        TransferState::Completed => t!(i18n, transfer.state_completed).into_any(),
        TransferState::NeedsReauthorization => t!(i18n, transfer.state_reauthorize, old = old.clone()).into_any(),
        TransferState::Cancelled => t!(i18n, transfer.state_cancelled).into_any(),
        TransferState::Failed => t!(i18n, transfer.state_failed).into_any(),
    }
}

/// Follows a running transfer: opens the page's Server-Sent Events stream and puts each view it
/// sends into `live`; closed once the transfer has ended, or when the page goes away.
#[cfg(feature = "hydrate")]
fn follow(id: &str, live: RwSignal<Option<TransferView>>) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;

    let path = crate::url::encode(id);
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
pub fn sensitive_label(kind: &str) -> AnyView {
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
