//! "Bring your records": the member picks their previous plan from the directory, reads the
//! consent page, chooses about sensitive information, and is sent to that plan to approve.
//! Every form is a plain HTML form (GET search, POST consent): it works without JavaScript.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use baton_vocab::BringProblem;

use crate::components::outcome::{Loaded, outcome};
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};
use crate::pages::member::icu_date;

use baton_vocab::views::{ConsentPageData, PayerResults};

/// At most this many plans are listed at once; the member searches to narrow the rest.
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
pub const PICKER_LIMIT: usize = 50;

#[server(endpoint = "member/payers")]
pub async fn search_payers(query: String) -> Result<PayerResults, AppError> {
    crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    Ok(services.journey.payer_cards(&query, PICKER_LIMIT))
}

#[server(endpoint = "member/consent_page")]
pub async fn load_consent_page(payer: String) -> Result<ConsentPageData, AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    let today = time::OffsetDateTime::now_utc().date();
    services.journey.consent_page(&account, &payer, today).ok_or_else(|| crate::ssr::fail(AppError::NotFound))
}

/// The consent form: remembers the member's choice with a fresh state and PKCE verifier in
/// their session, then sends them to the previous plan's authorization page.
#[server(endpoint = "member/start_authorization")]
pub async fn start_authorization(payer: String, sensitive: Option<String>) -> Result<(), AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    let payer_path = crate::url::encode(&payer);
    let today = time::OffsetDateTime::now_utc().date();
    if let baton_journey::consent::Window::Closed { .. } =
        baton_journey::consent::Window::for_coverage(account.coverage_start, today)
    {
        // The consent page says why; the previous plan is not asked.
        leptos_axum::redirect(&format!("/member/bring/{payer_path}"));
        return Ok(());
    }
    let include_sensitive = match sensitive.as_deref() {
        Some("include") => true,
        Some("exclude") => false,
        _ => {
            leptos_axum::redirect(&format!("/member/bring/{payer_path}?problem=choice"));
            return Ok(());
        }
    };
    let started =
        services.journey.start_for(account.id, &payer, include_sensitive, baton_store::Timestamp::now()).await;
    let (url, pending) = match started {
        Ok(started) => started,
        Err(baton_journey::JourneyError::UnknownPayer(_)) => return Err(crate::ssr::fail(AppError::NotFound)),
        Err(baton_journey::JourneyError::NotOffered(_)) => {
            leptos_axum::redirect(&format!("/member/bring?problem={}", BringProblem::NotOffered));
            return Ok(());
        }
        Err(error) => {
            tracing::warn!(%payer, %error, "cannot start the authorization");
            let problem = match &error {
                baton_journey::JourneyError::Discovery(cause) if !cause.is_unreachable() => BringProblem::NotSetUp,
                baton_journey::JourneyError::Discovery(_) => BringProblem::Unreachable,
                _ => BringProblem::Unavailable,
            };
            leptos_axum::redirect(&format!("/member/bring?problem={problem}&payer={payer_path}"));
            return Ok(());
        }
    };
    let session = crate::ssr::session().await?;
    crate::ssr::keep_pending_authorization(&session, pending).await.map_err(crate::ssr::session_error)?;
    leptos_axum::redirect(url.as_str());
    Ok(())
}

