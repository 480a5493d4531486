//! A member's previous plans on the Payer-to-Payer path: they tell this plan which plan they
//! had (the id on that card), agree or not to this plan asking it for their records — no sign-in
//! there — with the sensitive-information choice, see where the asking stands, and stop it.
//! Plain forms: everything works without JavaScript.

use baton_vocab::views::requests::{PreviousPlanView, PreviousPlansPage};
use baton_vocab::{ConsentChannel, MatchResult, OptIn, RequestState};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};
use crate::pages::member::icu_date;

#[cfg(feature = "ssr")]
const PAGE: &str = "/member/previous-plans";

#[server(endpoint = "member/previous_plans")]
pub async fn load_previous_plans() -> Result<PreviousPlansPage, AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    let now = baton_store::Timestamp::now();
    services.journey.previous_plans_page(account.id, now).await.map_err(crate::ssr::unavailable)
}

/// Adds or corrects a previous plan and, with `ask=yes`, opts in (the sensitive choice is then
/// required); `ask=no` opts out.
#[server(endpoint = "member/save_previous_plan")]
pub async fn save_previous_plan(
    payer: String,
    member_id: String,
    start: Option<String>,
    end: Option<String>,
    concurrent: Option<String>,
    ask: Option<String>,
    sensitive: Option<String>,
) -> Result<(), AppError> {
    use baton_journey::{CoverageInput, JourneyError, OptInChoice};
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    let back = |problem: &str| leptos_axum::redirect(&format!("{PAGE}?problem={problem}#add"));
    let date = |text: &Option<String>| -> Result<Option<time::Date>, ()> {
        match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) => baton_vocab::day::parse(t).map(Some).ok_or(()),
        }
    };
    let (Ok(start), Ok(end)) = (date(&start), date(&end)) else {
        back("dates");
        return Ok(());
    };
    let ask = match ask.as_deref() {
        Some("yes") => true,
        Some("no") => false,
        _ => {
            back("choice");
            return Ok(());
        }
    };
    let include_sensitive = match sensitive.as_deref() {
        Some("include") => Some(true),
        Some("exclude") => Some(false),
        _ if ask => {
            back("choice");
            return Ok(());
        }
        _ => None,
    };
    let input = match CoverageInput::parse(&payer, &member_id, start, end, concurrent.is_some()) {
        Ok(input) => input,
        Err(JourneyError::Invalid("coverage_end")) => {
            back("dates");
            return Ok(());
        }
        Err(_) => {
            back("card");
            return Ok(());
        }
    };
    let now = baton_store::Timestamp::now();
    let choice = include_sensitive.filter(|_| ask).map(|include_sensitive| OptInChoice {
        include_sensitive,
        channel: ConsentChannel::Web,
        recorded_by: "member".into(),
        at: now,
    });
    let journey = &services.journey;
    match journey.record_previous_coverage(account.id, &input, choice.as_ref(), "member", now).await {
        Ok(coverage) if !ask => {
            journey.opt_out(account.id, &coverage.id, "member", now).await.map_err(crate::ssr::unavailable)?;
            leptos_axum::redirect(&format!("{PAGE}?saved=1"));
        }
        Ok(_) => leptos_axum::redirect(&format!("{PAGE}?saved=1")),
        Err(JourneyError::UnknownPayer(_)) => back("payer"),
        Err(JourneyError::WindowClosed { .. }) => back("closed"),
        Err(error) => return Err(crate::ssr::unavailable(error)),
    }
    Ok(())
}

/// Stops asking a previous plan: the permission is withdrawn.
#[server(endpoint = "member/stop_previous_plan")]
pub async fn stop_previous_plan(coverage: String) -> Result<(), AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    let now = baton_store::Timestamp::now();
    match services.journey.opt_out(account.id, &coverage, "member", now).await {
        Ok(_) => leptos_axum::redirect(&format!("{PAGE}?stopped=1")),
        Err(baton_journey::JourneyError::Invalid(_)) => return Err(crate::ssr::fail(AppError::NotFound)),
        Err(error) => return Err(crate::ssr::unavailable(error)),
    }
    Ok(())
}

