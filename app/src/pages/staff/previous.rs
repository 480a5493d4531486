//! A member's previous plans on the staff member page: each coverage with its opt-in (how it was
//! given and who recorded it) and where the asking stands, "ask again", and the form to record an
//! opt-in the member gave by phone or on paper (nothing pre-selected).

use baton_vocab::OptIn;
use baton_vocab::views::requests::PreviousPlanView;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use super::requests::{iso, request_state_label, result_label};
use crate::error::AppError;
use crate::i18n::{t, use_i18n};

#[cfg(feature = "ssr")]
fn member_page(member: &str, outcome: &str) -> String {
    format!("/staff/members/{}?{outcome}#previous-title", super::members::encode(member))
}

/// Staff record a previous coverage and the opt-in the member gave by phone or on paper.
#[server(endpoint = "staff/member/opt_in")]
#[allow(clippy::too_many_arguments)]
pub async fn staff_record_opt_in(
    member: String,
    payer: String,
    member_id: String,
    start: Option<String>,
    end: Option<String>,
    concurrent: Option<String>,
    channel: Option<String>,
    sensitive: Option<String>,
    agreed_on: Option<String>,
) -> Result<(), AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let form = baton_staff::StaffOptIn {
        payer,
        member_id,
        start: start.unwrap_or_default(),
        end: end.unwrap_or_default(),
        concurrent: concurrent.is_some(),
        channel: channel.unwrap_or_default(),
        sensitive: sensitive.unwrap_or_default(),
        agreed_on: agreed_on.unwrap_or_default(),
    };
    match services.console.record_opt_in(&staff, &member, &form).await {
        Ok(()) => leptos_axum::redirect(&member_page(&member, "opt_in=recorded")),
        Err(baton_staff::ConsoleError::Invalid(field)) => {
            leptos_axum::redirect(&member_page(&member, &format!("opt_in_problem={field}")))
        }
        Err(error) => return Err(crate::ssr::console_error(error)),
    }
    Ok(())
}

/// Staff ask a member's previous plan again (at the next scheduling tick).
#[server(endpoint = "staff/member/ask_again")]
pub async fn staff_ask_again(member: String, coverage: String) -> Result<(), AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let asked = services.console.ask_again(&staff, &member, &coverage).await.map_err(crate::ssr::console_error)?;
    leptos_axum::redirect(&member_page(&member, if asked { "asked=1" } else { "problem=state" }));
    Ok(())
}

#[component]
pub fn StaffPreviousPlans(account: i64, plans: Vec<PreviousPlanView>, payers: Vec<(String, String)>) -> AnyView {
    let i18n = use_i18n();
    let query = use_query_map();
    let recorded = query.read_untracked().get("opt_in").is_some();
    let asked = query.read_untracked().get("asked").is_some();
    let problem = query.read_untracked().get("opt_in_problem");
    view! {
        <section aria-labelledby="previous-title" class="card">
            <h2 id="previous-title">{t!(i18n, requests.previous_title)}</h2>
            {recorded.then(|| view! { <p class="alert" role="status" id="opt-in-recorded">{t!(i18n, requests.recorded)}</p> })}
            {asked.then(|| view! { <p class="alert" role="status" id="asked-again">{t!(i18n, requests.asked_again)}</p> })}
            {if plans.is_empty() {
                view! { <p id="no-previous">{t!(i18n, requests.previous_none)}</p> }.into_any()
            } else {
                view! {
                    <div class="table-scroll" tabindex="0" role="region" aria-labelledby="previous-title">
                    <table class="data" id="member-previous">
                        <thead><tr>
                            <th scope="col">{t!(i18n, console.old_plan)}</th>
                            <th scope="col">{t!(i18n, requests.card_id)}</th>
                            <th scope="col">{t!(i18n, requests.opt_in)}</th>
                            <th scope="col">{t!(i18n, requests.last_request)}</th>
                            <th scope="col"><span class="visually-hidden">{t!(i18n, requests.actions)}</span></th>
                        </tr></thead>
                        <tbody>{plans.into_iter().map(|plan| view! { <PlanRow account plan/> }).collect_view()}</tbody>
                    </table>
                    </div>
                }.into_any()
            }}
            <OptInForm account payers problem/>
        </section>
    }
    .into_any()
}

