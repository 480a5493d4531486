//! The audit log for admins: search by who, what, which member and when; export as CSV
//! (`/staff/audit.csv`, served by the server with the same filters).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::StaffNav;
use super::members::encode;
use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

use baton_vocab::views::console::{AuditFilters, AuditView};

#[server(endpoint = "staff/audit")]
pub async fn search_audit(filters: AuditFilters, page: u32) -> Result<AuditView, AppError> {
    let admin = crate::ssr::require_admin().await?;
    let services = crate::ssr::services()?;
    services.console.search_audit(&admin, &filters, page).await.map_err(crate::ssr::console_error)
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
        <Loaded data=data render={move |v: AuditView| {
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
            }}/>
    }
}