#[component]
pub fn PreviousPlansPage() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| load_previous_plans());
    let query = use_query_map();
    let flag = move |name: &str| query.read().get(name).is_some();
    let problem = move || query.read().get("problem");
    view! {
        <Title text=t_string!(i18n, previous.title).to_string()/>
        <h1>{t!(i18n, previous.heading)}</h1>
        {move || flag("saved").then(|| view! { <p class="alert" role="status" id="saved">{t!(i18n, previous.saved)}</p> })}
        {move || flag("stopped").then(|| view! { <p class="alert" role="status" id="stopped">{t!(i18n, previous.stopped)}</p> })}
        <Loaded data=data render={move |page: PreviousPlansPage| view! {
            <p>{t!(i18n, previous.lead, new = page.plan_name.clone())}</p>
            {page.plans.is_empty().then(|| view! { <p id="no-previous">{t!(i18n, previous.none)}</p> })}
            <ul class="links">
                {page.plans.clone().into_iter().map(|plan| view! { <PlanItem plan/> }).collect_view()}
            </ul>
            <AddForm page problem=problem()/>
        }}/>
    }
}

/// How an opt-in was given, in words.
pub fn channel_label(channel: ConsentChannel) -> AnyView {
    let i18n = use_i18n();
    match channel {
        ConsentChannel::Web => t!(i18n, previous.channel_web).into_any(),
        ConsentChannel::Phone => t!(i18n, previous.channel_phone).into_any(),
        ConsentChannel::Paper => t!(i18n, previous.channel_paper).into_any(),
        ConsentChannel::Enrollment => t!(i18n, previous.channel_enrollment).into_any(),
    }
}

/// One previous plan: the card, the opt-in, where the asking stands.
#[component]
fn PlanItem(plan: PreviousPlanView) -> impl IntoView {
    let i18n = use_i18n();
    let old = plan.payer_name.clone();
    let opted = plan.opted_on.and_then(|(y, m, d)| icu_date(y, m, d));
    let how = plan.channel.map(channel_label);
    let decision = match (plan.opt_in, opted) {
        (OptIn::In, Some(date)) => {
            view! { <p>{t!(i18n, previous.opted_in, date = move || date, old = old.clone())} " (" {how} ")"</p> }.into_any()
        }
        (OptIn::Out, _) => view! { <p>{t!(i18n, previous.opted_out, old = old.clone())}</p> }.into_any(),
        _ => view! { <p>{t!(i18n, previous.not_decided)}</p> }.into_any(),
    };
    let sensitive = (plan.opt_in == OptIn::In).then_some(plan.include_sensitive).flatten().map(|include| {
        if include { t!(i18n, previous.sensitive_included).into_any() } else { t!(i18n, previous.sensitive_left_out).into_any() }
    });
    let until = plan.until.and_then(|(y, m, d)| icu_date(y, m, d)).filter(|_| plan.opt_in == OptIn::In);
    let status = plan.request.clone().map(|request| {
        let asked = icu_date(request.asked_on.0, request.asked_on.1, request.asked_on.2);
        let words = match (request.result, request.state) {
            (Some(MatchResult::Matched), RequestState::Completed) => t!(i18n, previous.request_done, old = old.clone()).into_any(),
            (Some(MatchResult::Matched), _) => t!(i18n, previous.request_matched, old = old.clone()).into_any(),
            (Some(MatchResult::NoMatch | MatchResult::SeveralMatches), _) => {
                t!(i18n, previous.request_no_match, old = old.clone()).into_any()
            }
            (Some(MatchResult::ConsentRefused), _) => t!(i18n, previous.request_consent, old = old.clone()).into_any(),
            (None, RequestState::Failed | RequestState::Cancelled) => {
                t!(i18n, previous.request_failed, old = old.clone()).into_any()
            }
            (None, _) => match asked {
                Some(date) => t!(i18n, previous.request_asking, old = old.clone(), date = move || date).into_any(),
                None => t!(i18n, previous.request_waiting, old = old.clone()).into_any(),
            },
        };
        let state = request.result.map_or(request.state.as_str(), MatchResult::as_str);
        view! {
            <p class="link-item__state" data-state=state>{words}</p>
            {request.transfer_id.map(|id| view! {
                <p><A exact=true href=format!("/member/transfers/{id}")>{t!(i18n, previous.see_records)}</A></p>
            })}
        }
    });
    let waiting = (plan.request.is_none() && plan.opt_in == OptIn::In)
        .then(|| view! { <p class="link-item__state" data-state="waiting">{t!(i18n, previous.request_waiting, old = old.clone())}</p> });
    let next = plan.next_on.and_then(|(y, m, d)| icu_date(y, m, d)).filter(|_| plan.request.is_some());
    view! {
        <li class="link-item" data-payer=plan.payer_id.clone()>
            <h2 class="link-item__name">{plan.payer_name.clone()}</h2>
            <p>{t!(i18n, previous.card_member_id)} ": " <strong>{plan.member_id.clone()}</strong></p>
            {decision}
            {sensitive.map(|s| view! { <p>{s}</p> })}
            {until.map(|date| view! { <p>{t!(i18n, previous.until, date = move || date)}</p> })}
            {waiting}
            {status}
            {next.map(|date| view! { <p>{t!(i18n, previous.next, date = move || date)}</p> })}
            {(plan.opt_in == OptIn::In).then(|| view! {
                <form method="post" action=StopPreviousPlan::url() class="form">
                    <input type="hidden" name="coverage" value=plan.coverage_id.clone()/>
                    <button type="submit" class="button button--secondary">{t!(i18n, previous.stop, old = old.clone())}</button>
                </form>
            })}
        </li>
    }
}