#[component]
fn PlanRow(account: i64, plan: PreviousPlanView) -> AnyView {
    let i18n = use_i18n();
    let opt_in = match plan.opt_in {
        OptIn::In => t!(i18n, requests.opt_in_in).into_any(),
        OptIn::Out => t!(i18n, requests.opt_in_out).into_any(),
        OptIn::Unknown => t!(i18n, requests.opt_in_unknown).into_any(),
    };
    // When, how, who recorded it, the sensitive choice and until when, in words.
    let how = view! {
        {plan.opted_on.map(|d| view! { <span>{iso(d)}</span> })}
        {plan.channel.map(|c| view! { " · " {crate::pages::previous_plans::channel_label(c)} })}
        {plan.recorded_by.clone().map(|by| view! { " · " {t!(i18n, requests.recorded_by, by = by.clone())} })}
        {plan.include_sensitive.map(|s| view! { " · " {if s {
            t!(i18n, console.policy_sensitive).into_any()
        } else {
            t!(i18n, console.policy_regular).into_any()
        }} })}
        {plan.until.map(|d| view! { " · " {t!(i18n, requests.until, date = iso(d))} })}
    };
    let request = plan.request.clone().map(|r| {
        view! {
            <A exact=true href=format!("/staff/requests/{}", r.request_id)>{iso(r.asked_on)}</A>
            ": " {request_state_label(r.state)} " — " {result_label(r.result)}
        }
    });
    view! {
        <tr data-payer=plan.payer_id.clone() data-opt-in=plan.opt_in.as_str()>
            <td>{plan.payer_name.clone()}{plan.concurrent.then(|| view! { <br/><span class="muted">{t!(i18n, requests.concurrent)}</span> })}</td>
            <td>{plan.member_id.clone()}</td>
            <td>{opt_in}<br/><span class="muted">{how}</span></td>
            <td>{request.map_or_else(|| "–".into_any(), IntoAny::into_any)}</td>
            <td>{(plan.opt_in == OptIn::In).then(|| view! {
                <form method="post" action=StaffAskAgain::url() class="inline-form">
                    <input type="hidden" name="member" value=account.to_string()/>
                    <input type="hidden" name="coverage" value=plan.coverage_id.clone()/>
                    <button type="submit" class="button button--secondary">{t!(i18n, requests.ask_again)}</button>
                </form>
            })}</td>
        </tr>
    }
    .into_any()
}

/// Recording an opt-in given by phone or on paper.
#[component]
fn OptInForm(account: i64, payers: Vec<(String, String)>, problem: Option<String>) -> AnyView {
    let i18n = use_i18n();
    let said = problem.map(|field| {
        let words = match field.as_str() {
            "payer" => t!(i18n, console.old_plan).into_any(),
            "member_id" => t!(i18n, requests.card_id).into_any(),
            "start" => t!(i18n, previous.form_start).into_any(),
            "end" => t!(i18n, previous.form_end).into_any(),
            "channel" => t!(i18n, requests.channel).into_any(),
            "sensitive" => t!(i18n, requests.sensitive_legend).into_any(),
            "agreed_on" => t!(i18n, requests.agreed_on).into_any(),
            _ => t!(i18n, requests.problem_closed).into_any(),
        };
        view! {
            <p class="alert alert--error" role="alert" id="opt-in-problem" data-problem=field.clone()>
                {t!(i18n, requests.problem)}" "<strong>{words}</strong>
            </p>
        }
    });
    view! {
        <h3 id="opt-in-title">{t!(i18n, requests.record_title)}</h3>
        {said}
        <form method="post" action=StaffRecordOptIn::url() class="form" aria-labelledby="opt-in-title">
            <input type="hidden" name="member" value=account.to_string()/>
            <div class="field">
                <label for="opt-payer">{t!(i18n, console.old_plan)}</label>
                <select id="opt-payer" name="payer" required>
                    <option value="">{t!(i18n, previous.form_payer_choose)}</option>
                    {payers.into_iter().map(|(id, name)| view! { <option value=id>{name}</option> }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="opt-member-id">{t!(i18n, requests.card_id)}</label>
                <input id="opt-member-id" name="member_id" type="text" maxlength="100" autocomplete="off" required/>
            </div>
            <div class="field">
                <label for="opt-start">{t!(i18n, previous.form_start)}</label>
                <input id="opt-start" name="start" type="date"/>
            </div>
            <div class="field">
                <label for="opt-end">{t!(i18n, previous.form_end)}</label>
                <input id="opt-end" name="end" type="date"/>
            </div>
            <div class="choice__option">
                <input type="checkbox" id="opt-concurrent" name="concurrent" value="yes"/>
                <label for="opt-concurrent">{t!(i18n, requests.concurrent)}</label>
            </div>
            <fieldset class="choice">
                <legend>{t!(i18n, requests.channel)}</legend>
                <div class="choice__option">
                    <input type="radio" id="opt-phone" name="channel" value="phone" required/>
                    <label for="opt-phone">{t!(i18n, previous.channel_phone)}</label>
                </div>
                <div class="choice__option">
                    <input type="radio" id="opt-paper" name="channel" value="paper"/>
                    <label for="opt-paper">{t!(i18n, previous.channel_paper)}</label>
                </div>
            </fieldset>
            <fieldset class="choice">
                <legend>{t!(i18n, requests.sensitive_legend)}</legend>
                <div class="choice__option">
                    <input type="radio" id="opt-include" name="sensitive" value="include" required/>
                    <label for="opt-include">{t!(i18n, requests.sensitive_include)}</label>
                </div>
                <div class="choice__option">
                    <input type="radio" id="opt-exclude" name="sensitive" value="exclude"/>
                    <label for="opt-exclude">{t!(i18n, requests.sensitive_exclude)}</label>
                </div>
            </fieldset>
            <div class="field">
                <label for="opt-agreed">{t!(i18n, requests.agreed_on)}</label>
                <input id="opt-agreed" name="agreed_on" type="date"/>
            </div>
            <button type="submit" class="button" id="record-opt-in">{t!(i18n, requests.record_submit)}</button>
        </form>
    }
    .into_any()
}