/// The same consent, without the member signing in at the old plan: this plan's system asks it
/// to match them by the details on their old card (the Payer-to-Payer API). A match goes to the
/// progress page; no match says why on the consent page.
#[server(endpoint = "member/bring_by_match")]
pub async fn bring_by_match(
    payer: String,
    sensitive: Option<String>,
    member_id: String,
    given: String,
    family: String,
) -> Result<(), AppError> {
    use baton_journey::{JourneyError, Matched, OldCard};
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    let back = format!("/member/bring/{}", crate::url::encode(&payer));
    let include_sensitive = match sensitive.as_deref() {
        Some("include") => true,
        Some("exclude") => false,
        _ => {
            leptos_axum::redirect(&format!("{back}?problem=choice"));
            return Ok(());
        }
    };
    let card = match OldCard::parse(&member_id, &given, &family) {
        Ok(card) => card,
        Err(_) => {
            leptos_axum::redirect(&format!("{back}?problem=card#by-match"));
            return Ok(());
        }
    };
    let now = baton_store::Timestamp::now();
    match services.journey.bring_by_match(account.id, &payer, &card, include_sensitive, now).await {
        Ok(Matched::Connected(connected)) => {
            leptos_axum::redirect(&format!("/member/transfers/{}", connected.transfer_id));
        }
        // To the form's section, where the page says what went wrong.
        Ok(Matched::Refused { result, .. }) => leptos_axum::redirect(&format!("{back}?problem={result}#by-match")),
        Err(JourneyError::UnknownPayer(_)) => return Err(crate::ssr::fail(AppError::NotFound)),
        // The consent page says why.
        Err(JourneyError::WindowClosed { .. }) => leptos_axum::redirect(&back),
        Err(error) => {
            tracing::warn!(%payer, %error, "cannot ask the old plan to match the member");
            let problem = match &error {
                JourneyError::NotOffered(_) => BringProblem::NotOffered,
                JourneyError::NoPayerToPayer(_) | JourneyError::PayerRefused(_) => BringProblem::NotSetUp,
                JourneyError::Discovery(cause) if !cause.is_unreachable() => BringProblem::NotSetUp,
                JourneyError::Discovery(_) => BringProblem::Unreachable,
                _ => BringProblem::Unavailable,
            };
            leptos_axum::redirect(&format!("/member/bring?problem={problem}&payer={}", crate::url::encode(&payer)));
        }
    }
    Ok(())
}

/// What went wrong on the way back from the previous plan (`?problem=`).
#[component]
fn Problem(problem: String, payer: Option<String>) -> impl IntoView {
    let i18n = use_i18n();
    let problem = problem.parse::<BringProblem>().unwrap_or(BringProblem::Unavailable);
    let message = match problem {
        BringProblem::Denied => t!(i18n, bring.problem_denied).into_any(),
        BringProblem::State => t!(i18n, bring.problem_state).into_any(),
        BringProblem::Expired => t!(i18n, bring.problem_expired).into_any(),
        BringProblem::Session => t!(i18n, bring.problem_session).into_any(),
        BringProblem::Refused => t!(i18n, bring.problem_refused).into_any(),
        BringProblem::Token => t!(i18n, bring.problem_token).into_any(),
        BringProblem::Unreachable => t!(i18n, bring.problem_unreachable).into_any(),
        BringProblem::NotSetUp => t!(i18n, bring.problem_not_set_up).into_any(),
        BringProblem::NotOffered => t!(i18n, bring.problem_not_offered).into_any(),
        BringProblem::Closed => t!(i18n, bring.problem_closed).into_any(),
        BringProblem::Unavailable => t!(i18n, bring.problem_unavailable).into_any(),
    };
    // A plan switched off or not set up, or a time that has run out: trying again cannot help.
    let again = payer.filter(|p| !p.is_empty() && problem.can_try_again()).map(|p| {
        view! { <p><A exact=true href=format!("/member/bring/{p}")>{t!(i18n, bring.try_again)}</A></p> }
    });
    view! {
        <div class="alert alert--error" role="alert" id="journey-problem" data-problem=problem.as_str()>
            <h2 class="alert__title">{t!(i18n, bring.problem_title)}</h2>
            <p>{message}</p>
            {again}
        </div>
    }
}

