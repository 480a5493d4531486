use baton_vocab::TransferState;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

pub use baton_vocab::views::{LinkSummary, MemberHome as MemberHomeData};

#[server(endpoint = "member/home")]
pub async fn load_member_home() -> Result<MemberHomeData, AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    services.journey.member_home(&account).await.map_err(crate::ssr::unavailable)
}

#[component]
pub fn MemberHome() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| load_member_home());
    view! {
        <Title text=t_string!(i18n, nav.member_home).to_string()/>
        <Loaded data=data render={move |home: MemberHomeData| {
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
                        <p><A exact=true href="/member/bring" attr:class="button">{t!(i18n, member.bring_start)}</A></p>
                    </section>
                    <section class="card" aria-labelledby="previous-title">
                        <h2 id="previous-title">{t!(i18n, member.previous_title)}</h2>
                        <p>{t!(i18n, member.previous_body)}</p>
                        <p><A exact=true href="/member/previous-plans" attr:class="button button--secondary">{t!(i18n, member.previous_start)}</A></p>
                    </section>
                    <section class="card" aria-labelledby="apps-title">
                        <h2 id="apps-title">{t!(i18n, member.apps_title)}</h2>
                        <p>{t!(i18n, member.apps_body)}</p>
                        // Served by the data-holder side, outside this app's router.
                        <p><a href="/account/apps" rel="external" id="connected-apps-link">{t!(i18n, member.apps_start)}</a></p>
                    </section>
                }
            }}/>
    }
}

/// One previous plan on the member home: its state in words, and what to do.
#[component]
fn LinkItem(link: LinkSummary) -> AnyView {
    let i18n = use_i18n();
    let old = link.payer_name.clone();
    let stored = link.stored;
    // What the card says, and what the member can do: withdrawn first, whatever the last
    // transfer did.
    let (key, words, sign_in_again) = match (link.withdrawn, link.state) {
        (true, _) => ("withdrawn", t!(i18n, member.link_withdrawn).into_any(), true),
        (false, state @ (None | Some(TransferState::Queued | TransferState::Running))) => {
            (state.unwrap_or(TransferState::Queued).as_str(), t!(i18n, member.link_in_progress).into_any(), false)
        }
        (false, Some(state @ TransferState::Completed)) => {
            (state.as_str(), t!(i18n, member.link_done, count = move || stored).into_any(), false)
        }
        (false, Some(state @ TransferState::NeedsReauthorization)) => {
            (state.as_str(), t!(i18n, member.link_reauthorize, old = old.clone()).into_any(), true)
        }
        (false, Some(state @ TransferState::Cancelled)) => {
            (state.as_str(), t!(i18n, member.link_cancelled).into_any(), true)
        }
        (false, Some(state @ TransferState::Failed)) => {
            (state.as_str(), t!(i18n, member.link_failed).into_any(), false)
        }
    };
    let action = sign_in_again.then(|| {
        view! {
            <A exact=true href=format!("/member/bring/{}", link.payer_id)>{t!(i18n, member.link_sign_in_again, old = old.clone())}</A>
        }
    });
    // The permission in force (or the last one): when, the sensitive choice, until when.
    let given = link.given_on.and_then(|(y, m, d)| icu_date(y, m, d));
    let until = link.until.and_then(|(y, m, d)| icu_date(y, m, d)).filter(|_| !link.withdrawn);
    let permission = given.map(|given| {
        view! {
            <p class="link-item__permission">
                {t!(i18n, member.link_given, date = move || given)}" "
                {if link.include_sensitive {
                    t!(i18n, member.link_sensitive_included).into_any()
                } else {
                    t!(i18n, member.link_sensitive_left_out).into_any()
                }}
                {until.map(|until| view! { " " {t!(i18n, member.link_until, date = move || until)} })}
            </p>
        }
    });
    let earlier = link.earlier.clone();
    let count = earlier.len();
    let history = (!earlier.is_empty()).then(|| {
        view! {
            <details class="link-item__history">
                <summary>{t!(i18n, member.link_history, count = move || count)}</summary>
                <ul>
                    {earlier.into_iter().map(|e| {
                        let given = e.given_on.and_then(|(y, m, d)| icu_date(y, m, d));
                        let label = match given {
                            Some(date) => t!(i18n, member.link_earlier, date = move || date).into_any(),
                            None => t!(i18n, member.link_earlier_undated).into_any(),
                        };
                        let label = match e.transfer_id {
                            Some(id) => view! { <A exact=true href=format!("/member/transfers/{id}")>{label}</A> }.into_any(),
                            None => label,
                        };
                        view! {
                            <li>
                                {label}
                                {if e.replaced {
                                    Some(view! { " — " {t!(i18n, member.link_earlier_replaced)} }.into_any())
                                } else {
                                    e.withdrawn.then(|| view! { " — " {t!(i18n, member.link_earlier_withdrawn)} }.into_any())
                                }}
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </details>
        }
    });
    view! {
        <li class="link-item" data-state=key>
            <h3 class="link-item__name">{link.payer_name.clone()}</h3>
            <p class="link-item__state">{words}</p>
            {permission}
            <p class="link-item__actions">
                {link.transfer_id.map(|id| view! {
                    <A exact=true href=format!("/member/transfers/{id}")>{t!(i18n, member.link_details)}</A>
                })}
                {action}
            </p>
            {history}
        </li>
    }
    .into_any()
}

/// An ICU calendar date for locale-aware formatting.
pub fn icu_date(
    year: i32,
    month: u8,
    day: u8,
) -> Option<leptos_i18n::reexports::icu::calendar::Date<leptos_i18n::reexports::icu::calendar::Iso>> {
    leptos_i18n::reexports::icu::calendar::Date::try_new_iso(year, month, day).ok()
}
