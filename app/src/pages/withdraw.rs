//! Withdrawing a permission and deleting what arrived: before anything is deleted, the member
//! sees exactly what would go — how many records of each kind — and what stays because another
//! permission of theirs brought it too, and confirms (a plain form: works without JavaScript).

use baton_vocab::views::WithdrawalPreview;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};
use crate::pages::transfer::{WithdrawConsent, category_label};

#[server(endpoint = "member/withdrawal_preview")]
pub async fn load_withdrawal_preview(transfer: String) -> Result<WithdrawalPreview, AppError> {
    let account = crate::ssr::require_member().await?;
    let services = crate::ssr::services()?;
    match services.journey.withdrawal_preview(account.id, &transfer).await {
        Ok(Some(preview)) => Ok(preview),
        Ok(None) => Err(crate::ssr::fail(AppError::NotFound)),
        Err(error) => Err(crate::ssr::unavailable(error)),
    }
}

#[component]
pub fn WithdrawPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let data = Resource::new(id, load_withdrawal_preview);
    view! {
        <Title text=t_string!(i18n, withdraw.title).to_string()/>
        <Loaded data=data render={move |preview: WithdrawalPreview| view! { <Confirm preview/> }}/>
    }
}

#[component]
fn Confirm(preview: WithdrawalPreview) -> impl IntoView {
    let i18n = use_i18n();
    let old = preview.payer_name.clone();
    let back = format!("/member/transfers/{}", preview.transfer_id);
    // Withdrawn, and nothing left to delete (a deletion that stopped halfway offers the rest).
    if preview.withdrawn && preview.deleted == 0 && preview.supporting == 0 {
        return view! {
            <h1>{t!(i18n, withdraw.title)}</h1>
            <p class="alert" role="status">{t!(i18n, transfer.withdrawn)}</p>
            <p><A exact=true href=back>{t!(i18n, withdraw.back)}</A></p>
        }
        .into_any();
    }
    let (deleted, kept, shared, supporting) = (preview.deleted, preview.kept, preview.shared, preview.supporting);
    view! {
        <h1>{t!(i18n, withdraw.heading, old = old.clone())}</h1>
        <section class="card" aria-labelledby="what-goes">
            <h2 id="what-goes">{t!(i18n, withdraw.what_goes, count = move || deleted)}</h2>
            {(deleted > 0).then(|| view! {
                <table class="counts" id="to-delete">
                    <thead><tr>
                        <th scope="col">{t!(i18n, transfer.kind)}</th>
                        <th scope="col" class="num">{t!(i18n, transfer.count)}</th>
                    </tr></thead>
                    <tbody>
                        {preview.deleted_by_kind.into_iter().map(|(kind, n)| view! {
                            <tr data-kind=kind.clone()>
                                <th scope="row">{kind_label(&kind)}</th>
                                <td class="num">{t!(i18n, transfer.count_value, count = move || n)}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {(supporting > 0).then(|| view! {
                <p id="supporting-goes">{t!(i18n, withdraw.supporting_goes, count = move || supporting)}</p>
            })}
            {(kept > 0).then(|| view! { <p id="to-keep">{t!(i18n, withdraw.what_stays, count = move || kept)}</p> })}
            {(shared > 0).then(|| view! { <p id="to-share">{t!(i18n, withdraw.what_is_shared, count = move || shared)}</p> })}
            <p>{t!(i18n, withdraw.also_stops, old = old.clone())}</p>
            <p><strong>{t!(i18n, withdraw.cannot_undo)}</strong></p>
            <form method="post" action=WithdrawConsent::url() class="form">
                <input type="hidden" name="consent" value=preview.consent_id.clone()/>
                <input type="hidden" name="transfer" value=preview.transfer_id.clone()/>
                <input type="hidden" name="delete" value="yes"/>
                <input type="hidden" name="confirm" value="yes"/>
                <div class="actions">
                    <button type="submit" class="button button--danger" id="confirm-delete">{t!(i18n, withdraw.confirm)}</button>
                    <A exact=true href=back attr:class="button button--secondary">{t!(i18n, withdraw.keep)}</A>
                </div>
            </form>
        </section>
    }
    .into_any()
}

fn kind_label(kind: &str) -> AnyView {
    let i18n = use_i18n();
    match kind {
        "claims_and_prior_authorizations" => t!(i18n, categories.claims_and_prior_authorizations).into_any(),
        other => category_label(other),
    }
}
