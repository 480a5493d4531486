use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::components::outcome::outcome;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

/// What the staff home shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffHomeData {
    pub display_name: String,
    pub members: u64,
}

#[server(endpoint = "staff/home")]
pub async fn load_staff_home() -> Result<StaffHomeData, AppError> {
    let account = crate::ssr::require(|roles| roles.is_staff()).await?;
    let services = crate::ssr::services()?;
    let members = services.store.count_accounts_with_role("member").await.map_err(|error| {
        tracing::error!(%error, "cannot count members");
        AppError::Unavailable
    })?;
    Ok(StaffHomeData { display_name: account.display_name, members })
}

#[component]
pub fn StaffHome() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| load_staff_home());
    view! {
        <Title text=move || t_string!(i18n, staff.title).to_string()/>
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, |home: StaffHomeData| {
                let name = home.display_name.clone();
                let members = home.members;
                view! {
                    <h1>{t!(i18n, staff.title)}</h1>
                    <p>{t!(i18n, staff.welcome, name = name.clone())}</p>
                    <dl class="stats">
                        <div class="stat">
                            <dt>{t!(i18n, staff.members_enrolled)}</dt>
                            <dd>{t!(i18n, staff.members_count, count = move || members)}</dd>
                        </div>
                    </dl>
                }
            }))}
        </Suspense>
    }
}
