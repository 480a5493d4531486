//! The staff console's two plain HTTP endpoints (the pages are Leptos): the roster upload
//! (`POST /staff/roster`, multipart, so that a file can be sent without JavaScript) and the
//! audit log export (`GET /staff/audit.csv`). Both check the role on the server.

use app::ssr::Services;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use baton_accounts::{Account, Role, Roles};
use baton_staff::{BrandsLoad, ConsoleError};
use baton_vocab::views::console::AuditFilters;
use tower_sessions::Session;

/// The largest roster upload accepted (about 100,000 CSV lines).
pub const ROSTER_MAX_BYTES: usize = 20 * 1024 * 1024;

/// The signed-in account when `allowed`; otherwise the response to give instead.
async fn require(
    services: &Services,
    session: &Session,
    next: &str,
    allowed: impl Fn(&Roles) -> bool,
) -> Result<Account, Response> {
    match app::ssr::account_in_session(session, &services.accounts).await {
        Ok(Some(account)) if allowed(&account.roles) => Ok(account),
        Ok(Some(account)) => {
            tracing::warn!(account = account.id.0, path = next, "forbidden");
            Err((StatusCode::FORBIDDEN, "This page is for other staff roles.").into_response())
        }
        Ok(None) => Err(Redirect::to(&format!("/sign-in?next={}", next.replace('/', "%2F"))).into_response()),
        Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE.into_response()),
    }
}

fn unavailable(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "staff endpoint failed");
    (StatusCode::SERVICE_UNAVAILABLE, "Baton cannot do that right now. Try again in a moment.").into_response()
}

pub async fn upload_roster(State(services): State<Services>, session: Session, mut form: Multipart) -> Response {
    let staff = match require(&services, &session, "/staff/roster", Roles::is_staff).await {
        Ok(account) => account,
        Err(response) => return response,
    };
    let back = |problem: &str| Redirect::to(&format!("/staff/roster?problem={problem}")).into_response();
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut text = String::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => return back("large"),
            Err(error) => {
                tracing::warn!(%error, "unreadable roster upload");
                return back("unreadable");
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().unwrap_or_default().to_owned();
        let bytes = match field.bytes().await {
            Ok(bytes) => bytes,
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => return back("large"),
            Err(_) => return back("unreadable"),
        };
        match name.as_str() {
            "file" if !bytes.is_empty() => file = Some((file_name, bytes.to_vec())),
            "text" => text = String::from_utf8_lossy(&bytes).into_owned(),
            _ => {}
        }
    }
    let (file_name, content) = match file {
        Some((name, bytes)) => match String::from_utf8(bytes) {
            Ok(content) => (name, content),
            Err(_) => return back("unreadable"),
        },
        None if !text.trim().is_empty() => (String::new(), text),
        None => return back("empty"),
    };
    match services.console.upload_roster(&staff, &file_name, content).await {
        Ok(id) => Redirect::to(&format!("/staff/roster/{id}")).into_response(),
        Err(error) => unavailable(error),
    }
}

pub async fn export_audit(
    State(services): State<Services>,
    session: Session,
    Query(filters): Query<AuditFilters>,
) -> Response {
    let admin = match require(&services, &session, "/staff/audit", |roles| roles.has(Role::Admin)).await {
        Ok(account) => account,
        Err(response) => return response,
    };
    let csv = match services.console.export_audit(&admin, &filters).await {
        Ok(csv) => csv,
        Err(ConsoleError::Invalid(field)) => {
            return (StatusCode::BAD_REQUEST, format!("The filter {field} is not valid.")).into_response();
        }
        Err(error) => return unavailable(error),
    };
    let mut response = csv.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"baton-audit.csv\""));
    response
}

/// The largest brands file accepted.
pub const BRANDS_MAX_BYTES: usize = 10 * 1024 * 1024;

/// `POST /staff/payers/brands`: a brands file staff upload (multipart, works without JavaScript).
pub async fn upload_brands(State(services): State<Services>, session: Session, mut form: Multipart) -> Response {
    let staff = match require(&services, &session, "/staff/payers", Roles::is_staff).await {
        Ok(account) => account,
        Err(response) => return response,
    };
    let back = |problem: &str| Redirect::to(&format!("/staff/payers?problem={problem}")).into_response();
    let mut file: Option<(String, Vec<u8>)> = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => {
                let name = field.file_name().unwrap_or("brands.json").to_owned();
                match field.bytes().await {
                    Ok(bytes) if !bytes.is_empty() => file = Some((name, bytes.to_vec())),
                    Ok(_) => {}
                    Err(_) => return back("load"),
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => return back("load"),
        }
    }
    let Some((name, bytes)) = file else { return back("empty") };
    let Ok(text) = String::from_utf8(bytes) else { return back("load") };
    match services.console.load_brands_file(&staff, &name, &text).await {
        Ok(BrandsLoad::Loaded) => Redirect::to("/staff/payers").into_response(),
        Ok(BrandsLoad::Refused) => back("load"),
        Err(error) => unavailable(error),
    }
}
