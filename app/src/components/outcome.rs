//! How a page shows what its server function answered: the data, a redirect to sign in, or a
//! plain-language error (with the right HTTP status when rendered on the server).

use leptos::prelude::*;
use leptos_router::components::{A, Redirect};
use leptos_router::hooks::use_location;

use crate::error::AppError;
use crate::i18n::{t, use_i18n};

/// Renders `ok(value)`, or what the error means for the visitor.
pub fn outcome<T, V>(result: Result<T, AppError>, ok: impl FnOnce(T) -> V) -> AnyView
where
    V: IntoView + 'static,
{
    match result {
        Ok(value) => ok(value).into_any(),
        Err(AppError::SignInRequired) => view! { <SignInRedirect/> }.into_any(),
        Err(error) => view! { <ErrorMessage error/> }.into_any(),
    }
}

/// Sends the visitor to the sign-in page, coming back here afterwards.
#[component]
fn SignInRedirect() -> impl IntoView {
    let location = use_location();
    let path = location.pathname.get_untracked();
    let next = crate::url::encode(&path);
    view! { <Redirect path=format!("/sign-in?next={next}")/> }
}

#[component]
pub fn ErrorMessage(error: AppError) -> impl IntoView {
    let i18n = use_i18n();
    #[cfg(feature = "ssr")]
    crate::ssr::set_status(error.status());
    let message = match error {
        AppError::Forbidden => t!(i18n, errors.forbidden).into_any(),
        AppError::NotFound => t!(i18n, errors.not_found_body).into_any(),
        AppError::SignInRequired => t!(i18n, errors.sign_in_needed).into_any(),
        _ => t!(i18n, errors.server).into_any(),
    };
    view! {
        <section class="card" role="alert">
            <p>{message}</p>
            <p><A exact=true href="/">{t!(i18n, errors.go_home)}</A></p>
        </section>
    }
}

/// What every page does with its server function's answer: "Loading…" while `data` loads,
/// then [`outcome`] of it, drawn by `render`.
#[component]
pub fn Loaded<T, V, F>(data: Resource<Result<T, AppError>>, render: F) -> impl IntoView
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    V: IntoView + 'static,
    F: Fn(T) -> V + Clone + Send + Sync + 'static,
{
    let i18n = use_i18n();
    view! {
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, render.clone()))}
        </Suspense>
    }
}
