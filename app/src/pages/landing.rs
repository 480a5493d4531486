use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::i18n::{t, t_string, use_i18n};
use crate::use_auth;

/// The front door: what Baton does, and the way in.
#[component]
pub fn Landing() -> impl IntoView {
    let i18n = use_i18n();
    let auth = use_auth();
    view! {
        <Title text=t_string!(i18n, landing.title).to_string()/>
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || auth.session.get().map(|session| {
                let session = session.ok();
                let plan = session.as_ref().map(|s| s.plan_name.clone()).unwrap_or_default();
                let home = session.and_then(|s| s.user).map(|u| u.home());
                view! {
                    <section class="hero" aria-labelledby="landing-title">
                        <h1 id="landing-title">{t!(i18n, landing.title)}</h1>
                        <p class="lead">{t!(i18n, landing.lead, plan = plan.clone())}</p>
                        <ul class="checklist">
                            <li>{t!(i18n, landing.point_claims)}</li>
                            <li>{t!(i18n, landing.point_clinical)}</li>
                            <li>{t!(i18n, landing.point_control)}</li>
                        </ul>
                        {match home {
                            Some(home) => view! {
                                <A exact=true href=home attr:class="button">{t!(i18n, nav.member_home)}</A>
                            }.into_any(),
                            None => view! {
                                <A exact=true href="/sign-in" attr:class="button">{t!(i18n, landing.cta)}</A>
                            }.into_any(),
                        }}
                    </section>
                }
            })}
        </Suspense>
    }
}