/// The payer directory.
#[component]
pub fn BringRecords() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let payers = Resource::new(q, search_payers);
    let problem = move || {
        let query = query.read();
        query.get("problem").map(|problem| view! { <Problem problem payer=query.get("payer")/> })
    };
    view! {
        <Title text=t_string!(i18n, bring.title).to_string()/>
        <h1>{t!(i18n, bring.title)}</h1>
        {problem}
        <p>{t!(i18n, bring.intro)}</p>
        <form method="get" action="/member/bring" class="search" role="search">
            <label for="payer-search">{t!(i18n, bring.search_label)}</label>
            <div class="search__row">
                <input id="payer-search" name="q" type="search" prop:value=q autocomplete="off"
                    aria-describedby="payer-search-hint"/>
                <button type="submit" class="button">{t!(i18n, bring.search)}</button>
            </div>
            <p id="payer-search-hint" class="field__hint">{t!(i18n, bring.search_hint)}</p>
        </form>
        <Transition fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || payers.get().map(|result| outcome(result, |found: PayerResults| {
                if found.total == 0 {
                    return view! { <p role="status">{t!(i18n, bring.none_found)}</p> }.into_any();
                }
                let count = found.total;
                let shown = found.shown.len();
                let more = (shown < count).then(|| view! {
                    <p class="field__hint" id="more-plans">{t!(i18n, bring.more_plans, shown = move || shown, count = move || count)}</p>
                });
                view! {
                    <p role="status" class="visually-hidden">{t!(i18n, bring.found, count = move || count)}</p>
                    {more}
                    <ul class="payer-list">
                        {found.shown.into_iter().map(|payer| {
                            let states = payer.states.join(", ");
                            view! {
                                <li>
                                    <a class="payer" href=format!("/member/bring/{}", payer.id)>
                                        {payer.logo_url.map(|src| view! { <img class="payer__logo" src=src alt="" width="48" height="48" loading="lazy"/> })}
                                        <span class="payer__name">{payer.name}</span>
                                        <span class="payer__states">{states}</span>
                                    </a>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }))}
        </Transition>
    }
}

/// The consent page for one previous plan.
#[component]
pub fn ConsentPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let query = use_query_map();
    let payer = move || params.read().get("payer").unwrap_or_default();
    let data = Resource::new(payer, load_consent_page);
    let choice_missing = move || query.read().get("problem").as_deref() == Some("choice");
    let match_problem = move || query.read().get("problem").filter(|p| p != "choice");
    view! {
        <Title text=t_string!(i18n, consent.title).to_string()/>
        <Loaded data=data render={move |page: ConsentPageData| {
                let old = page.payer_name.clone();
                let new = page.plan_name.clone();
                let until = icu_date(page.until.0, page.until.1, page.until.2);
                if page.closed {
                    return view! {
                        <article class="consent" id="consent-closed">
                            <h1>{t!(i18n, consent.closed_heading)}</h1>
                            <p class="lead">{until.map(|date| t!(i18n, consent.closed_body, date = move || date, new = new.clone()))}</p>
                            <p>{t!(i18n, consent.closed_next, old = old.clone())}</p>
                            <p><A exact=true href="/member" attr:class="button button--secondary">{t!(i18n, consent.closed_back)}</A></p>
                        </article>
                    }.into_any();
                }
                view! {
                    <article class="consent">
                        <h1>{t!(i18n, consent.heading, old = old.clone())}</h1>
                        <p class="lead">{t!(i18n, consent.lead, old = old.clone(), new = new.clone())}</p>

                        <h2>{t!(i18n, consent.what_title)}</h2>
                        <ul>
                            <li>{t!(i18n, consent.what_claims)}</li>
                            <li>{t!(i18n, consent.what_clinical)}</li>
                            <li>{t!(i18n, consent.what_prior_auth)}</li>
                            <li>{t!(i18n, consent.what_years)}</li>
                        </ul>
                        <p>{t!(i18n, consent.not_payments)}</p>

                        <h2>{t!(i18n, consent.how_long_title)}</h2>
                        <p>{until.map(|date| t!(i18n, consent.how_long, date = move || date))}</p>

                        <h2>{t!(i18n, consent.stop_title)}</h2>
                        <p>{t!(i18n, consent.stop_body)}</p>

                        <form method="post" action=StartAuthorization::url() class="form">
                            <input type="hidden" name="payer" value=page.payer_id.clone()/>
                            <fieldset class="choice" aria-describedby="sensitive-help"
                                aria-invalid=move || choice_missing().then_some("true")>
                                <legend>{t!(i18n, consent.sensitive_legend)}</legend>
                                <p id="sensitive-help" class="field__hint">{t!(i18n, consent.sensitive_help, old = old.clone())}</p>
                                {move || choice_missing().then(|| view! {
                                    <p class="field__error" role="alert">{t!(i18n, consent.choice_required)}</p>
                                })}
                                <div class="choice__option">
                                    <input type="radio" id="sensitive-exclude" name="sensitive" value="exclude" required/>
                                    <label for="sensitive-exclude">{t!(i18n, consent.exclude)}</label>
                                </div>
                                <div class="choice__option">
                                    <input type="radio" id="sensitive-include" name="sensitive" value="include" required/>
                                    <label for="sensitive-include">{t!(i18n, consent.include)}</label>
                                </div>
                            </fieldset>
                            <p>{t!(i18n, consent.next_step, old = old.clone())}</p>
                            <div class="actions">
                                <button type="submit" class="button">{t!(i18n, consent.submit, old = old.clone())}</button>
                                <A exact=true href="/member/bring" attr:class="button button--secondary">{t!(i18n, consent.back)}</A>
                            </div>
                            {page.by_match.then(|| view! {
                                <ByMatch old=old.clone() new=new.clone() given=page.given.clone()
                                    family=page.family.clone() problem=match_problem()/>
                            })}
                        </form>
                    </article>
                }.into_any()
            }}/>
    }
}

/// The other way, in the same form: this plan asks the old plan itself, by the details on the
/// member's old card (the same sensitive-information choice above applies).
#[component]
fn ByMatch(old: String, new: String, given: String, family: String, problem: Option<String>) -> impl IntoView {
    let i18n = use_i18n();
    let said = problem.map(|p| {
        let words = match p.as_str() {
            "card" => t!(i18n, consent.match_card_missing).into_any(),
            "no_match" => t!(i18n, consent.match_no_match, old = old.clone()).into_any(),
            "several_matches" => t!(i18n, consent.match_several, old = old.clone()).into_any(),
            "consent_refused" => t!(i18n, consent.match_consent_refused, old = old.clone()).into_any(),
            _ => return None,
        };
        Some(view! { <p class="field__error" role="alert" id="match-problem">{words}</p> })
    });
    view! {
        <fieldset class="choice" id="by-match" aria-describedby="by-match-help">
            <legend>{t!(i18n, consent.match_legend, old = old.clone())}</legend>
            <p id="by-match-help" class="field__hint">{t!(i18n, consent.match_help, old = old.clone(), new = new.clone())}</p>
            {said}
            <div class="field">
                <label for="match-member-id">{t!(i18n, consent.match_member_id, old = old.clone())}</label>
                <input id="match-member-id" name="member_id" type="text" maxlength="100" autocomplete="off"/>
            </div>
            <div class="field">
                <label for="match-given">{t!(i18n, consent.match_given)}</label>
                <input id="match-given" name="given" type="text" maxlength="100" autocomplete="given-name" value=given/>
            </div>
            <div class="field">
                <label for="match-family">{t!(i18n, consent.match_family)}</label>
                <input id="match-family" name="family" type="text" maxlength="100" autocomplete="family-name" value=family/>
            </div>
            <button type="submit" class="button button--secondary" formaction=BringByMatch::url()>
                {t!(i18n, consent.match_submit, old = old.clone())}
            </button>
        </fieldset>
    }
}
