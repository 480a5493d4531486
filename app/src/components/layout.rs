//! The frame around every page: skip link, header (plan, navigation, language, sign-out), main.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_location;

use leptos_i18n::Locale as _;

use crate::i18n::{Locale, t, t_string, use_i18n};
use crate::session::SignOut;
use crate::use_auth;

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let i18n = use_i18n();
    // Set once the browser has hydrated the page (effects never run on the server); tests and
    // styles can tell a live page from server-rendered HTML.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <a class="skip-link" href="#main">{t!(i18n, skip_to_content)}</a>
        <header class="site-header">
            <div class="site-header__inner">
                <Brand/>
                <Navigation/>
                <LanguageSwitcher/>
            </div>
        </header>
        <main id="main" tabindex="-1" class="site-main" data-hydrated=move || hydrated.get().then_some("true")>
            {children()}
        </main>
    }
}

#[component]
fn Brand() -> impl IntoView {
    let i18n = use_i18n();
    let auth = use_auth();
    let plan = move || auth.session.get().and_then(Result::ok).map(|s| s.plan_name).unwrap_or_default();
    view! {
        <div class="brand">
            <A exact=true href="/" attr:class="brand__name">{t!(i18n, app_name)}</A>
            <Transition>
                <span class="brand__plan">{plan}</span>
            </Transition>
        </div>
    }
}

#[component]
fn Navigation() -> impl IntoView {
    let i18n = use_i18n();
    let auth = use_auth();
    view! {
        <nav class="site-nav" aria-label=move || t_string!(i18n, nav.label)>
            <Transition fallback=|| ()>
                {move || {
                    let user = auth.session.get().and_then(Result::ok).and_then(|s| s.user);
                    match user {
                        None => view! {
                            <ul class="site-nav__list">
                                <li><A exact=true href="/sign-in">{t!(i18n, nav.sign_in)}</A></li>
                            </ul>
                        }.into_any(),
                        Some(user) => {
                            let name = user.display_name.clone();
                            view! {
                                <ul class="site-nav__list">
                                    {user.is_member.then(|| view! {
                                        <li><A exact=true href="/member">{t!(i18n, nav.member_home)}</A></li>
                                    })}
                                    {user.is_staff.then(|| view! {
                                        <li><A exact=true href="/staff">{t!(i18n, nav.staff_home)}</A></li>
                                    })}
                                    <li class="site-nav__who">{t!(i18n, nav.signed_in_as, name = name.clone())}</li>
                                    <li>
                                        <ActionForm action=auth.sign_out attr:class="inline-form">
                                            <button type="submit" class="button button--quiet">
                                                {t!(i18n, nav.sign_out)}
                                            </button>
                                        </ActionForm>
                                    </li>
                                </ul>
                            }.into_any()
                        }
                    }
                }}
            </Transition>
        </nav>
    }
}

/// Links that set the language cookie on the server and come back here: they work with or
/// without JavaScript, and the whole page (server-formatted text included) switches.
#[component]
fn LanguageSwitcher() -> impl IntoView {
    let i18n = use_i18n();
    let location = use_location();
    let here = move || {
        let path = location.pathname.get();
        let search = location.search.get();
        if search.is_empty() { path } else { format!("{path}?{search}") }
    };
    let link = move |locale: Locale| {
        let next = crate::url::encode(&here());
        format!("/locale/{}?next={next}", locale.as_str())
    };
    let current = move |locale: Locale| (i18n.get_locale() == locale).then_some("true");
    view! {
        <div class="lang-switch" role="group" aria-label=move || t_string!(i18n, nav.language)>
            <a href=move || link(Locale::en) rel="external" hreflang="en" lang="en" aria-current=move || current(Locale::en)>
                {t!(i18n, nav.english)}
            </a>
            <a href=move || link(Locale::es) rel="external" hreflang="es" lang="es" aria-current=move || current(Locale::es)>
                {t!(i18n, nav.spanish)}
            </a>
        </div>
    }
}

// Keep the type referenced so the sign-out action's server function is registered.
#[allow(dead_code)]
type _SignOut = SignOut;