/// Adding or correcting a previous plan, with the opt-in.
#[component]
fn AddForm(page: PreviousPlansPage, problem: Option<String>) -> impl IntoView {
    let i18n = use_i18n();
    let said = problem.map(|problem| {
        let words = match problem.as_str() {
            "card" => t!(i18n, previous.problem_card).into_any(),
            "payer" => t!(i18n, previous.problem_payer).into_any(),
            "dates" => t!(i18n, previous.problem_dates).into_any(),
            "closed" => t!(i18n, previous.problem_closed).into_any(),
            _ => t!(i18n, previous.problem_choice).into_any(),
        };
        view! { <p class="alert alert--error" role="alert" id="previous-problem" data-problem=problem>{words}</p> }
    });
    let old = t_string!(i18n, previous.your_old_plan).to_string();
    let until = page.until.and_then(|(y, m, d)| icu_date(y, m, d));
    view! {
        <section class="card" aria-labelledby="add" id="add-section">
            <h2 id="add">{t!(i18n, previous.form_title)}</h2>
            {said}
            <form method="post" action=SavePreviousPlan::url() class="form">
                <div class="field">
                    <label for="previous-payer">{t!(i18n, previous.form_payer)}</label>
                    <select id="previous-payer" name="payer" required>
                        <option value="">{t!(i18n, previous.form_payer_choose)}</option>
                        {page.payers.into_iter().map(|(id, name)| view! { <option value=id>{name}</option> }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="previous-member-id">{t!(i18n, previous.form_member_id)}</label>
                    <input id="previous-member-id" name="member_id" type="text" maxlength="100" autocomplete="off" required/>
                </div>
                <div class="field">
                    <label for="previous-start">{t!(i18n, previous.form_start)}</label>
                    <input id="previous-start" name="start" type="date"/>
                </div>
                <div class="field">
                    <label for="previous-end">{t!(i18n, previous.form_end)}</label>
                    <input id="previous-end" name="end" type="date"/>
                </div>
                <div class="choice__option">
                    <input type="checkbox" id="previous-concurrent" name="concurrent" value="yes"/>
                    <label for="previous-concurrent">{t!(i18n, previous.form_concurrent)}</label>
                </div>
                <fieldset class="choice">
                    <legend>{t!(i18n, previous.form_ask_legend)}</legend>
                    <ul>
                        <li>{t!(i18n, consent.what_claims)}</li>
                        <li>{t!(i18n, consent.what_clinical)}</li>
                        <li>{t!(i18n, consent.what_prior_auth)}</li>
                        <li>{t!(i18n, consent.what_years)}</li>
                    </ul>
                    <p>{t!(i18n, consent.not_payments)}</p>
                    {until.map(|date| view! { <p>{t!(i18n, previous.until, date = move || date)}</p> })}
                    <div class="choice__option">
                        <input type="radio" id="previous-ask-yes" name="ask" value="yes" required/>
                        <label for="previous-ask-yes">{t!(i18n, previous.form_ask_yes)}</label>
                    </div>
                    <div class="choice__option">
                        <input type="radio" id="previous-ask-no" name="ask" value="no" required/>
                        <label for="previous-ask-no">{t!(i18n, previous.form_ask_no)}</label>
                    </div>
                </fieldset>
                <fieldset class="choice" aria-describedby="previous-sensitive-help">
                    <legend>{t!(i18n, consent.sensitive_legend)}</legend>
                    <p id="previous-sensitive-help" class="field__hint">{t!(i18n, consent.sensitive_help, old = old.clone())}</p>
                    <div class="choice__option">
                        <input type="radio" id="previous-sensitive-exclude" name="sensitive" value="exclude"/>
                        <label for="previous-sensitive-exclude">{t!(i18n, consent.exclude)}</label>
                    </div>
                    <div class="choice__option">
                        <input type="radio" id="previous-sensitive-include" name="sensitive" value="include"/>
                        <label for="previous-sensitive-include">{t!(i18n, consent.include)}</label>
                    </div>
                </fieldset>
                <button type="submit" class="button" id="previous-save">{t!(i18n, previous.form_save)}</button>
            </form>
        </section>
    }
}
