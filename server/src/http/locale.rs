//! `GET /locale/{en|es}?next=/path`: remembers the language in the cookie leptos_i18n reads,
//! then goes back. A plain link, so switching works with or without JavaScript.

use std::str::FromStr;

use app::i18n::Locale;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use leptos_i18n::Locale as _;
use serde::Deserialize;

/// The cookie leptos_i18n reads and writes.
pub const LOCALE_COOKIE: &str = "i18n_pref_locale";

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

pub async fn set_locale(Path(locale): Path<String>, Query(query): Query<Next>) -> Response {
    let Ok(locale) = Locale::from_str(&locale) else {
        return (StatusCode::NOT_FOUND, "unknown language\n").into_response();
    };
    let next = query.next.as_deref().and_then(app::session::local_path).unwrap_or("/");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, next.to_owned()),
            (
                header::SET_COOKIE,
                format!("{LOCALE_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax", locale.as_str()),
            ),
        ],
    )
        .into_response()
}
