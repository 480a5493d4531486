//! The staff console's two plain HTTP endpoints (the pages are Leptos): the roster upload
//! (`POST /staff/roster`, multipart, so that a file can be sent without JavaScript) and the
//! audit log export (`GET /staff/audit.csv`). Both check the role on the server.

use app::pages::staff_audit::AuditFilters;
use app::ssr::Services;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use baton_accounts::{Account, Role, Roles};
use baton_enrollment::Format;
use baton_staff::audit::Action;
use baton_store::{RosterImport, Timestamp};
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
    let file_name: String = file_name.chars().filter(|c| !c.is_control()).take(200).collect();
    let import = RosterImport {
        id: uuid::Uuid::new_v4().to_string(),
        format: Format::detect(&content).as_str().to_owned(),
        file_name,
        content,
        created_by: staff.id.0,
        created_at: Timestamp::now().millis(),
        committed_at: None,
        report: None,
    };
    if let Err(error) = services.store.insert_roster_import(&import).await {
        return unavailable(error);
    }
    let subject = format!("roster {}", import.id);
    let detail = format!("{} bytes, {}", import.content.len(), import.format);
    if let Err(error) =
        services.auditor.record(&app::ssr::actor(&staff), Action::RosterUpload, None, &subject, &detail).await
    {
        return unavailable(error);
    }
    Redirect::to(&format!("/staff/roster/{}", import.id)).into_response()
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
    let query = match filters.query() {
        Ok(query) => query,
        Err(field) => return (StatusCode::BAD_REQUEST, format!("The filter {field} is not valid.")).into_response(),
    };
    let events = match services.store.search_audit(&query).await {
        Ok(events) => events,
        Err(error) => return unavailable(error),
    };
    let detail = format!("{} events", events.len());
    if let Err(error) =
        services.auditor.record(&app::ssr::actor(&admin), Action::AuditExport, None, &filters.describe(), &detail).await
    {
        return unavailable(error);
    }
    let mut response = baton_staff::audit::to_csv(&events).into_response();
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
    let name: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
    let Ok(text) = String::from_utf8(bytes) else { return back("load") };
    let result = services.journey.import_brands_file(&name, &text, Timestamp::now()).await;
    let detail = match &result {
        Ok(import) => format!("{} plans, {} new", import.entries, import.added),
        Err(error) => format!("failed: {error}"),
    };
    if let Err(error) = services
        .auditor
        .record(&app::ssr::actor(&staff), Action::PayersLoad, None, &format!("file:{name}"), &detail)
        .await
    {
        return unavailable(error);
    }
    match result {
        Ok(_) => Redirect::to("/staff/payers").into_response(),
        Err(error) => {
            tracing::warn!(%error, "brands file refused");
            back("load")
        }
    }
}
