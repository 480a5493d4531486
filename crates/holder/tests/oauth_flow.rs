//! The SMART authorization server, end to end over HTTP.

#[macro_use]
mod support;

use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::Value;
use support::*;

holder_test!(discovery_documents_tell_the_truth, |t| {
    let config: Value =
        http().get(format!("{}/.well-known/smart-configuration", t.fhir)).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    for capability in [
        "launch-standalone",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "context-standalone-patient",
        "permission-patient",
        "permission-offline",
        "permission-v1",
        "permission-v2",
        "sso-openid-connect",
    ] {
        assert!(config["capabilities"].as_array().unwrap().iter().any(|c| c == capability), "{capability}");
    }
    for field in [
        "issuer",
        "jwks_uri",
        "authorization_endpoint",
        "token_endpoint",
        "grant_types_supported",
        "user_access_brand_bundle",
    ] {
        assert!(config[field].is_string() || config[field].is_array(), "{field}");
    }
    let brands = http().get(config["user_access_brand_bundle"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(brands.status(), StatusCode::OK);
    let etag = brands.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\""));
    assert_eq!(brands.headers()["access-control-allow-origin"], "*");
    let bundle: Value = brands.json().await.unwrap();
    assert_eq!(bundle["type"], "collection");
    let org = &bundle["entry"][0]["resource"];
    assert_eq!(org["resourceType"], "Organization");
    assert_eq!(org["name"], "Riverbend Health");
    assert_eq!(org["identifier"][0]["value"], config["user_access_brand_identifier"]["value"]);
    let endpoint = &bundle["entry"][1]["resource"];
    assert_eq!(endpoint["address"], t.fhir.as_str());
    let again = http().get(format!("{}brands.json", t.base)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let metadata: Value = http().get(format!("{}/metadata", t.fhir)).send().await.unwrap().json().await.unwrap();
    assert_eq!(metadata["resourceType"], "CapabilityStatement");
    assert_eq!(metadata["fhirVersion"], "4.0.1");
});

holder_test!(the_whole_flow_issues_what_smart_promises, |t| {
    let body = tokens_for(&t, "maria", ALL_SCOPES, "include").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["patient"], t.maria.as_str());
    // The member's sensitive choice, so that the app can tell them what this plan held back.
    assert_eq!(body["sensitive_data"], "included");
    assert_eq!(tokens_for(&t, "maria", ALL_SCOPES, "exclude").await["sensitive_data"], "excluded");
    assert_eq!(body["scope"], ALL_SCOPES);
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    assert!(body["refresh_token"].is_string(), "offline_access gives a refresh token");
    // The ID token is signed with the published key and names the member's FHIR user.
    let id_token = body["id_token"].as_str().unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet =
        http().get(format!("{}oauth/jwks", t.base)).send().await.unwrap().json().await.unwrap();
    let kid = jsonwebtoken::decode_header(id_token).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&[SECRET_CLIENT]);
    validation.set_issuer(&[&t.fhir]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation).unwrap().claims;
    assert_eq!(claims["fhirUser"], format!("{}/Patient/{}", t.fhir, t.maria));
    let (status, patient) = fhir_get(&t, body["access_token"].as_str().unwrap(), &format!("Patient/{}", t.maria)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patient["name"][0]["family"], "Garcia");
});

holder_test!(no_offline_access_no_refresh_token_no_openid_no_id_token, |t| {
    let body = tokens_for(&t, "maria", "launch/patient patient/Condition.read", "exclude").await;
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("id_token").is_none());
    assert_eq!(body["scope"], "launch/patient patient/Condition.read");
});

holder_test!(state_is_echoed_and_denial_is_access_denied, |t| {
    let browser = http();
    let pkce = pkce();
    let params = authorize_as(&t, &browser, "maria", SECRET_CLIENT, &pkce.challenge, ALL_SCOPES, "deny", "").await;
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("state-123"));
    assert_eq!(param(&params, "code"), None);
    // Signed in now: a new request goes straight to consent and succeeds with its state.
    let params =
        authorize_as(&t, &browser, "maria", SECRET_CLIENT, &pkce.challenge, ALL_SCOPES, "approve", "exclude").await;
    assert_eq!(param(&params, "state"), Some("state-123"));
    assert!(param(&params, "code").is_some());
});

