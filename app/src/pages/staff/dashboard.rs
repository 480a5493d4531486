//! The dashboard: transfers by state, a chart of the last 30 days, and members who have not
//! asked for their previous plan's records within a week of their coverage start.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::{StaffNav, state_label};
use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

pub use baton_vocab::views::staff::{DayBar, StaffHome as StaffHomeData};

#[server(endpoint = "staff/home")]
pub async fn load_staff_home() -> Result<StaffHomeData, AppError> {
    let staff = crate::ssr::require_staff().await?;
    let services = crate::ssr::services()?;
    let today = time::OffsetDateTime::now_utc().date();
    services.console.home(&staff, today).await.map_err(crate::ssr::console_error)
}

#[component]
pub fn StaffHome() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| load_staff_home());
    view! {
        <Title text=t_string!(i18n, staff.title).to_string()/>
        <Loaded data=data render={move |home: StaffHomeData| {
                let name = home.display_name.clone();
                let members = home.members;
                let total: u64 = home.states.iter().map(|(_, n)| n).sum();
                view! {
                    <StaffNav admin=home.admin/>
                    <h1>{t!(i18n, staff.title)}</h1>
                    <p>{t!(i18n, staff.welcome, name = name.clone())}</p>
                    <dl class="stats" id="transfer-states">
                        <div class="stat">
                            <dt>{t!(i18n, staff.members_enrolled)}</dt>
                            <dd>{t!(i18n, staff.members_count, count = move || members)}</dd>
                        </div>
                        <div class="stat">
                            <dt>{t!(i18n, console.transfers_total)}</dt>
                            <dd>{total}</dd>
                        </div>
                        {home.states.into_iter().map(|(state, n)| {
                            let href = format!("/staff/transfers?state={state}");
                            let label = state_label(state);
                            view! {
                                <div class="stat" data-state=state.as_str()>
                                    <dt><A exact=true href=href>{label}</A></dt>
                                    <dd>{n}</dd>
                                </div>
                            }
                        }).collect_view()}
                    </dl>
                    <Chart days=home.days/>
                    <section aria-labelledby="late-title">
                        <h2 id="late-title">{t!(i18n, console.late_title)}</h2>
                        <p class="field__hint">{t!(i18n, console.late_hint)}</p>
                        {if home.late.is_empty() {
                            view! { <p>{t!(i18n, console.late_none)}</p> }.into_any()
                        } else {
                            view! {
                                <table class="data" id="late-members">
                                    <thead><tr>
                                        <th scope="col">{t!(i18n, console.member_name)}</th>
                                        <th scope="col">{t!(i18n, console.member_id)}</th>
                                        <th scope="col">{t!(i18n, console.coverage_start)}</th>
                                    </tr></thead>
                                    <tbody>
                                        {home.late.into_iter().map(|m| view! {
                                            <tr>
                                                <td><A exact=true href=format!("/staff/members/{}", m.account)>{m.name}</A></td>
                                                <td>{m.member_id}</td>
                                                <td>{m.coverage_start}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                    </section>
                }
            }}/>
    }
}

/// Grouped bars per day, drawn as SVG on the server; the same figures follow as a table
/// for screen readers and for anyone who prefers numbers.
#[component]
fn Chart(days: Vec<DayBar>) -> impl IntoView {
    let i18n = use_i18n();
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 200.0;
    const BOTTOM: f64 = 20.0;
    let max = days.iter().flat_map(|d| [d.started, d.completed, d.failed]).max().unwrap_or(0).max(1);
    let slot = WIDTH / days.len().max(1) as f64;
    let bar = (slot / 4.0).max(1.0);
    let scale = move |n: u32| (HEIGHT - BOTTOM - 10.0) * f64::from(n) / f64::from(max);
    let rects = days
        .iter()
        .enumerate()
        .flat_map(|(i, d)| {
            let x = i as f64 * slot + bar / 2.0;
            [(0.0, d.started, "chart__started"), (bar, d.completed, "chart__completed"), (2.0 * bar, d.failed, "chart__failed")]
                .into_iter()
                .map(move |(dx, n, class)| {
                    let h = scale(n);
                    view! {
                        <rect class=class x=format!("{:.1}", x + dx) y=format!("{:.1}", HEIGHT - BOTTOM - h)
                            width=format!("{bar:.1}") height=format!("{h:.1}")><title>{format!("{}: {n}", d.day)}</title></rect>
                    }
                })
        })
        .collect_view();
    let first = days.first().map(|d| d.day.clone()).unwrap_or_default();
    let last = days.last().map(|d| d.day.clone()).unwrap_or_default();
    view! {
        <section aria-labelledby="chart-title" class="card">
            <h2 id="chart-title">{t!(i18n, console.chart_title)}</h2>
            <ul class="chart__legend">
                <li><span class="chart__key chart__started"></span>{t!(i18n, console.chart_started)}</li>
                <li><span class="chart__key chart__completed"></span>{t!(i18n, console.chart_completed)}</li>
                <li><span class="chart__key chart__failed"></span>{t!(i18n, console.chart_failed)}</li>
            </ul>
            // The labels are page text beside the drawing, so they keep their size when the
            // drawing is squeezed onto a phone.
            <p class="chart__label" aria-hidden="true">{max}</p>
            <svg class="chart" id="transfers-chart" viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img"
                aria-labelledby="chart-title" preserveAspectRatio="none">
                <line class="chart__axis" x1="0" y1=format!("{}", HEIGHT - BOTTOM) x2=format!("{WIDTH}") y2=format!("{}", HEIGHT - BOTTOM)></line>
                {rects}
            </svg>
            <p class="chart__dates" aria-hidden="true"><span>{first}</span><span>{last}</span></p>
            <details>
                <summary>{t!(i18n, console.chart_table)}</summary>
                <table class="data">
                    <thead><tr>
                        <th scope="col">{t!(i18n, console.day)}</th>
                        <th scope="col" class="num">{t!(i18n, console.chart_started)}</th>
                        <th scope="col" class="num">{t!(i18n, console.chart_completed)}</th>
                        <th scope="col" class="num">{t!(i18n, console.chart_failed)}</th>
                    </tr></thead>
                    <tbody>
                        {days.into_iter().rev().filter(|d| d.started + d.completed + d.failed > 0).map(|d| view! {
                            <tr><th scope="row">{d.day}</th><td class="num">{d.started}</td><td class="num">{d.completed}</td><td class="num">{d.failed}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </details>
        </section>
    }
}
