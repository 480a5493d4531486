//! The plan's own pages on the authorization path (sign-in, consent, errors): rendered on the
//! server with askama, working without JavaScript, in English or Spanish.

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// The language of a page: the member's choice (the `i18n_pref_locale` cookie the rest of
/// Baton uses), else the browser's `Accept-Language`, else English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "es" => Some(Lang::Es),
            _ => None,
        }
    }

    pub fn from_headers(headers: &axum::http::HeaderMap) -> Lang {
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix("i18n_pref_locale="))
            .find_map(Lang::from_tag);
        if let Some(lang) = cookie {
            return lang;
        }
        let mut preferences: Vec<(f32, Lang)> = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';');
                let lang = Lang::from_tag(parts.next()?)?;
                let quality =
                    parts.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse().ok())).unwrap_or(1.0);
                Some((quality, lang))
            })
            .collect();
        preferences.sort_by(|a, b| b.0.total_cmp(&a.0));
        preferences.first().map(|(_, lang)| *lang).unwrap_or(Lang::En)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::from_headers(&parts.headers))
    }
}

/// What every page around the content shows.
pub struct Chrome {
    pub lang: &'static str,
    pub title: String,
    pub plan: String,
    pub skip: String,
    pub language: String,
    pub english_href: String,
    pub spanish_href: String,
}

impl Chrome {
    /// `here` is the page's path and query, to come back to after switching language.
    pub fn new(lang: Lang, title: String, plan: &str, here: &str) -> Self {
        let next = utf8_percent_encode(here, NON_ALPHANUMERIC).to_string();
        Chrome {
            lang: lang.code(),
            title,
            plan: plan.to_owned(),
            skip: rust_i18n::t!("page.skip", locale = lang.code()).into_owned(),
            language: rust_i18n::t!("page.language", locale = lang.code()).into_owned(),
            english_href: format!("/locale/en?next={next}"),
            spanish_href: format!("/locale/es?next={next}"),
        }
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub chrome: Chrome,
    pub intro: String,
    pub error: Option<String>,
    pub request: String,
    pub client: String,
    pub username: String,
    pub username_label: String,
    pub password_label: String,
    pub submit: String,
    pub cancel: String,
    pub cancel_href: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub chrome: Chrome,
    pub who: String,
    pub what_title: String,
    pub what: Vec<String>,
    pub error: Option<String>,
    pub request: String,
    pub client: String,
    pub sensitive_legend: String,
    pub sensitive_intro: String,
    pub sensitive_include: String,
    pub sensitive_exclude: String,
    pub returns_to: String,
    pub approve: String,
    pub deny: String,
}

/// One app on the Connected apps page.
pub struct AppRow {
    pub grant: String,
    pub name: String,
    pub what: Vec<String>,
    pub since: String,
    pub until: String,
    pub sensitive: String,
    pub revoke: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
pub struct AppsPage {
    pub chrome: Chrome,
    pub intro: String,
    pub notice: Option<String>,
    pub none: String,
    pub apps: Vec<AppRow>,
    pub back: String,
    pub back_href: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub message: String,
    /// A link back to where the member started: (href, words).
    pub back: Option<(String, String)>,
}

/// Renders a page; `form_action` widens the page's CSP `form-action` (a form whose answer
/// redirects to a client app must be allowed to go there).
pub fn render(status: StatusCode, page: &impl Template, form_action: Option<&str>) -> Response {
    let body = match page.render() {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "template failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
        }
    };
    let mut response = (status, Html(body)).into_response();
    let form_action = match form_action {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; object-src 'none'; \
         base-uri 'none'; form-action {form_action}; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn language_from_cookie_then_accept_language() {
        assert_eq!(Lang::from_headers(&headers(&[])), Lang::En);
        assert_eq!(Lang::from_headers(&headers(&[("accept-language", "es-US,es;q=0.9,en;q=0.8")])), Lang::Es);
        assert_eq!(Lang::from_headers(&headers(&[("accept-language", "fr;q=1, en;q=0.5, es;q=0.7")])), Lang::Es);
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "es"), ("cookie", "a=b; i18n_pref_locale=en")])),
            Lang::En,
            "the member's choice wins"
        );
    }

    #[test]
    fn every_locale_has_every_key() {
        fn keys(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
            if let Some(map) = value.as_object() {
                for (k, v) in map {
                    keys(v, &format!("{prefix}{k}."), out);
                }
            } else {
                out.push(prefix.trim_end_matches('.').to_owned());
            }
        }
        let load = |text: &str| {
            let mut out = vec![];
            keys(&serde_json::from_str(text).unwrap(), "", &mut out);
            out.sort();
            out
        };
        assert_eq!(load(include_str!("../locales/en.json")), load(include_str!("../locales/es.json")));
    }
}

/// A day as a member reads it: `March 5, 2027`, or `5 de marzo de 2027` in Spanish.
pub fn day_in_words(day: time::Date, locale: &str) -> String {
    const EN: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const ES: [&str; 12] = [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ];
    let month = usize::from(u8::from(day.month())) - 1;
    if locale.starts_with("es") {
        format!("{} de {} de {}", day.day(), ES[month], day.year())
    } else {
        format!("{} {}, {}", EN[month], day.day(), day.year())
    }
}

#[cfg(test)]
mod day_tests {
    use time::macros::date;

    use super::day_in_words;

    #[test]
    fn days_read_as_words_in_both_languages() {
        assert_eq!(day_in_words(date!(2027 - 03 - 05), "en"), "March 5, 2027");
        assert_eq!(day_in_words(date!(2027 - 03 - 05), "es"), "5 de marzo de 2027");
    }
}
