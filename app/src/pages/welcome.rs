//! `/welcome?token=…`: an enrolled member opens their invitation link and chooses a
//! password; then they are signed in. A used, replaced or expired link says so plainly.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use baton_vocab::views::Invitee;

use crate::components::outcome::Loaded;
use crate::error::AppError;
use crate::i18n::{t, t_string, use_i18n};

/// Whom the link is for, when it still works.
#[server(endpoint = "welcome/check")]
pub async fn check_invitation(token: String) -> Result<Option<Invitee>, AppError> {
    let services = crate::ssr::services()?;
    let now = baton_store::Timestamp::now();
    services.enrollment.invitations.invitee(&token, now).await.map_err(crate::ssr::unavailable)
}

/// Sets the password from the invitation and signs the member in.
#[server(endpoint = "welcome/accept")]
pub async fn accept_invitation(token: String, password: String, confirm: String) -> Result<(), AppError> {
    use baton_enrollment::InvitationError;
    let services = crate::ssr::services()?;
    let back = |problem: &str| {
        let token = crate::url::encode(&token);
        leptos_axum::redirect(&format!("/welcome?token={token}&problem={problem}"));
        Ok(())
    };
    if password != confirm {
        return back("mismatch");
    }
    let password = match baton_accounts::NewPassword::parse(&password) {
        Ok(password) => password,
        Err(baton_accounts::PasswordError::TooLong) => return back("long"),
        Err(_) => return back("short"),
    };
    match services.enrollment.invitations.accept(&token, password, baton_store::Timestamp::now()).await {
        Ok(account) => {
            let session = crate::ssr::session().await?;
            session.cycle_id().await.map_err(crate::ssr::session_error)?;
            session.insert(crate::ssr::SESSION_ACCOUNT, account.0).await.map_err(crate::ssr::session_error)?;
            leptos_axum::redirect("/member");
            Ok(())
        }
        Err(InvitationError::NotValid) => back("invalid"),
        Err(error) => Err(crate::ssr::unavailable(error)),
    }
}

#[component]
pub fn WelcomePage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    let problem = move || query.read().get("problem");
    let data = Resource::new(token, check_invitation);
    view! {
        <Title text=t_string!(i18n, welcome.title).to_string()/>
        <Loaded data=data render={move |invitee: Option<Invitee>| match invitee {
                None => view! {
                    <h1>{t!(i18n, welcome.title)}</h1>
                    <p class="alert" role="alert" id="invitation-invalid">{t!(i18n, welcome.invalid)}</p>
                }.into_any(),
                Some(Invitee { name, username }) => view! {
                    <h1>{t!(i18n, welcome.heading, name = name.clone())}</h1>
                    <p>{t!(i18n, welcome.intro)}</p>
                    <p id="your-username">{t!(i18n, welcome.username, username = username.clone())}</p>
                    {problem().map(|p| view! { <p class="alert" role="alert" id="welcome-problem">{match p.as_str() {
                        "mismatch" => t!(i18n, welcome.mismatch).into_any(),
                        "long" => t!(i18n, welcome.too_long).into_any(),
                        "invalid" => t!(i18n, welcome.invalid).into_any(),
                        _ => t!(i18n, welcome.too_short).into_any(),
                    }}</p> })}
                    <form method="post" action=AcceptInvitation::url() class="form card">
                        <input type="hidden" name="token" value=token()/>
                        // For password managers: the account the new password belongs to.
                        <input type="text" name="username" value=username.clone() autocomplete="username" hidden readonly/>
                        <div class="field">
                            <label for="new-password">{t!(i18n, welcome.password)}</label>
                            <input id="new-password" name="password" type="password" autocomplete="new-password" required
                                minlength="10" aria-describedby="password-hint"/>
                            <span class="field__hint" id="password-hint">{t!(i18n, welcome.password_hint)}</span>
                        </div>
                        <div class="field">
                            <label for="confirm-password">{t!(i18n, welcome.confirm)}</label>
                            <input id="confirm-password" name="confirm" type="password" autocomplete="new-password" required/>
                        </div>
                        <button type="submit" class="button">{t!(i18n, welcome.submit)}</button>
                    </form>
                }.into_any(),
            }}/>
    }
}
