//! Importing the enrollment roster: upload (CSV or FHIR Bundle), preview with each row's
//! errors, then commit. The upload is a plain multipart form handled by the server
//! (`server/src/http/staff.rs`); the preview and the commit are here.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::StaffNav;
use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

use baton_vocab::views::console::{RosterCounts, RosterImportView, RosterOutcome};

#[server(endpoint = "staff/roster")]
pub async fn load_roster_import(id: String) -> Result<RosterImportView, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    services.console.roster_import(&staff, &id).await.map_err(crate::ssr::console_error)
}

/// Writes the previewed roster (once: a second commit of the same upload does nothing).
#[server(endpoint = "staff/roster/commit")]
pub async fn commit_roster(id: String) -> Result<(), AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    services.console.commit_roster(&staff, &id).await.map_err(crate::ssr::console_error)?;
    leptos_axum::redirect(&format!("/staff/roster/{id}"));
    Ok(())
}

#[server(endpoint = "staff/roster/form")]
pub async fn roster_form() -> Result<bool, AppError> {
    let staff = crate::ssr::require_staff().await?;
    Ok(staff.roles.has(baton_accounts::Role::Admin))
}

#[component]
pub fn RosterPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let problem = move || query.read().get("problem");
    let data = Resource::new(|| (), |_| roster_form());
    view! {
        <Title text=t_string!(i18n, console.roster_title).to_string()/>
        <Loaded data=data render={move |admin: bool| view! {
                <StaffNav admin/>
                <h1>{t!(i18n, console.roster_title)}</h1>
                {problem().map(|p| view! { <p class="alert" role="alert" id="roster-problem">{match p.as_str() {
                    "empty" => t!(i18n, console.roster_problem_empty).into_any(),
                    "large" => t!(i18n, console.roster_problem_large).into_any(),
                    _ => t!(i18n, console.roster_problem_unreadable).into_any(),
                }}</p> })}
                <p>{t!(i18n, console.roster_intro)}</p>
                <pre class="json" tabindex="0"><code>"member_id,given_name,family_name,birth_date,sex,email,coverage_start,plan\nNP-1001,Rosa,Diaz,1980-04-23,F,rosa@example.org,2026-01-01,Gold PPO"</code></pre>
                <form method="post" action="/staff/roster" enctype="multipart/form-data" class="form">
                    <div class="field">
                        <label for="roster-file">{t!(i18n, console.roster_file)}</label>
                        <input id="roster-file" name="file" type="file" accept=".csv,.json,text/csv,application/json,application/fhir+json"/>
                    </div>
                    <div class="field">
                        <label for="roster-text">{t!(i18n, console.roster_paste)}</label>
                        <textarea id="roster-text" name="text" rows="6"></textarea>
                    </div>
                    <button type="submit" class="button">{t!(i18n, console.roster_preview)}</button>
                </form>
            }}/>
    }
}

#[component]
pub fn RosterImportPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let data = Resource::new(id, load_roster_import);
    view! {
        <Title text=t_string!(i18n, console.roster_title).to_string()/>
        <Loaded data=data render={move |v: RosterImportView| view! { <ImportDetails v/> }}/>
    }
}

