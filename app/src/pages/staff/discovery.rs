//! A plan's SMART discovery on its card in the staff directory: what its configuration said,
//! whether Baton used it, and what Baton uses — or why members cannot use the plan now.

use baton_vocab::views::DiscoveryView;
use leptos::prelude::*;

use crate::i18n::{t, use_i18n};

#[component]
pub fn DiscoverySummary(discovery: DiscoveryView) -> impl IntoView {
    let i18n = use_i18n();
    let found = match (discovery.found, discovery.unreadable) {
        (Some(found), _) => {
            let authorize = found.authorization_endpoint.unwrap_or_else(|| "—".into());
            let token = found.token_endpoint.unwrap_or_else(|| "—".into());
            let grants = if found.grant_types.is_empty() { "—".to_owned() } else { found.grant_types.join(", ") };
            let s256 = found.s256;
            view! {
                <dl class="payer-discovery__found">
                    <dt>{t!(i18n, console.discovery_authorize)}</dt><dd class="url">{authorize}</dd>
                    <dt>{t!(i18n, console.discovery_token)}</dt><dd class="url">{token}</dd>
                    <dt>{t!(i18n, console.discovery_grants)}</dt><dd>{grants}</dd>
                    <dt>{t!(i18n, console.discovery_s256)}</dt>
                    <dd>{if s256 { t!(i18n, console.yes).into_any() } else { t!(i18n, console.no).into_any() }}</dd>
                </dl>
            }
            .into_any()
        }
        (None, unreadable) => {
            let why = unreadable.unwrap_or_default();
            view! { <p>{t!(i18n, console.discovery_unreadable, why = why.clone())}</p> }.into_any()
        }
    };
    let ignored = discovery.ignored.map(|why| view! { <p class="payer-discovery__ignored">{t!(i18n, console.discovery_ignored, why = why.clone())}</p> });
    let used = discovery.used.map(|used| {
        view! {
            <p>{t!(i18n, console.discovery_used)}</p>
            <dl class="payer-discovery__used">
                <dt>{t!(i18n, console.discovery_authorize)}</dt><dd class="url">{used.authorize}</dd>
                <dt>{t!(i18n, console.discovery_token)}</dt><dd class="url">{used.token}</dd>
                <dt>{t!(i18n, console.payers_scopes)}</dt><dd class="url">{used.scope}</dd>
            </dl>
        }
    });
    // Shown outside the details: staff must see it without opening anything.
    let problem = discovery.problem.map(|problem| {
        view! { <p class="alert payer-problem">{t!(i18n, console.payers_discovery_problem, problem = problem.clone())}</p> }
    });
    view! {
        {problem}
        <details class="payer-discovery">
            <summary>{t!(i18n, console.discovery_title)}</summary>
            <p class="field__hint">{t!(i18n, console.discovery_said)}</p>
            {found}
            {ignored}
            {used}
        </details>
    }
}
