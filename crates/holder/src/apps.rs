//! `/account/apps`: the apps a member allowed to read their records here (what each reads,
//! since when, until when, with or without sensitive information), and stopping one at once —
//! its grant and every token from it revoked. The consent screen says this is where to stop an
//! app sooner; the member signs in with this plan's account as for everything else.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use baton_accounts::{Account, AccountId, SESSION_ACCOUNT_KEY};
use baton_fhir::smart::Scopes;
use baton_store::{NewAuditEvent, Timestamp};
use baton_vocab::AuditAction;
use rust_i18n::t;
use serde::Deserialize;
use tower_sessions::Session;

use crate::Holder;
use crate::pages::{AppRow, AppsPage, Chrome, Lang, day_in_words, render};

const PATH: &str = "/account/apps";

#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    /// The app just stopped, by name.
    #[serde(default)]
    stopped: Option<String>,
}

/// `GET /account/apps`
pub async fn list(
    State(holder): State<Holder>,
    lang: Lang,
    session: Session,
    Query(notice): Query<Notice>,
) -> Response {
    let account = match member(&holder, &session).await {
        Ok(account) => account,
        Err(response) => return response,
    };
    let apps = match holder.store.connected_apps(account.id, Timestamp::now()).await {
        Ok(apps) => apps,
        Err(error) => return failed(error),
    };
    let l = lang.code();
    let day = |ms: i64| day_in_words(Timestamp::from_millis(ms).to_datetime().date(), l);
    let rows = apps
        .into_iter()
        .map(|app| AppRow {
            since: t!("apps.since", locale = l, date = day(app.grant.created_at)).into_owned(),
            until: t!("apps.until", locale = l, date = day(app.access_until)).into_owned(),
            sensitive: if app.grant.include_sensitive {
                t!("apps.sensitive_included", locale = l).into_owned()
            } else {
                t!("apps.sensitive_left_out", locale = l).into_owned()
            },
            revoke: t!("apps.revoke", locale = l, app = app.client_name.as_str()).into_owned(),
            what: crate::oauth::authorize::shared_kinds(&Scopes::parse(&app.grant.scope), l),
            grant: app.grant.id,
            name: app.client_name,
        })
        .collect();
    let page = AppsPage {
        chrome: Chrome::new(lang, t!("apps.title", locale = l).into_owned(), &holder.plan_name, PATH),
        intro: t!("apps.intro", locale = l, plan = holder.plan_name.as_str()).into_owned(),
        notice: notice.stopped.map(|app| t!("apps.stopped", locale = l, app = app.as_str()).into_owned()),
        none: t!("apps.none", locale = l).into_owned(),
        apps: rows,
        back: t!("apps.back", locale = l).into_owned(),
        back_href: "/member".into(),
    };
    render(StatusCode::OK, &page, None)
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    grant: String,
}

/// `POST /account/apps/revoke`: the app's access ends now (only the member's own apps).
pub async fn revoke(State(holder): State<Holder>, session: Session, Form(form): Form<RevokeForm>) -> Response {
    let account = match member(&holder, &session).await {
        Ok(account) => account,
        Err(response) => return response,
    };
    let grant = match holder.store.oauth_grant(&form.grant).await {
        Ok(grant) => grant.filter(|g| g.account_id == account.id && g.revoked_at.is_none()),
        Err(error) => return failed(error),
    };
    // Someone else's, or stopped already: the list says what is true now.
    let Some(grant) = grant else { return Redirect::to(PATH).into_response() };
    let now = Timestamp::now();
    if let Err(error) = holder.store.revoke_oauth_grant(&grant.id, now).await {
        return failed(error);
    }
    let name = match holder.store.oauth_client(&grant.client_id).await {
        Ok(Some(client)) => client.name,
        _ => grant.client_id.clone(),
    };
    let audit = NewAuditEvent {
        at: now,
        actor_account: Some(account.id),
        actor: "member".into(),
        action: AuditAction::AppAccessRevoke.to_string(),
        member_account: Some(account.id),
        subject: format!("app {}", grant.client_id),
        detail: format!("the member stopped {name}'s access (grant {})", grant.id),
    };
    if let Err(error) = holder.store.record_audit(&audit).await {
        tracing::error!(%error, "cannot record a stopped app");
    }
    tracing::info!(account = account.id.0, client_id = %grant.client_id, "member stopped an app's access");
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    Redirect::to(&format!("{PATH}?stopped={name}")).into_response()
}

/// The signed-in member; otherwise, to the sign-in page, then their home (which links here:
/// the app's router cannot land on a page it does not serve).
async fn member(holder: &Holder, session: &Session) -> Result<Account, Response> {
    let id = session.get::<i64>(SESSION_ACCOUNT_KEY).await.map_err(failed)?;
    let account = match id {
        Some(id) => holder.accounts.by_id(AccountId(id)).await.map_err(failed)?,
        None => None,
    };
    account
        .filter(|a| a.roles.has(baton_accounts::Role::Member))
        .ok_or_else(|| Redirect::to("/sign-in?next=%2Fmember").into_response())
}

fn failed(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "the connected apps page failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side. Please try again in a few minutes.")
        .into_response()
}
