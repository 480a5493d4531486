//! The audit log for admins: search by who, what, which member and when; export as CSV
//! (`/staff/audit.csv`, served by the server with the same filters).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use super::StaffNav;
use super::members::encode;
use crate::components::outcome::outcome;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub member: Option<i64>,
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub rows: Vec<AuditRow>,
    pub more: bool,
}

#[cfg(feature = "ssr")]
const PAGE: u32 = 100;

/// The filters of an audit search, as the query string carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditFilters {
    pub actor: String,
    pub action: String,
    pub member: String,
    pub from: String,
    pub to: String,
}

#[cfg(feature = "ssr")]
impl AuditFilters {
    /// The store query, or which field is malformed.
    pub fn query(&self) -> Result<baton_store::AuditQuery, String> {
        let day = |text: &str, field: &str| match text.trim() {
            "" => Ok(None),
            t => baton_vocab::day::parse(t)
                .map(|d| Some(baton_store::Timestamp::from_millis(baton_vocab::day::start_millis(d))))
                .ok_or_else(|| field.to_owned()),
        };
        let member = match self.member.trim() {
            "" => None,
            m => Some(baton_store::AccountId(m.parse().map_err(|_| "member".to_owned())?)),
        };
        Ok(baton_store::AuditQuery {
            actor: Some(self.actor.clone()),
            action: Some(self.action.clone()),
            member_account: member,
            from: day(&self.from, "from")?,
            before: day(&self.to, "to")?.map(|t| t.plus(time::Duration::days(1))),
            ..Default::default()
        })
    }

    pub fn describe(&self) -> String {
        format!("actor={} action={} member={} from={} to={}", self.actor, self.action, self.member, self.from, self.to)
    }
}

#[server(endpoint = "staff/audit")]
pub async fn search_audit(filters: AuditFilters, page: u32) -> Result<AuditView, AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    let mut query = filters.query().map_err(|field| crate::ssr::fail(AppError::Invalid { field }))?;
    query.limit = PAGE + 1;
    query.offset = page.saturating_mul(PAGE);
    let events = services.store.search_audit(&query).await.map_err(crate::ssr::unavailable)?;
    crate::ssr::audit(&admin, baton_staff::audit::Action::AuditSearch, None, &filters.describe(), "").await?;
    Ok(AuditView {
        more: events.len() > PAGE as usize,
        rows: events
            .into_iter()
            .take(PAGE as usize)
            .map(|e| AuditRow {
                at: baton_vocab::day::utc(e.at),
                actor: e.actor,
                action: e.action,
                member: e.member_account,
                subject: e.subject,
                detail: e.detail,
            })
            .collect(),
    })
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let filters = move || {
        let q = query.read();
        AuditFilters {
            actor: q.get("actor").unwrap_or_default(),
            action: q.get("action").unwrap_or_default(),
            member: q.get("member").unwrap_or_default(),
            from: q.get("from").unwrap_or_default(),
            to: q.get("to").unwrap_or_default(),
        }
    };
    let page = move || query.read().get("page").and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
    let data = Resource::new(move || (filters(), page()), |(f, page)| search_audit(f, page));
    view! {
        <Title text=t_string!(i18n, console.audit_title).to_string()/>
        <h1>{t!(i18n, console.audit_title)}</h1>
        <Suspense fallback=move || view! { <p>{t!(i18n, loading)}</p> }>
            {move || data.get().map(|result| outcome(result, move |v: AuditView| {
                let f = filters();
                let qs = format!(
                    "actor={}&action={}&member={}&from={}&to={}",
                    encode(&f.actor), encode(&f.action), encode(&f.member), encode(&f.from), encode(&f.to)
                );
                view! {
                    <StaffNav admin=true/>
                    <form method="get" action="/staff/audit" class="form form--inline" id="audit-filters">
                        <div class="field"><label for="a-actor">{t!(i18n, console.actor)}</label>
                            <input id="a-actor" name="actor" type="search" value=f.actor.clone()/></div>
                        <div class="field"><label for="a-action">{t!(i18n, console.action)}</label>
                            <input id="a-action" name="action" type="search" value=f.action.clone() aria-describedby="a-action-hint"/>
                            <span class="field__hint" id="a-action-hint">{t!(i18n, console.action_hint)}</span></div>
                        <div class="field"><label for="a-member">{t!(i18n, console.member_account)}</label>
                            <input id="a-member" name="member" type="text" inputmode="numeric" value=f.member.clone()/></div>
                        <div class="field"><label for="a-from">{t!(i18n, console.from)}</label>
                            <input id="a-from" name="from" type="date" value=f.from.clone()/></div>
                        <div class="field"><label for="a-to">{t!(i18n, console.to)}</label>
                            <input id="a-to" name="to" type="date" value=f.to.clone()/></div>
                        <button type="submit" class="button">{t!(i18n, console.search)}</button>
                    </form>
                    <p><a id="audit-export" href=format!("/staff/audit.csv?{qs}") download="baton-audit.csv">{t!(i18n, console.export_csv)}</a></p>
                    <table class="data" id="audit">
                        <thead><tr>
                            <th scope="col">{t!(i18n, console.at)}</th>
                            <th scope="col">{t!(i18n, console.actor)}</th>
                            <th scope="col">{t!(i18n, console.action)}</th>
                            <th scope="col">{t!(i18n, console.member_account)}</th>
                            <th scope="col">{t!(i18n, console.subject)}</th>
                            <th scope="col">{t!(i18n, console.detail)}</th>
                        </tr></thead>
                        <tbody>{v.rows.into_iter().map(|r| view! {
                            <tr>
                                <td>{r.at}</td><td>{r.actor}</td><td>{r.action}</td>
                                <td>{r.member.map(|m| view! { <a href=format!("/staff/members/{m}")>{m}</a> })}</td>
                                <td>{r.subject}</td><td>{r.detail}</td>
                            </tr>
                        }).collect_view()}</tbody>
                    </table>
                    {v.more.then(|| view! { <p><a href=format!("/staff/audit?{qs}&page={}", page() + 1)>{t!(i18n, console.next_page)}</a></p> })}
                }
            }))}
        </Suspense>
    }
}