#[component]
fn ImportDetails(v: RosterImportView) -> impl IntoView {
    let i18n = use_i18n();
    let valid = v.valid;
    let invalid = v.invalid;
    let file = if v.file_name.is_empty() { v.format.clone() } else { v.file_name.clone() };
    view! {
        <StaffNav admin=v.admin/>
        <h1>{t!(i18n, console.roster_import_title, file = file.clone())}</h1>
        {v.file_error.clone().map(|e| view! { <p class="alert" role="alert" id="file-error">{e}</p> })}
        {match (v.report.clone(), v.counts) {
            (Some(report), Some(RosterCounts { created, updated, unchanged, failed })) => view! {
                <section aria-labelledby="report-title" class="card">
                    <h2 id="report-title">{t!(i18n, console.roster_done, at = v.committed_at.clone().unwrap_or_default())}</h2>
                    <p id="report-counts">{t!(i18n, console.roster_counts, created = move || created, updated = move || updated,
                        unchanged = move || unchanged, failed = move || failed)}</p>
                    <table class="data" id="roster-report">
                        <thead><tr>
                            <th scope="col">{t!(i18n, console.member_id)}</th>
                            <th scope="col">{t!(i18n, console.member_name)}</th>
                            <th scope="col">{t!(i18n, console.outcome)}</th>
                            <th scope="col">{t!(i18n, console.invitation_title)}</th>
                        </tr></thead>
                        <tbody>{report.into_iter().map(|r| view! {
                            <tr data-outcome=r.outcome.as_str()>
                                <td>{r.member_id.clone()}</td>
                                <td>{match r.account {
                                    Some(a) => view! { <A exact=true href=format!("/staff/members/{a}")>{r.name.clone()}</A> }.into_any(),
                                    None => r.name.clone().into_any(),
                                }}</td>
                                <td>{outcome_label(r.outcome)}{r.reason.clone().map(|reason| format!(": {reason}"))}
                                    {r.notes.iter().map(|note| view! { <br/><small>{note.clone()}</small> }).collect_view()}</td>
                                <td>{r.invitation_link.clone().map(|link| view! {
                                    <input class="copy" type="text" readonly value=link
                                        aria-label=format!("{} {}", t_string!(i18n, console.invitation_title), r.member_id)/>
                                })}</td>
                            </tr>
                        }).collect_view()}</tbody>
                    </table>
                </section>
            }.into_any(),
            _ => view! {
                <p id="preview-counts">{t!(i18n, console.roster_preview_counts, valid = move || valid, invalid = move || invalid)}</p>
                {(valid > 0).then(|| view! {
                    <form method="post" action=CommitRoster::url() class="inline-form">
                        <input type="hidden" name="id" value=v.id.clone()/>
                        <button type="submit" class="button" id="commit-roster">{t!(i18n, console.roster_commit, count = move || valid)}</button>
                    </form>
                })}
                {(invalid > 0).then(|| view! { <p class="field__hint">{t!(i18n, console.roster_invalid_hint)}</p> })}
            }.into_any(),
        }}
        <table class="data" id="roster-preview">
            <thead><tr>
                <th scope="col">{t!(i18n, console.row)}</th>
                <th scope="col">{t!(i18n, console.member_id)}</th>
                <th scope="col">{t!(i18n, console.member_name)}</th>
                <th scope="col">{t!(i18n, console.birth_date)}</th>
                <th scope="col">{t!(i18n, console.coverage_start)}</th>
                <th scope="col">{t!(i18n, console.plan)}</th>
                <th scope="col">{t!(i18n, console.problems)}</th>
            </tr></thead>
            <tbody>{v.rows.into_iter().map(|r| {
                let ok = r.errors.is_empty();
                view! {
                    <tr class:row--error=!ok data-row=r.number.to_string()>
                        <th scope="row">{r.number}</th>
                        <td>{r.member_id}</td>
                        <td>{r.name}</td>
                        <td>{r.birth_date}</td>
                        <td>{r.coverage_start}</td>
                        <td>{r.plan}</td>
                        <td>{if ok {
                            t!(i18n, console.row_ok).into_any()
                        } else {
                            view! { <ul class="errors">{r.errors.into_iter().map(|e| view! { <li>{e}</li> }).collect_view()}</ul> }.into_any()
                        }}</td>
                    </tr>
                }
            }).collect_view()}</tbody>
        </table>
        <p><A exact=true href="/staff/roster">{t!(i18n, console.roster_another)}</A></p>
    }
}

fn outcome_label(outcome: RosterOutcome) -> AnyView {
    let i18n = use_i18n();
    match outcome {
        RosterOutcome::Created => t!(i18n, console.outcome_created).into_any(),
        RosterOutcome::Updated => t!(i18n, console.outcome_updated).into_any(),
        RosterOutcome::Unchanged => t!(i18n, console.outcome_unchanged).into_any(),
        RosterOutcome::Failed => t!(i18n, console.outcome_failed).into_any(),
    }
}
