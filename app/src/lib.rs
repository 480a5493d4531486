//! Baton's user interface: Leptos pages, components and the server functions behind them.
//!
//! The crate is thin on purpose: server functions authenticate, authorise and call the
//! domain crates (`baton-accounts`, `baton-store`, …); nothing here decides business rules.
//! It compiles twice: with `ssr` into the `baton` server, with `hydrate` into the browser.

#![recursion_limit = "256"]

include!(concat!(env!("OUT_DIR"), "/i18n/mod.rs"));

pub mod components;
pub mod error;
pub mod pages;
pub mod session;
#[cfg(feature = "ssr")]
pub mod ssr;
pub mod url;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::components::layout::Layout;
use crate::i18n::{I18nContextProvider, t_string, use_i18n};
use crate::pages::{
    ApiTokensPage, AuditPage, PayerClientsPage, BringRecords, ConsentPage, Landing, MemberHome, MemberPage, MemberRecordsPage,
    MembersPage, NotFound, PayersPage, PreviousPlansPage, RecordPage, RequestPage, RequestsListPage, RosterImportPage, RosterPage, SignInPage, StaffHome,
    StaffTransferPage, TransferPage, TransfersPage, WelcomePage, WithdrawPage,
};
use crate::session::{SessionInfo, SignOut, get_session};

/// Name of the compiled site assets (`/pkg/baton.js`, `baton_bg.wasm`, `baton.css`).
pub const OUTPUT_NAME: &str = "baton";

/// The HTML document around the app. Server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // Its Content-Security-Policy, with the nonce of the hydration scripts, is set by the
    // server's security headers.
    view! {
        <!DOCTYPE html>
        <html>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Session state shared by every page: who is signed in, and how to refresh that.
///
/// The sign-in action lives on the sign-in page (inside the routes, so that its no-JavaScript
/// error comes back through the URL); it bumps `changed` when it succeeds.
#[derive(Clone, Copy)]
pub struct Auth {
    pub sign_out: ServerAction<SignOut>,
    pub changed: RwSignal<u32>,
    pub session: Resource<Result<SessionInfo, error::AppError>>,
}

pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let sign_out = ServerAction::<SignOut>::new();
    let changed = RwSignal::new(0);
    let session = Resource::new(move || (changed.get(), sign_out.version().get()), |_| get_session());
    provide_context(Auth { sign_out, changed, session });

    view! {
        <I18nContextProvider>
            <Stylesheet id="leptos" href=format!("/pkg/{OUTPUT_NAME}.css")/>
            <PageTitle/>
            <Router>
                <Layout>
                    <Routes fallback=NotFound>
                        <Route path=path!("") view=Landing ssr=SsrMode::Async/>
                        <Route path=path!("sign-in") view=SignInPage ssr=SsrMode::Async/>
                        <Route path=path!("member") view=MemberHome ssr=SsrMode::Async/>
                        <Route path=path!("member/bring") view=BringRecords ssr=SsrMode::Async/>
                        <Route path=path!("member/previous-plans") view=PreviousPlansPage ssr=SsrMode::Async/>
                        <Route path=path!("member/bring/:payer") view=ConsentPage ssr=SsrMode::Async/>
                        <Route path=path!("member/transfers/:id") view=TransferPage ssr=SsrMode::Async/>
                        <Route path=path!("member/transfers/:id/withdraw") view=WithdrawPage ssr=SsrMode::Async/>
                        <Route path=path!("welcome") view=WelcomePage ssr=SsrMode::Async/>
                        <Route path=path!("staff") view=StaffHome ssr=SsrMode::Async/>
                        <Route path=path!("staff/members") view=MembersPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/members/:id") view=MemberPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/members/:id/records") view=MemberRecordsPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/records/:type/:id") view=RecordPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/roster") view=RosterPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/roster/:id") view=RosterImportPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/transfers") view=TransfersPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/transfers/:id") view=StaffTransferPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/requests") view=RequestsListPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/requests/:id") view=RequestPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/audit") view=AuditPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/payers") view=PayersPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/api-tokens") view=ApiTokensPage ssr=SsrMode::Async/>
                        <Route path=path!("staff/payer-clients") view=PayerClientsPage ssr=SsrMode::Async/>
                    </Routes>
                </Layout>
            </Router>
        </I18nContextProvider>
    }
}

/// "Page · Baton" titles; pages set the first part with `<Title text=…/>` — a string computed
/// while rendering, not a closure: a closure runs when the `<title>` is written, and once, under
/// load, found the locale signal already disposed (a panic, a 500).
#[component]
fn PageTitle() -> impl IntoView {
    let i18n = use_i18n();
    // Read once, now: the formatter runs when the <title> is written, late in the response,
    // and must not reach back into this render's reactive values (see the pages' titles).
    let app = t_string!(i18n, app_name).to_string();
    view! { <Title formatter=move |page: String| if page.is_empty() { app.clone() } else { format!("{page} · {app}") }/> }
}
