use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::i18n::{t, t_string, use_i18n};

#[component]
pub fn NotFound() -> impl IntoView {
    let i18n = use_i18n();
    #[cfg(feature = "ssr")]
    crate::ssr::set_status(404);
    view! {
        <Title text=t_string!(i18n, errors.not_found_title).to_string()/>
        <section class="card" aria-labelledby="not-found-title">
            <h1 id="not-found-title">{t!(i18n, errors.not_found_title)}</h1>
            <p>{t!(i18n, errors.not_found_body)}</p>
            <p><A exact=true href="/">{t!(i18n, errors.go_home)}</A></p>
        </section>
    }
}