// Issue 22, defect 5: a second tab (or Back and Forward) during the round trip no longer
// makes the first tab's request fail after the member typed a password; a request that is
// over links back to the app the member came from.
holder_test!(a_second_tab_leaves_the_first_usable_and_a_request_that_is_over_links_back, |t| {
    let browser = http();
    let pkce = pkce();
    let open = || async {
        let page = browser.get(authorize_url(&t, SECRET_CLIENT, &pkce.challenge, ALL_SCOPES, &[])).send().await.unwrap();
        request_id(&page.text().await.unwrap())
    };
    let (first, second) = (open().await, open().await);
    assert_ne!(first, second);
    let signed = browser
        .post(format!("{}oauth/authorize/sign-in", t.base))
        .form(&[("request", first.as_str()), ("client", SECRET_CLIENT), ("username", "maria"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER, "the first tab still signs in");
    let decide = |request: String| {
        let browser = browser.clone();
        let base = t.base.clone();
        async move {
            browser
                .post(format!("{base}oauth/authorize/decision"))
                .form(&[("request", request.as_str()), ("client", SECRET_CLIENT), ("decision", "approve"), ("sensitive", "exclude")])
                .send()
                .await
                .unwrap()
        }
    };
    for request in [&second, &first] {
        let decided = decide(request.clone()).await;
        assert_eq!(decided.status(), StatusCode::SEE_OTHER);
        assert!(param(&location_params(&decided), "code").is_some(), "each tab's request gets its code");
    }
    let again = decide(first.clone()).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "a request is answered once");
    let html = again.text().await.unwrap();
    assert!(html.contains("id=\"back-to-app\" href=\"https://new-plan.example/\""), "{html}");
    assert!(html.contains("Nothing was shared"), "{html}");
});

// Issue 22, defect 4: the page the consent screen names, where a member sees each app's access
// (what, since when, until when, sensitive or not) and stops it, its tokens revoked at once.
holder_test!(a_member_sees_the_apps_they_allowed_and_stops_one_at_once, |t| {
    let apps = format!("{}account/apps", t.base);
    let anonymous = http().get(&apps).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert!(anonymous.headers()["location"].to_str().unwrap().starts_with("/sign-in?next="));

    let browser = http();
    let tokens = tokens_in(&t, &browser, "maria", ALL_SCOPES, "exclude").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(fhir_get(&t, &access, &format!("Patient/{}", t.maria)).await.0, StatusCode::OK);

    let html = browser.get(&apps).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Sensitive information is left out.") && html.contains("Access lasts until"), "{html}");
    let marker = "data-grant=\"";
    let start = html.find(marker).expect("the app is listed") + marker.len();
    let grant = html[start..].split('"').next().unwrap().to_owned();
    let stopped = browser.post(format!("{apps}/revoke")).form(&[("grant", grant.as_str())]).send().await.unwrap();
    assert_eq!(stopped.status(), StatusCode::SEE_OTHER);
    let location = stopped.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/account/apps?stopped="), "{location}");
    let html = browser.get(format!("{}{}", t.base, &location[1..])).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("New Plan Baton can no longer read your records.") && html.contains("id=\"no-apps\""), "{html}");
    assert_eq!(fhir_get(&t, &access, &format!("Patient/{}", t.maria)).await.0, StatusCode::UNAUTHORIZED, "revoked at once");
    let (status, _) = token_request(
        &t,
        &[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the refresh token too");
});

holder_test!(approving_without_the_sensitive_choice_is_refused, |t| {
    let browser = http();
    let pkce = pkce();
    let page = browser.get(authorize_url(&t, SECRET_CLIENT, &pkce.challenge, ALL_SCOPES, &[])).send().await.unwrap();
    let request = request_id(&page.text().await.unwrap());
    browser
        .post(format!("{}oauth/authorize/sign-in", t.base))
        .form(&[("request", request.as_str()), ("username", "maria"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let consent = browser.get(format!("{}oauth/authorize/consent?request={request}", t.base)).send().await.unwrap();
    let csp = consent.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self' https://new-plan.example"), "{csp}");
    let html = consent.text().await.unwrap();
    assert!(
        html.contains("Should we share sensitive information?")
            && html.contains("name=\"sensitive\" value=\"include\"")
    );
    assert!(!html.contains("checked"), "no pre-selected answer");
    let refused = browser
        .post(format!("{}oauth/authorize/decision", t.base))
        .form(&[("request", request.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("Choose whether to share sensitive information"));
});

holder_test!(bad_requests_redirect_with_errors_but_unknown_clients_never_redirect, |t| {
    let pkce = pkce();
    let browser = http();
    // Unregistered redirect URI or client: an error page, never a redirect.
    for (name, value) in
        [("redirect_uri", Some("https://evil.example/cb")), ("client_id", Some("nobody")), ("client_id", None)]
    {
        let response = browser
            .get(authorize_url(&t, SECRET_CLIENT, &pkce.challenge, ALL_SCOPES, &[(name, value)]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}={value:?}");
        assert!(response.headers().get("location").is_none(), "{name}={value:?} must not redirect");
    }
    // Everything else: back to the app with an error and the state.
    for (overrides, error) in [
        (vec![("code_challenge_method", Some("plain"))], "invalid_request"),
        (vec![("code_challenge_method", None), ("code_challenge", None)], "invalid_request"),
        (vec![("code_challenge", Some("too-short"))], "invalid_request"),
        (vec![("aud", Some("https://elsewhere.example/fhir"))], "invalid_request"),
        (vec![("aud", None)], "invalid_request"),
        (vec![("response_type", Some("token"))], "unsupported_response_type"),
        (vec![("scope", Some("user/*.write system/*.read"))], "invalid_scope"),
    ] {
        let response = browser
            .get(authorize_url(&t, SECRET_CLIENT, &pkce.challenge, ALL_SCOPES, &overrides))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{overrides:?}");
        let params = location_params(&response);
        assert_eq!(param(&params, "error"), Some(error), "{overrides:?}");
        assert_eq!(param(&params, "state"), Some("state-123"), "{overrides:?}");
    }
    let response = browser
        .get(authorize_url(&t, SECRET_CLIENT, &pkce.challenge, ALL_SCOPES, &[("state", None)]))
        .send()
        .await
        .unwrap();
    assert_eq!(param(&location_params(&response), "error"), Some("invalid_request"), "state is required");
});

holder_test!(wrong_verifier_is_invalid_grant, |t| {
    let browser = http();
    let pkce = pkce();
    let params =
        authorize_as(&t, &browser, "maria", SECRET_CLIENT, &pkce.challenge, ALL_SCOPES, "approve", "include").await;
    let code = param(&params, "code").unwrap();
    let other = support::pkce();
    let (status, body) = token_request(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &other.verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
});

holder_test!(wrong_redirect_uri_at_the_token_endpoint_is_invalid_grant, |t| {
    let browser = http();
    let pkce = pkce();
    let params =
        authorize_as(&t, &browser, "maria", SECRET_CLIENT, &pkce.challenge, ALL_SCOPES, "approve", "include").await;
    let (status, body) = token_request(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", param(&params, "code").unwrap()),
            ("redirect_uri", "https://new-plan.example/other"),
            ("code_verifier", &pkce.verifier),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
});

holder_test!(code_reuse_is_refused_and_revokes_what_it_issued, |t| {
    let browser = http();
    let pkce = pkce();
    let params =
        authorize_as(&t, &browser, "maria", SECRET_CLIENT, &pkce.challenge, ALL_SCOPES, "approve", "include").await;
    let code = param(&params, "code").unwrap().to_owned();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    let (status, first) = token_request(&t, &form).await;
    assert_eq!(status, StatusCode::OK);
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(fhir_get(&t, access, "Condition").await.0, StatusCode::OK);

    let (status, second) = token_request(&t, &form).await;
    assert_eq!((status, second["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert_eq!(fhir_get(&t, access, "Condition").await.0, StatusCode::UNAUTHORIZED, "the first token is revoked");
    let (status, refreshed) = token_request(
        &t,
        &[("grant_type", "refresh_token"), ("refresh_token", first["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!((status, refreshed["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
});

holder_test!(refresh_tokens_rotate_and_reuse_revokes_the_family, |t| {
    let first = tokens_for(&t, "maria", ALL_SCOPES, "include").await;
    let refresh_1 = first["refresh_token"].as_str().unwrap();
    let (status, second) = token_request(&t, &[("grant_type", "refresh_token"), ("refresh_token", refresh_1)]).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let refresh_2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(refresh_1, refresh_2, "rotated");
    assert_eq!(second["patient"], t.maria.as_str());
    let access_2 = second["access_token"].as_str().unwrap();
    assert_eq!(fhir_get(&t, access_2, "Condition").await.0, StatusCode::OK);
    // Rotation does not extend the access the member approved: it ends when the first did.
    let ends = |refresh: &str| {
        let hash = baton_holder::oauth::token_hash(refresh);
        let store = t.store.clone();
        async move { store.oauth_token(&hash).await.unwrap().unwrap().0.expires_at }
    };
    assert_eq!(ends(refresh_1).await, ends(refresh_2).await);

    // Narrowing on refresh is allowed; widening is not.
    let (status, _) = token_request(
        &t,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_2), ("scope", "patient/*.cruds")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Someone replays the spent first refresh token: the whole family dies.
    let (status, reused) = token_request(&t, &[("grant_type", "refresh_token"), ("refresh_token", refresh_1)]).await;
    assert_eq!((status, reused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert_eq!(fhir_get(&t, access_2, "Condition").await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = token_request(&t, &[("grant_type", "refresh_token"), ("refresh_token", refresh_2)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the newest refresh token is revoked too");
});

holder_test!(client_authentication_is_required_and_checked, |t| {
    let response = http()
        .post(format!("{}oauth/token", t.base))
        .basic_auth(SECRET_CLIENT, Some("not-the-right-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let anonymous =
        http().post(format!("{}oauth/token", t.base)).form(&[("grant_type", "refresh_token")]).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let json = http()
        .post(format!("{}oauth/token", t.base))
        .basic_auth(SECRET_CLIENT, Some(SECRET))
        .json(&serde_json::json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::BAD_REQUEST, "form encoding is required");
    let (status, body) = token_request(&t, &[("grant_type", "password")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
});

holder_test!(private_key_jwt_with_rs384_and_es384_and_jti_replay_refused, |t| {
    for alg in [Algorithm::RS384, Algorithm::ES384] {
        let browser = http();
        let pkce = pkce();
        let params =
            authorize_as(&t, &browser, "maria", KEY_CLIENT, &pkce.challenge, ALL_SCOPES, "approve", "exclude").await;
        let assertion = client_assertion(&t, alg, &format!("jti-{alg:?}"), 120, &format!("{}oauth/token", t.base));
        let exchange = |assertion: String, code: String| {
            let verifier = pkce.verifier.clone();
            let url = format!("{}oauth/token", t.base);
            async move {
                let response = http()
                    .post(url)
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", code.as_str()),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", verifier.as_str()),
                        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                        ("client_assertion", assertion.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            }
        };
        let code = param(&params, "code").unwrap().to_owned();
        let (status, body) = exchange(assertion.clone(), code).await;
        assert_eq!(status, StatusCode::OK, "{alg:?}: {body}");
        assert_eq!(body["patient"], t.maria.as_str());

        // The same assertion again (a replayed jti) is refused, whatever it carries.
        let params =
            authorize_as(&t, &browser, "maria", KEY_CLIENT, &pkce.challenge, ALL_SCOPES, "approve", "exclude").await;
        let (status, body) = exchange(assertion, param(&params, "code").unwrap().to_owned()).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{alg:?}");
    }
    // Too long-lived, or for another audience.
    for assertion in [
        client_assertion(&t, Algorithm::RS384, "long", 3600, &format!("{}oauth/token", t.base)),
        client_assertion(&t, Algorithm::RS384, "aud", 60, "https://elsewhere.example/token"),
    ] {
        let response = http()
            .post(format!("{}oauth/token", t.base))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
});

holder_test!(introspection_and_revocation, |t| {
    let body = tokens_for(&t, "maria", ALL_SCOPES, "include").await;
    let access = body["access_token"].as_str().unwrap();
    let introspect = |token: String| {
        let url = format!("{}oauth/introspect", t.base);
        async move {
            http()
                .post(url)
                .basic_auth(SECRET_CLIENT, Some(SECRET))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let active = introspect(access.to_owned()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["patient"], t.maria.as_str());
    assert_eq!(active["sensitive_data"], "included");
    assert_eq!(active["client_id"], SECRET_CLIENT);
    assert_eq!(introspect("garbage".into()).await["active"], false);

    let revoked = http()
        .post(format!("{}oauth/revoke", t.base))
        .basic_auth(SECRET_CLIENT, Some(SECRET))
        .form(&[("token", body["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(introspect(access.to_owned()).await["active"], false, "revoking the refresh token revokes the grant");
    assert_eq!(fhir_get(&t, access, "Condition").await.0, StatusCode::UNAUTHORIZED);
});

holder_test!(a_client_built_on_the_oauth2_crate_completes_the_flow, |t| {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope,
        TokenResponse, TokenUrl,
    };

    let client = BasicClient::new(ClientId::new(SECRET_CLIENT.into()))
        .set_client_secret(ClientSecret::new(SECRET.into()))
        .set_auth_uri(AuthUrl::new(format!("{}oauth/authorize", t.base)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}oauth/token", t.base)).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(ALL_SCOPES.split(' ').map(|s| Scope::new(s.into())))
        .add_extra_param("aud", t.fhir.clone())
        .set_pkce_challenge(challenge)
        .url();
    let browser = http();
    let html = browser.get(url).send().await.unwrap().text().await.unwrap();
    let request = request_id(&html);
    browser
        .post(format!("{}oauth/authorize/sign-in", t.base))
        .form(&[("request", request.as_str()), ("username", "maria"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let decided = browser
        .post(format!("{}oauth/authorize/decision", t.base))
        .form(&[("request", request.as_str()), ("decision", "approve"), ("sensitive", "exclude")])
        .send()
        .await
        .unwrap();
    let params = location_params(&decided);
    assert_eq!(param(&params, "state"), Some(csrf.secret().as_str()));
    let http_client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let token = client
        .exchange_code(AuthorizationCode::new(param(&params, "code").unwrap().to_owned()))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .expect("the oauth2 crate's exchange succeeds");
    assert!(token.refresh_token().is_some());
    let (status, _) = fhir_get(&t, token.access_token().secret(), "ExplanationOfBenefit?_count=5").await;
    assert_eq!(status, StatusCode::OK);
});

holder_test!(a_suspended_system_gets_no_token_and_its_tokens_stop_at_once, |t| {
    use baton_store::{ClientState, Timestamp};
    let (status, body) = system_token(&t, PAYER_CLIENT, "system/*.rs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(fhir_get(&t, &token, "Group").await.0, StatusCode::OK);

    let now = Timestamp::now();
    assert!(t.store.set_oauth_client_state(PAYER_CLIENT, ClientState::Suspended, "alex", now).await.unwrap());
    assert_eq!(fhir_get(&t, &token, "Group").await.0, StatusCode::UNAUTHORIZED, "its token still works");
    let (status, body) = system_token(&t, PAYER_CLIENT, "system/*.rs").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("suspended"), "{body}");

    assert!(t.store.set_oauth_client_state(PAYER_CLIENT, ClientState::Active, "alex", now).await.unwrap());
    assert_eq!(system_token(&t, PAYER_CLIENT, "system/*.rs").await.0, StatusCode::OK, "resumed");
    // A suspended members' app is unknown at the authorization endpoint.
    assert!(t.store.set_oauth_client_state(KEY_CLIENT, ClientState::Suspended, "alex", now).await.unwrap());
    let response = http()
        .get(format!("{}oauth/authorize?response_type=code&client_id={KEY_CLIENT}&redirect_uri={REDIRECT}", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
});

holder_test!(a_key_set_url_is_fetched_again_when_the_client_signs_with_a_new_key, |t| {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    // The client's key set, served by the client: at first its EC key only.
    let full: Value = serde_json::from_str(&client_jwks()).unwrap();
    let ec_only = serde_json::json!({"keys": [full["keys"][1].clone()]});
    assert_eq!(ec_only["keys"][0]["kid"], "ec-1");
    let served = Arc::new(Mutex::new(ec_only.to_string()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let app = {
        let (served, fetches) = (served.clone(), fetches.clone());
        axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().unwrap().clone();
                async move { body }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let settings = baton_holder::ClientSettings {
        client_id: "rotating-plan".into(),
        name: "Rotating Plan".into(),
        redirect_uris: vec![],
        secret: None,
        jwks: None,
        jwks_url: Some(jwks_url.parse().unwrap()),
        scopes: "system/*.rs".into(),
        identifiers: vec![],
    };
    baton_holder::clients::register(&t.store, &settings).await.unwrap();

    let token = |alg| system_token_signed(&t, "rotating-plan", alg, "system/*.rs");
    assert_eq!(token(Algorithm::ES384).await.0, StatusCode::OK);
    assert_eq!(token(Algorithm::ES384).await.0, StatusCode::OK);
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the key set is cached");
    // A key the set does not have yet: refused, and a burst of them does not hammer the URL.
    assert_eq!(token(Algorithm::RS384).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // The client publishes its new key: the next assertion naming it fetches the set again.
    *served.lock().unwrap() = full.to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = token(Algorithm::RS384).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
});

holder_test!(guessing_a_clients_secret_is_held_back, |t| {
    use baton_holder::oauth::limits::PER_CLIENT;
    let attempt = |secret: &'static str| {
        http()
            .post(format!("{}oauth/token", t.base))
            .basic_auth(SECRET_CLIENT, Some(secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
            .send()
    };
    for _ in 0..PER_CLIENT {
        assert_eq!(attempt("a-guessed-wrong-secret").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right secret waits now, and is told how long.
    let held = attempt(SECRET).await.unwrap();
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(held.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(held.json::<Value>().await.unwrap()["error"], "invalid_client");
    // Another client is not.
    let (status, body) = system_token(&t, PAYER_CLIENT, "system/*.rs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
});
