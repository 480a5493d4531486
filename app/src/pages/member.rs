use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::components::outcome::outcome;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

/// What the member home shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberHomeData {
    pub display_name: String,
    pub member_id: Option<String>,
    /// Coverage start as (year, month, day).
    pub coverage_start: Option<(i32, u8, u8)>,
}

#[server(endpoint = "member/home")]
pub async fn load_member_home() -> Result<MemberHomeData, AppError> {
    let account = crate::ssr::require(|roles| roles.has(baton_accounts::Role::Member)).await?;
    Ok(MemberHomeData {
        display_name: account.display_name,
        member_id: account.member_id,
        coverage_start: account.coverage_start.map(|d| (d.year(), u8::from(d.month()), d.day())),
    })
}

#[component]
pub fn MemberHome() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| load_member_home());
    view! {
        <Title text=move || t_string!(i18n, nav.member_home).to_string()/>
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, |home: MemberHomeData| {
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
                    <section class="card card--feature" aria-labelledby="bring-title">
                        <h2 id="bring-title">{t!(i18n, member.bring_title)}</h2>
                        <p>{t!(i18n, member.bring_body)}</p>
                    </section>
                }
            }))}
        </Suspense>
    }
}

/// An ICU calendar date for locale-aware formatting.
pub fn icu_date(
    year: i32,
    month: u8,
    day: u8,
) -> Option<leptos_i18n::reexports::icu::calendar::Date<leptos_i18n::reexports::icu::calendar::Iso>> {
    leptos_i18n::reexports::icu::calendar::Date::try_new_iso(year, month, day).ok()
}
