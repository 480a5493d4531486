//! The sign-in form. Without JavaScript it is a plain POST to the `sign_in` server function,
//! which redirects (errors come back in the URL). Hydrated, it checks the fields inline
//! first and submits in the background.

use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};
use crate::session::SignIn;
use crate::use_auth;

#[component]
pub fn SignInPage() -> impl IntoView {
    let i18n = use_i18n();
    let auth = use_auth();
    let sign_in = ServerAction::<SignIn>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();

    let username_missing = RwSignal::new(false);
    let password_missing = RwSignal::new(false);
    let username_ref = NodeRef::<html::Input>::new();
    let password_ref = NodeRef::<html::Input>::new();
    let error_ref = NodeRef::<html::Div>::new();

    // Once hydrated, this page validates inline instead of with the browser's bubbles.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    // A successful sign-in changes the session every page shows.
    Effect::new(move |_| {
        if matches!(sign_in.value().get(), Some(Ok(()))) {
            auth.changed.update(|n| *n += 1);
        }
    });
    // A failed one moves focus to the message so screen readers announce it.
    Effect::new(move |_| {
        if matches!(sign_in.value().get(), Some(Err(_)))
            && let Some(alert) = error_ref.get()
        {
            let _ = alert.focus();
        }
    });

    // The fields are read from the page when the form is sent, not mirrored in signals: what a
    // person typed before the page hydrated counts too.
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let username = username_ref.get_untracked().map(|input| input.value()).unwrap_or_default();
        let password = password_ref.get_untracked().map(|input| input.value()).unwrap_or_default();
        let missing_name = username.trim().is_empty();
        let missing_password = password.is_empty();
        username_missing.set(missing_name);
        password_missing.set(missing_password);
        if missing_name {
            if let Some(input) = username_ref.get_untracked() {
                let _ = input.focus();
            }
            return;
        }
        if missing_password {
            if let Some(input) = password_ref.get_untracked() {
                let _ = input.focus();
            }
            return;
        }
        sign_in.dispatch(SignIn { username, password, next: Some(next()) });
    };

    let server_error = move || sign_in.value().get().and_then(Result::err);
    let pending = sign_in.pending();

    view! {
        <Title text=t_string!(i18n, sign_in.title).to_string()/>
        <section class="card card--narrow" aria-labelledby="sign-in-title">
            <h1 id="sign-in-title">{t!(i18n, sign_in.title)}</h1>
            <Transition>
                <p>{move || {
                    let plan = use_auth().session.get().and_then(Result::ok).map(|s| s.plan_name).unwrap_or_default();
                    t!(i18n, sign_in.intro, plan = plan.clone())
                }}</p>
            </Transition>
            {move || server_error().map(|error| view! {
                <div class="alert alert--error" role="alert" tabindex="-1" node_ref=error_ref id="sign-in-error">
                    <h2 class="alert__title">{t!(i18n, sign_in.error_title)}</h2>
                    <p>{sign_in_message(error)}</p>
                </div>
            })}
            <form method="post" action=SignIn::url() on:submit=on_submit novalidate=move || hydrated.get() class="form">
                <input type="hidden" name="next" value=next/>
                <div class="field">
                    <label for="username">{t!(i18n, sign_in.username)}</label>
                    <input
                        id="username"
                        name="username"
                        type="text"
                        autocomplete="username"
                        autocapitalize="none"
                        spellcheck="false"
                        required
                        node_ref=username_ref
                        on:input=move |_| username_missing.set(false)
                        aria-invalid=move || username_missing.get().then_some("true")
                        aria-describedby=move || username_missing.get().then_some("username-error")
                    />
                    <Show when=move || username_missing.get()>
                        <p id="username-error" class="field__error">{t!(i18n, sign_in.username_required)}</p>
                    </Show>
                </div>
                <div class="field">
                    <label for="password">{t!(i18n, sign_in.password)}</label>
                    <input
                        id="password"
                        name="password"
                        type="password"
                        autocomplete="current-password"
                        required
                        node_ref=password_ref
                        on:input=move |_| password_missing.set(false)
                        aria-invalid=move || password_missing.get().then_some("true")
                        aria-describedby=move || password_missing.get().then_some("password-error")
                    />
                    <Show when=move || password_missing.get()>
                        <p id="password-error" class="field__error">{t!(i18n, sign_in.password_required)}</p>
                    </Show>
                </div>
                <button type="submit" class="button" disabled=move || pending.get()>
                    {move || if pending.get() {
                        t!(i18n, sign_in.submitting).into_any()
                    } else {
                        t!(i18n, sign_in.submit).into_any()
                    }}
                </button>
            </form>
        </section>
    }
}

/// The words for a failed sign-in.
fn sign_in_message(error: AppError) -> AnyView {
    let i18n = use_i18n();
    match error {
        AppError::InvalidCredentials => t!(i18n, sign_in.invalid).into_any(),
        AppError::Invalid { field } if field == "username" => t!(i18n, sign_in.username_required).into_any(),
        AppError::Invalid { .. } => t!(i18n, sign_in.password_required).into_any(),
        AppError::TooManyAttempts { retry_after_secs } => {
            let minutes = retry_after_secs.div_ceil(60).max(1);
            t!(i18n, sign_in.throttled, count = move || minutes).into_any()
        }
        _ => t!(i18n, sign_in.unavailable).into_any(),
    }
}
