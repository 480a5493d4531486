//! The Payer-to-Payer API on the old plan's side, as another plan's system meets it: SMART
//! Backend Services tokens and `Patient/$member-match` (HRex 1.2), with the PDex 2.2 examples
//! as inputs.

#[macro_use]
mod support;

use baton_holder::oauth::client_credentials::MEMBER_MATCH_SCOPE;
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

async fn member_match_token(t: &TestHolder) -> String {
    let (status, body) = system_token(t, PAYER_CLIENT, MEMBER_MATCH_SCOPE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn member_match(t: &TestHolder, token: &str, body: &str) -> (StatusCode, Value) {
    let response = http()
        .post(format!("{}/Patient/$member-match", t.fhir))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

/// The first member of PDex 2.2's `Parameters-payer-multi-member-match-in` example, as the
/// parameters of a single `$member-match`.
fn pdex_example() -> Value {
    let path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pdex-2.2.0/Parameters-payer-multi-member-match-in.json");
    let bulk: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("the PDex example")).unwrap();
    json!({"resourceType": "Parameters", "parameter": bulk["parameter"][0]["part"].clone()})
}

/// The example, made about Maria (the holder's first member) and consistent with mm-6.
fn maria_request(t: &TestHolder) -> Value {
    let maria = &baton_synth::demo_members("rb")[0];
    assert_eq!(maria.patient_id, t.maria);
    let mut body = pdex_example();
    for parameter in body["parameter"].as_array_mut().unwrap() {
        let name = parameter["name"].as_str().unwrap().to_owned();
        let resource = &mut parameter["resource"];
        match name.as_str() {
            "MemberPatient" => {
                resource["name"] =
                    json!([{"use": "official", "family": maria.family.to_uppercase(), "given": [maria.given]}]);
                resource["birthDate"] = json!(baton_vocab::day::format(maria.birth_date));
                resource["identifier"] = json!([]);
            }
            "CoverageToMatch" => {
                resource["identifier"][0]["value"] = json!(maria.member_id);
                resource["subscriberId"] = json!("not-a-member-id-here");
                resource["beneficiary"] = json!({"reference": "Patient/patient-1"});
            }
            "Consent" => {
                resource["patient"] = json!({"reference": "Patient/patient-1"});
                let today = time::OffsetDateTime::now_utc().date();
                resource["provision"]["period"] = json!({
                    "start": baton_vocab::day::format(today.previous_day().unwrap()),
                    "end": baton_vocab::day::format(today.next_day().unwrap().next_day().unwrap()),
                });
            }
            _ => {}
        }
    }
    body
}

/// The same, about James (the holder's second member).
fn james_request(t: &TestHolder) -> Value {
    let james = &baton_synth::demo_members("rb")[1];
    let mut request = maria_request(t);
    parameter(&mut request, "MemberPatient")["resource"]["name"] =
        json!([{"family": james.family, "given": [james.given]}]);
    parameter(&mut request, "MemberPatient")["resource"]["birthDate"] = json!(baton_vocab::day::format(james.birth_date));
    parameter(&mut request, "CoverageToMatch")["resource"]["identifier"][0]["value"] = json!(james.member_id);
    request
}

fn parameter<'a>(body: &'a mut Value, name: &str) -> &'a mut Value {
    body["parameter"].as_array_mut().unwrap().iter_mut().find(|p| p["name"] == name).unwrap()
}

fn diagnostics(outcome: &Value) -> &str {
    outcome["issue"][0]["diagnostics"].as_str().unwrap_or_default()
}

holder_test!(backend_services_tokens_go_to_registered_systems_for_their_scopes_only, |t| {
    let config: Value =
        http().get(format!("{}/.well-known/smart-configuration", t.fhir)).send().await.unwrap().json().await.unwrap();
    assert!(config["grant_types_supported"].as_array().unwrap().contains(&json!("client_credentials")));
    assert!(config["capabilities"].as_array().unwrap().contains(&json!("client-confidential-asymmetric")));

    let (status, body) =
        system_token(&t, PAYER_CLIENT, &format!("{MEMBER_MATCH_SCOPE} system/Patient.read patient/*.rs")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], format!("{MEMBER_MATCH_SCOPE} system/Patient.read"), "only what it is registered for");
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_i64().unwrap() <= 300);
    assert!(body.get("refresh_token").is_none());

    // A members' app (it has redirect URIs) cannot use client_credentials.
    let (status, body) = system_token(&t, KEY_CLIENT, MEMBER_MATCH_SCOPE).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "{body}");
    // Nor can a shared secret stand in for the signed assertion.
    let response = http()
        .post(format!("{}oauth/token", t.base))
        .basic_auth(SECRET_CLIENT, Some(SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", MEMBER_MATCH_SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Nothing it may have: refused.
    let (status, body) = system_token(&t, PAYER_CLIENT, "system/*.write patient/*.rs").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{body}");

    // A replayed assertion is refused.
    let assertion =
        client_assertion_for(&t, PAYER_CLIENT, Algorithm::RS384, "once", 120, &format!("{}oauth/token", t.base));
    let ask = || {
        http().post(format!("{}oauth/token", t.base)).form(&[
            ("grant_type", "client_credentials"),
            ("scope", MEMBER_MATCH_SCOPE),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ])
    };
    assert_eq!(ask().send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(ask().send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "jti replay");

    // A system token reads no member's records directly.
    let token = member_match_token(&t).await;
    let (status, _) = fhir_get(&t, &token, &format!("Patient/{}", t.maria)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
});

holder_test!(one_member_matches_on_card_id_family_name_and_birth_date, |t| {
    let token = member_match_token(&t).await;
    let body = maria_request(&t).to_string();
    let (status, first) = member_match(&t, &token, &body).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["resourceType"], "Parameters");
    let identifier = &first["parameter"][0];
    assert_eq!(identifier["name"], "MemberIdentifier");
    assert_eq!(identifier["valueIdentifier"]["type"]["coding"][0]["code"], "UMB");
    assert_eq!(first["parameter"][1]["valueReference"]["reference"], format!("Patient/{}", t.maria));
    // The identifier is the member's, the same every time.
    let (_, second) = member_match(&t, &token, &body).await;
    assert_eq!(second["parameter"][0]["valueIdentifier"]["value"], identifier["valueIdentifier"]["value"]);
    // The Consent is kept with the match, and the match is audited.
    let account = t.store.account_by_member_id(&baton_synth::demo_members("rb")[0].member_id).await.unwrap().unwrap();
    let matches = t.store.member_matches(PAYER_CLIENT, account.id).await.unwrap();
    assert_eq!(matches.len(), 2);
    assert_eq!(matches[0].policy, baton_vocab::ConsentPolicy::Regular);
    assert!(matches[0].consent.contains("patient-privacy"));
    let audit = t
        .store
        .search_audit(&baton_store::AuditQuery { action: Some("p2p.member_match".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].member_account, Some(account.id.0));
});

holder_test!(no_match_several_or_an_unhonourable_consent_is_a_422_without_an_id, |t| {
    let token = member_match_token(&t).await;
    let refused = |status: StatusCode, body: &Value| {
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert!(!body.to_string().contains(&t.maria), "no id in a refusal: {body}");
    };
    // The card's id alone, with another person's demographics, never matches.
    let mut other_birth = maria_request(&t);
    parameter(&mut other_birth, "MemberPatient")["resource"]["birthDate"] = json!("1950-01-01");
    let (status, body) = member_match(&t, &token, &other_birth.to_string()).await;
    refused(status, &body);
    assert!(diagnostics(&body).contains("no member matches"), "{body}");
    let mut other_family = maria_request(&t);
    parameter(&mut other_family, "MemberPatient")["resource"]["name"][0]["family"] = json!("Somebody-Else");
    let (status, body) = member_match(&t, &token, &other_family.to_string()).await;
    refused(status, &body);
    // Another given name (by default compared without case or accents) is another person.
    let mut other_given = maria_request(&t);
    parameter(&mut other_given, "MemberPatient")["resource"]["name"][0]["given"] = json!(["Someone"]);
    let (status, body) = member_match(&t, &token, &other_given.to_string()).await;
    refused(status, &body);
    // Demographics alone, with an id this plan never issued, match nobody.
    let mut unknown_id = maria_request(&t);
    parameter(&mut unknown_id, "CoverageToMatch")["resource"]["identifier"][0]["value"] = json!("NOT-OURS-1");
    let (status, body) = member_match(&t, &token, &unknown_id.to_string()).await;
    refused(status, &body);

    // Matched, but the Consent cannot be honoured.
    let cases: [(&str, Value, &str); 3] = [
        ("status", json!("inactive"), "not active"),
        ("policy", json!([{"uri": "http://example.org/some-other-policy"}]), "policy"),
        ("provision", json!({"type": "permit", "period": {"start": "2020-01-01", "end": "2020-12-31"}}), "ended"),
    ];
    for (element, value, why) in cases {
        let mut body = maria_request(&t);
        parameter(&mut body, "Consent")["resource"][element] = value;
        let (status, outcome) = member_match(&t, &token, &body.to_string()).await;
        refused(status, &outcome);
        assert!(diagnostics(&outcome).contains(why), "{element}: {outcome}");
    }
    // mm-1: the Consent names this plan as the source and the plan asking as the recipient
    // (both known here by the identifiers of the IG's example).
    for (index, why) in [(0, "as the source"), (1, "as the recipient")] {
        let mut body = maria_request(&t);
        parameter(&mut body, "Consent")["resource"]["provision"]["actor"][index]["reference"]["identifier"]["value"] =
            json!("1111111111");
        let (status, outcome) = member_match(&t, &token, &body.to_string()).await;
        refused(status, &outcome);
        assert!(diagnostics(&outcome).contains(why), "{outcome}");
    }
});

holder_test!(a_malformed_request_is_a_400_naming_the_element_never_a_500, |t| {
    let token = member_match_token(&t).await;
    // The PDex example as published refers to `Patient/1` from a MemberPatient whose id is
    // `patient-1`: HRex mm-6 wants local references to the MemberPatient.
    let (status, body) = member_match(&t, &token, &pdex_example().to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(diagnostics(&body).contains("CoverageToMatch.beneficiary"), "{body}");

    let mut no_birth = maria_request(&t);
    parameter(&mut no_birth, "MemberPatient")["resource"].as_object_mut().unwrap().remove("birthDate");
    let mut two_consents = maria_request(&t);
    let consent = parameter(&mut two_consents, "Consent").clone();
    two_consents["parameter"].as_array_mut().unwrap().push(consent);
    let mut no_ids = maria_request(&t);
    let coverage = &mut parameter(&mut no_ids, "CoverageToMatch")["resource"];
    coverage.as_object_mut().unwrap().remove("identifier");
    coverage.as_object_mut().unwrap().remove("subscriberId");
    let mut wrong_type = maria_request(&t);
    parameter(&mut wrong_type, "Consent")["resource"]["resourceType"] = json!("Coverage");
    let cases = [
        (no_birth.to_string(), "MemberPatient.birthDate"),
        (two_consents.to_string(), "Consent is given more than once"),
        (no_ids.to_string(), "CoverageToMatch needs the member id"),
        (wrong_type.to_string(), "Consent must be a Consent"),
        ("".to_owned(), "not JSON"),
        ("[]".to_owned(), "Parameters"),
        (r#"{"resourceType": "Parameters"}"#.to_owned(), "Parameters.parameter"),
        (r#"{"resourceType": "Parameters", "parameter": [{"name": "MemberPatient"}]}"#.to_owned(), "MemberPatient"),
        (r#"{"resourceType": "Parameters", "parameter": 7}"#.to_owned(), "Parameters.parameter"),
        (r#"{"resourceType": "Patient"}"#.to_owned(), "Parameters"),
    ];
    for (body, says) in cases {
        let (status, outcome) = member_match(&t, &token, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {outcome}");
        assert!(diagnostics(&outcome).contains(says), "{body}: {outcome}");
    }
});

holder_test!(members_apps_cannot_match_and_guessing_is_held_back, |t| {
    // A members' app token, valid for reading that member's records, is refused here.
    let app = tokens_for(&t, "maria", ALL_SCOPES, "include").await;
    let (status, body) = member_match(&t, app["access_token"].as_str().unwrap(), &maria_request(&t).to_string()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = member_match(&t, "not-a-token", &maria_request(&t).to_string()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A system token without the operation's scope.
    let (status, body) = system_token(&t, PAYER_CLIENT, "system/*.rs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = member_match(&t, body["access_token"].as_str().unwrap(), &maria_request(&t).to_string()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Guessing: failed matches count per client; past the limit even a good request waits.
    let token = member_match_token(&t).await;
    let mut guess = maria_request(&t);
    parameter(&mut guess, "MemberPatient")["resource"]["birthDate"] = json!("1950-01-01");
    for _ in 0..baton_holder::p2p::member_match::FAILURES_ALLOWED {
        assert_eq!(member_match(&t, &token, &guess.to_string()).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, body) = member_match(&t, &token, &maria_request(&t).to_string()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["issue"][0]["code"], "throttled");
});

holder_test!(a_matched_member_is_read_as_their_consent_allows_and_no_one_else, |t| {
    let (status, body) = system_token(&t, PAYER_CLIENT, &format!("{MEMBER_MATCH_SCOPE} system/*.rs")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let everything = format!("Patient/{}/$everything?_count=1000", t.maria);
    // Before any match, the token reaches no member.
    let (status, _) = fhir_get(&t, &token, &everything).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Matched with #regular: everything but what is sensitive.
    assert_eq!(member_match(&t, &token, &maria_request(&t).to_string()).await.0, StatusCode::OK);
    let (status, regular) = fhir_get(&t, &token, &everything).await;
    assert_eq!(status, StatusCode::OK, "{regular}");
    let regular_total = regular["total"].as_u64().unwrap();
    assert!(regular_total > 50, "{regular_total}");
    // Another member, not matched, stays out of reach, by any path.
    for path in [
        format!("Patient/{}/$everything", t.james),
        format!("Patient/{}", t.james),
        format!("Condition?patient={}", t.james),
    ] {
        assert_eq!(fhir_get(&t, &token, &path).await.0, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, conditions) = fhir_get(&t, &token, &format!("Condition?patient={}", t.maria)).await;
    assert_eq!(status, StatusCode::OK, "{conditions}");

    // Matched again with #sensitive: the sensitive records come too.
    let mut sensitive = maria_request(&t);
    parameter(&mut sensitive, "Consent")["resource"]["policy"] =
        json!([{"uri": "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#sensitive"}]);
    assert_eq!(member_match(&t, &token, &sensitive.to_string()).await.0, StatusCode::OK);
    let (_, all) = fhir_get(&t, &token, &everything).await;
    let all_total = all["total"].as_u64().unwrap();
    assert!(all_total > regular_total, "Maria has sensitive records: {all_total} vs {regular_total}");
    // The same count a member's own app sees when she includes sensitive information.
    let app = tokens_for(&t, "maria", ALL_SCOPES, "include").await;
    let (_, own) = fhir_get(&t, app["access_token"].as_str().unwrap(), &everything).await;
    assert_eq!(own["total"], all["total"]);

    // Claims come without remittances and cost-sharing (the member's own app sees them).
    let account = t.store.account_by_member_id(&baton_synth::demo_members("rb")[0].member_id).await.unwrap().unwrap();
    let paid = json!({
        "resourceType": "ExplanationOfBenefit", "id": "maria-paid-claim", "status": "active", "use": "claim",
        "patient": {"reference": format!("Patient/{}", t.maria)},
        "total": [{"category": {"coding": [{"code": "submitted"}]}, "amount": {"value": 120.0, "currency": "USD"}}],
        "payment": {"amount": {"value": 100.0, "currency": "USD"}},
        "item": [{"sequence": 1, "adjudication": [{"category": {"coding": [{"code": "paidtoprovider"}]},
            "amount": {"value": 100.0, "currency": "USD"}}]}]
    });
    let loaded = baton_records::load(&t.store, [paid], &t.fhir, Some(account.id)).await.unwrap();
    assert_eq!(loaded.stored, 1, "{:?}", loaded.rejected);
    let claims = format!("ExplanationOfBenefit?patient={}&_count=1000", t.maria);
    let with_total = |bundle: &Value| {
        bundle["entry"].as_array().map_or(0, |e| e.iter().filter(|e| e["resource"].get("total").is_some()).count())
    };
    let (status, for_plan) = fhir_get(&t, &token, &claims).await;
    assert_eq!(status, StatusCode::OK, "{for_plan}");
    assert!(for_plan["entry"].as_array().is_some_and(|e| !e.is_empty()), "{for_plan}");
    assert_eq!(with_total(&for_plan), 0);
    assert!(
        !for_plan.to_string().contains("\"payment\"") && !for_plan.to_string().contains("paidtoprovider\"}]},\"amount")
    );
    let (_, for_member) = fhir_get(&t, app["access_token"].as_str().unwrap(), &claims).await;
    assert!(with_total(&for_member) > 0, "{for_member}");

    // Each read is audited against the member.
    let reads = t
        .store
        .search_audit(&baton_store::AuditQuery { action: Some("p2p.read".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(reads.len(), 4, "{reads:?}");
});

/// Every path to a value in `value`, as JSON pointers.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            map.iter().for_each(|(k, v)| pointers(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out))
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

holder_test!(no_mutation_of_a_request_is_ever_a_server_error, |t| {
    use rand::{Rng, SeedableRng};
    let token = member_match_token(&t).await;
    let valid = maria_request(&t);
    let mut all = Vec::new();
    pointers(&valid, String::new(), &mut all);
    all.retain(|p| !p.is_empty());
    let replacements = [
        json!(null),
        json!(""),
        json!(7),
        json!(-1.5),
        json!(true),
        json!([]),
        json!({}),
        json!("Patient/x"),
        json!("9999-99-99"),
        json!([{"a": 1}]),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(57);
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..150 {
        let mut body = valid.clone();
        for _ in 0..rng.random_range(1..4) {
            let pointer = &all[rng.random_range(0..all.len())];
            if rng.random_bool(0.3) {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                match body.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(items)) => {
                        if let Ok(i) = key.parse::<usize>()
                            && i < items.len()
                        {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            } else if let Some(slot) = body.pointer_mut(pointer) {
                *slot = replacements[rng.random_range(0..replacements.len())].clone();
            }
        }
        let (status, answer) = member_match(&t, &token, &body.to_string()).await;
        assert!(
            [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY].contains(&status),
            "{status} for {body}: {answer}"
        );
        let expected = if status == StatusCode::OK { "Parameters" } else { "OperationOutcome" };
        assert_eq!(answer["resourceType"], expected, "{body}");
        *seen.entry(status.as_u16()).or_insert(0) += 1;
        if status == StatusCode::UNPROCESSABLE_ENTITY && seen[&422] > 12 {
            // Held back past the failure limit would turn these into 429s: the guard has its own test.
            break;
        }
    }
    assert!(seen.contains_key(&400) && seen.len() >= 2, "the mutations reach more than one outcome: {seen:?}");
});

holder_test!(a_bulk_match_answers_asynchronously_with_a_group_per_outcome, |t| {
    use baton_holder::oauth::client_credentials::BULK_MEMBER_MATCH_SCOPE;
    let (status, body) = system_token(&t, PAYER_CLIENT, BULK_MEMBER_MATCH_SCOPE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let bundle = |request: Value| json!({"name": "MemberBundle", "part": request["parameter"].clone()});
    let mut expired = maria_request(&t);
    parameter(&mut expired, "Consent")["resource"]["provision"]["period"] =
        json!({"start": "2020-01-01", "end": "2020-12-31"});
    let request = json!({"resourceType": "Parameters", "parameter": [
        bundle(maria_request(&t)),
        // As published, the IG's member (unknown here, and its references are not local).
        bundle(pdex_example()),
        bundle(expired),
    ]});
    let kick_off = |prefer: bool, token: String| {
        let url = format!("{}/Group/$bulk-member-match", t.fhir);
        let body = request.to_string();
        async move {
            let mut ask =
                http().post(url).bearer_auth(token).header("content-type", "application/fhir+json").body(body);
            if prefer {
                ask = ask.header("prefer", "respond-async");
            }
            ask.send().await.unwrap()
        }
    };
    assert_eq!(kick_off(false, token.clone()).await.status(), StatusCode::BAD_REQUEST, "asynchronous only");
    let app = tokens_for(&t, "maria", ALL_SCOPES, "include").await;
    assert_eq!(kick_off(true, app["access_token"].as_str().unwrap().to_owned()).await.status(), StatusCode::FORBIDDEN);

    let accepted = kick_off(true, token.clone()).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let location = accepted.headers()["content-location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&t.fhir), "{location}");
    let manifest = loop {
        let response = http().get(&location).bearer_auth(&token).send().await.unwrap();
        match response.status() {
            StatusCode::ACCEPTED => wait_as_told(&response).await,
            StatusCode::OK => break response.json::<Value>().await.unwrap(),
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    };
    assert_eq!(manifest["requiresAccessToken"], true);
    assert_eq!(manifest["output"][0]["type"], "Group");
    let url = manifest["output"][0]["url"].as_str().unwrap();
    assert_eq!(http().get(url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "the file needs the token");
    let ndjson = http().get(url).bearer_auth(&token).send().await.unwrap().text().await.unwrap();
    let groups: Vec<Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by_code = |code: &str| {
        groups.iter().find(|g| g["code"]["coding"][0]["code"] == code).unwrap_or_else(|| panic!("{code}: {ndjson}"))
    };
    let matched = by_code("match");
    assert_eq!(matched["quantity"], 1);
    assert_eq!(matched["member"][0]["entity"]["reference"], format!("Patient/{}", t.maria));
    let submitted = &matched["contained"][0];
    assert_eq!(
        submitted["name"][0]["family"],
        baton_synth::demo_members("rb")[0].family.to_uppercase(),
        "as submitted"
    );
    assert!(submitted.get("meta").is_none());
    assert_eq!(
        matched["member"][0]["entity"]["extension"][0]["valueReference"]["reference"],
        format!("#{}", submitted["id"].as_str().unwrap())
    );
    assert_eq!(by_code("nomatch")["contained"][0]["name"][0]["family"], "Person");
    assert_eq!(by_code("consentconstraint")["quantity"], 1);
    assert_eq!(groups.len(), 3);

    // The match holds for reading, as a single match does.
    let (status, _) = fhir_get(&t, &token, &format!("Patient/{}", t.maria)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "this token has no system/*.rs");

    // Unknown requests are 404; a cancelled one is gone.
    assert_eq!(
        http().get(format!("{}/bulk-status/nope", t.fhir)).bearer_auth(&token).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(http().delete(&location).bearer_auth(&token).send().await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(http().get(&location).bearer_auth(&token).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(http().get(url).bearer_auth(&token).send().await.unwrap().status(), StatusCode::NOT_FOUND);
});

/// Waits as long as a 202 says (`Retry-After`, seconds), as a conforming client does.
async fn wait_as_told(response: &reqwest::Response) {
    let seconds: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
}

/// Polls a kick-off's status until its manifest.
async fn manifest(location: &str, token: &str) -> Value {
    for _ in 0..60 {
        let response = http().get(location).bearer_auth(token).send().await.unwrap();
        match response.status() {
            StatusCode::ACCEPTED => wait_as_told(&response).await,
            StatusCode::OK => return response.json().await.unwrap(),
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    panic!("{location} never completed")
}

/// Every line of every output file of a manifest, by resource type.
async fn outputs(manifest: &Value, token: &str) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut all = std::collections::BTreeMap::new();
    for output in manifest["output"].as_array().unwrap() {
        let text =
            http().get(output["url"].as_str().unwrap()).bearer_auth(token).send().await.unwrap().text().await.unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(output["count"].as_u64().unwrap() as usize, lines.len());
        all.insert(output["type"].as_str().unwrap().to_owned(), lines);
    }
    all
}

holder_test!(a_matched_group_is_exported_as_its_consents_allow, |t| {
    use baton_holder::oauth::client_credentials::BULK_MEMBER_MATCH_SCOPE;
    let (status, body) = system_token(&t, PAYER_CLIENT, &format!("{BULK_MEMBER_MATCH_SCOPE} system/*.rs")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let post = |url: String, body: String, prefer: bool| {
        let token = token.clone();
        async move {
            let mut ask =
                http().post(url).bearer_auth(token).header("content-type", "application/fhir+json").body(body);
            if prefer {
                ask = ask.header("prefer", "respond-async");
            }
            ask.send().await.unwrap()
        }
    };
    let request = json!({"resourceType": "Parameters", "parameter": [
        {"name": "MemberBundle", "part": maria_request(&t)["parameter"].clone()},
        {"name": "MemberBundle", "part": pdex_example()["parameter"].clone()},
    ]});
    let accepted = post(format!("{}/Group/$bulk-member-match", t.fhir), request.to_string(), true).await;
    let location = accepted.headers()["content-location"].to_str().unwrap().to_owned();
    let groups = outputs(&manifest(&location, &token).await, &token).await.remove("Group").unwrap();
    let id = |code: &str| {
        groups.iter().find(|g| g["code"]["coding"][0]["code"] == code).unwrap()["id"].as_str().unwrap().to_owned()
    };
    let export = |group: String| format!("{}/Group/{group}/$davinci-data-export", t.fhir);
    let p2p = json!({"resourceType": "Parameters", "parameter": [{"name": "exportType", "valueCode": "hl7.fhir.us.davinci-pdex#payertopayer"}]});

    // The Groups are this client's to read and search.
    let (status, read) = fhir_get(&t, &token, &format!("Group/{}", id("match"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], id("match").as_str());
    assert_eq!(read["characteristic"][0]["code"]["coding"][0]["code"], "match");
    for (query, total) in [("characteristic=match", 1), ("code=nomatch", 1), ("", 2), ("code=consentconstraint", 0)] {
        let (status, found) = fhir_get(&t, &token, &format!("Group?{query}")).await;
        assert_eq!((status, found["total"].as_u64()), (StatusCode::OK, Some(total)), "{query}: {found}");
    }
    let (_, by_id) = fhir_get(&t, &token, &format!("Group?identifier={}", id("nomatch"))).await;
    assert_eq!(by_id["entry"][0]["resource"]["id"], id("nomatch").as_str());
    assert_eq!(fhir_get(&t, &token, "Group?name=x").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(fhir_get(&t, &token, "Group/not-ours").await.0, StatusCode::NOT_FOUND);

    // What is refused, and how.
    let refused = [
        (export(id("match")), p2p.to_string(), false, StatusCode::BAD_REQUEST),
        (
            format!("{}?exportType=hl7.fhir.us.davinci-pdex%23provider-delta", export(id("match"))),
            String::new(),
            true,
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{}?_typeFilter=Condition%3Fcategory%3Dx", export(id("match"))),
            String::new(),
            true,
            StatusCode::BAD_REQUEST,
        ),
        (format!("{}?_type=Spaceship", export(id("match"))), String::new(), true, StatusCode::BAD_REQUEST),
        (export(id("nomatch")), p2p.to_string(), true, StatusCode::UNPROCESSABLE_ENTITY),
        (export("not-a-group".into()), p2p.to_string(), true, StatusCode::NOT_FOUND),
    ];
    for (url, body, prefer, expected) in refused {
        let response = post(url.clone(), body, prefer).await;
        assert_eq!(response.status(), expected, "{url}: {}", response.text().await.unwrap());
    }

    // Everything Maria's #regular Consent allows: what her own app sees when she leaves
    // sensitive information out, claims without amounts, and one transmitter Provenance.
    let accepted = post(export(id("match")), p2p.to_string(), true).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let location = accepted.headers()["content-location"].to_str().unwrap().to_owned();
    let manifest_body = manifest(&location, &token).await;
    assert_eq!(manifest_body["error"], json!([]));
    let files = outputs(&manifest_body, &token).await;
    let transmitter: Vec<&Value> =
        files["Provenance"].iter().filter(|p| p["agent"][0]["type"]["coding"][0]["code"] == "transmitter").collect();
    assert_eq!(transmitter.len(), 1);
    assert_eq!(transmitter[0]["target"], json!([{"reference": format!("Patient/{}", t.maria)}]));
    let exported: usize = files.values().map(Vec::len).sum::<usize>() - 1;
    let app = tokens_for(&t, "maria", ALL_SCOPES, "exclude").await;
    let (_, own) =
        fhir_get(&t, app["access_token"].as_str().unwrap(), &format!("Patient/{}/$everything?_count=1", t.maria)).await;
    assert_eq!(
        exported as u64,
        own["total"].as_u64().unwrap(),
        "the same records as the member's own app without sensitive ones"
    );
    assert!(files["ExplanationOfBenefit"].iter().all(|c| c.get("total").is_none() && c.get("payment").is_none()));
    assert!(files.values().flatten().all(|r| !r.to_string().contains("42CFRPart2")), "nothing sensitive");

    // _typeFilter on a date this plan indexes: the claims its own search finds, and only those.
    let claims = &files["ExplanationOfBenefit"];
    let mut starts: Vec<&str> = claims.iter().filter_map(|c| c["billablePeriod"]["start"].as_str()).collect();
    starts.sort_unstable();
    let middle = &starts[starts.len() / 2][..10];
    let (_, searched) =
        fhir_get(&t, &token, &format!("ExplanationOfBenefit?patient={}&service-date=ge{middle}&_count=1000", t.maria))
            .await;
    let mut expected: Vec<&str> =
        searched["entry"].as_array().unwrap().iter().filter_map(|e| e["resource"]["id"].as_str()).collect();
    expected.sort_unstable();
    for (since, some) in [(middle, true), ("2100-01-01", false)] {
        let filter = format!("ExplanationOfBenefit%3Fservice-date%3Dge{since}");
        let url = format!("{}?_type=ExplanationOfBenefit&_typeFilter={filter}", export(id("match")));
        let accepted = post(url, p2p.to_string(), true).await;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED);
        let location = accepted.headers()["content-location"].to_str().unwrap().to_owned();
        let filtered = outputs(&manifest(&location, &token).await, &token).await;
        let mut ids: Vec<&str> =
            filtered.get("ExplanationOfBenefit").into_iter().flatten().filter_map(|c| c["id"].as_str()).collect();
        ids.sort_unstable();
        if some {
            assert!(!ids.is_empty() && ids.len() <= claims.len(), "{} of {}", ids.len(), claims.len());
            assert_eq!(ids, expected, "the same claims as the search with that date");
        } else {
            assert!(ids.is_empty(), "nothing is dated after 2100");
        }
    }

    // `patient` names members of the Group only.
    let outsider = json!({"resourceType": "Parameters", "parameter": [{"name": "patient", "valueReference": {"reference": format!("Patient/{}", t.james)}}]});
    let response = post(export(id("match")), outsider.to_string(), true).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = post(format!("{}?patient=Patient/{}", export(id("match")), t.maria), String::new(), true).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{}", response.text().await.unwrap());

    // _since after everything was written: only the Provenance.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let since = format!("{}?_since={}", export(id("match")), later.replace(':', "%3A").replace('+', "%2B"));
    let accepted = post(since, p2p.to_string(), true).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let location = accepted.headers()["content-location"].to_str().unwrap().to_owned();
    let files = outputs(&manifest(&location, &token).await, &token).await;
    assert_eq!(files.keys().collect::<Vec<_>>(), ["Provenance"], "{files:?}");
});

holder_test!(an_export_whose_worker_died_goes_on_and_holds_every_resource_once, |t| {
    use baton_holder::oauth::client_credentials::BULK_MEMBER_MATCH_SCOPE;
    let (_, body) = system_token(&t, PAYER_CLIENT, &format!("{BULK_MEMBER_MATCH_SCOPE} system/*.rs")).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let ask = |url: String, body: String| {
        let token = token.clone();
        async move { http().post(url).bearer_auth(token).header("prefer", "respond-async").body(body).send().await.unwrap() }
    };
    // James joins Maria in the match, so the export has two members.
    let for_james = james_request(&t);
    let request = json!({"resourceType": "Parameters", "parameter": [
        {"name": "MemberBundle", "part": maria_request(&t)["parameter"].clone()},
        {"name": "MemberBundle", "part": for_james["parameter"].clone()},
    ]});
    let accepted = ask(format!("{}/Group/$bulk-member-match", t.fhir), request.to_string()).await;
    let location = accepted.headers()["content-location"].to_str().unwrap().to_owned();
    let groups = outputs(&manifest(&location, &token).await, &token).await.remove("Group").unwrap();
    let matched = groups.iter().find(|g| g["code"]["coding"][0]["code"] == "match").unwrap();
    assert_eq!(matched["quantity"], 2, "{matched}");
    let export = format!("{}/Group/{}/$davinci-data-export", t.fhir, matched["id"].as_str().unwrap());

    // A whole export, as the reference.
    let accepted = ask(export.clone(), String::new()).await;
    let location = accepted.headers()["content-location"].to_str().unwrap().to_owned();
    let whole = outputs(&manifest(&location, &token).await, &token).await;

    // The same export whose worker wrote the first member and part of the second, then died:
    // the job sits "running", unheard of for minutes, with a stray part past its progress.
    let accepted = ask(export, String::new()).await;
    let location = accepted.headers()["content-location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    let _ = manifest(&location, &token).await;
    let job = t.store.bulk_job(&id).await.unwrap().unwrap();
    let first_member: Vec<baton_store::BulkFile> = {
        let mut parts = Vec::new();
        for file in t.store.bulk_files(&id).await.unwrap() {
            parts.extend(
                t.store.bulk_file_parts(&id, &file.name, None, 100).await.unwrap().into_iter().filter(|p| p.part == 0),
            );
        }
        parts
    };
    t.store.cancel_bulk_job(&id, baton_store::Timestamp::now()).await.unwrap();
    let long_ago = baton_store::Timestamp::now().plus(time::Duration::minutes(-10));
    let died = baton_store::BulkJob {
        id: "died-mid-export".into(),
        state: baton_vocab::BulkJobState::Queued,
        done: 0,
        completed_at: None,
        created_at: long_ago.millis(),
        updated_at: long_ago.millis(),
        ..job
    };
    t.store.insert_bulk_job(&died).await.unwrap();
    assert!(t.store.claim_bulk_job(&died.id, long_ago, long_ago).await.unwrap());
    let mut written: Vec<baton_store::BulkFile> =
        first_member.into_iter().map(|p| baton_store::BulkFile { job_id: died.id.clone(), ..p }).collect();
    let stray = baton_store::BulkFile { part: 1, count: 1, body: "{\"stray\": true}\n".into(), ..written[0].clone() };
    assert!(t.store.append_bulk_parts(&died.id, &written, 1, long_ago).await.unwrap());
    written.clear();
    assert!(t.store.append_bulk_parts(&died.id, &[stray], 1, long_ago).await.unwrap());

    // The next poll takes it over; the files hold what the whole export held.
    let resumed = outputs(&manifest(&format!("{}/bulk-status/{}", t.fhir, died.id), &token).await, &token).await;
    assert_eq!(resumed.keys().collect::<Vec<_>>(), whole.keys().collect::<Vec<_>>());
    for (resource_type, lines) in &whole {
        let ids = |lines: &Vec<Value>| {
            let mut ids: Vec<String> = lines
                .iter()
                .filter(|l| l["resourceType"] != "Provenance" || l.get("target").is_none())
                .map(|l| l["id"].as_str().unwrap_or("").to_owned())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&resumed[resource_type]), ids(lines), "{resource_type}");
        assert!(!resumed[resource_type].iter().any(|l| l.get("stray").is_some()));
    }
    let transmitter =
        resumed["Provenance"].iter().find(|p| p["agent"][0]["type"]["coding"][0]["code"] == "transmitter").unwrap();
    assert_eq!(transmitter["target"].as_array().unwrap().len(), 2, "both members");
});

holder_test!(two_members_answering_to_one_request_match_neither, |t| {
    // Another member with Maria's name and birth date (a duplicate enrolment), her own member id.
    let maria = &baton_synth::demo_members("rb")[0];
    let accounts = baton_accounts::Accounts::new(t.store.clone(), baton_accounts::ThrottlePolicy::default());
    let twin = accounts
        .create_member(baton_accounts::NewMember {
            username: baton_accounts::Username::parse("twin").unwrap(),
            display_name: "Twin".into(),
            password: None,
            member_id: "RB-TWIN-1".into(),
            birth_date: maria.birth_date,
            coverage_start: maria.birth_date,
        })
        .await
        .unwrap();
    t.store.set_account_patient(twin.id, "rb-twin").await.unwrap();
    let patient = json!({"resourceType": "Patient", "id": "rb-twin", "name": [{"family": maria.family, "given": [maria.given]}],
        "birthDate": baton_vocab::day::format(maria.birth_date), "gender": "female"});
    baton_records::load(&t.store, [patient], &t.fhir, Some(twin.id)).await.unwrap();

    // The card names Maria, the Patient's member number the twin: two members, no answer.
    let token = member_match_token(&t).await;
    let mut both = maria_request(&t);
    parameter(&mut both, "MemberPatient")["resource"]["identifier"] = json!([{
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
        "value": "RB-TWIN-1"
    }]);
    let (status, body) = member_match(&t, &token, &both.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(diagnostics(&body).contains("more than one member"), "{body}");
    assert!(!body.to_string().contains(&t.maria) && !body.to_string().contains("rb-twin"));
    // Either alone matches its own member.
    let (status, body) = member_match(&t, &token, &maria_request(&t).to_string()).await;
    assert_eq!(
        (status, body["parameter"][1]["valueReference"]["reference"].as_str()),
        (StatusCode::OK, Some(format!("Patient/{}", t.maria).as_str()))
    );
});

holder_test!(polling_sooner_than_told_is_429_and_guessing_in_bulk_is_held_back, |t| {
    use baton_holder::oauth::client_credentials::BULK_MEMBER_MATCH_SCOPE;
    use baton_store::{BulkJob, Timestamp};
    let (status, body) = system_token(&t, PAYER_CLIENT, BULK_MEMBER_MATCH_SCOPE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    // A request under way (its worker alive): polled, then polled again at once.
    let now = Timestamp::now();
    t.store
        .insert_bulk_job(&BulkJob {
            id: "under-way".into(),
            client_id: PAYER_CLIENT.into(),
            kind: "bulk-member-match".into(),
            state: baton_vocab::BulkJobState::Running,
            request_url: format!("{}/Group/$bulk-member-match", t.fhir),
            request: "{}".into(),
            total: 10,
            done: 3,
            error: None,
            created_at: now.millis(),
            updated_at: now.millis(),
            completed_at: None,
            expires_at: now.millis() + 3_600_000,
        })
        .await
        .unwrap();
    let poll = || http().get(format!("{}/bulk-status/under-way", t.fhir)).bearer_auth(&token).send();
    let first = poll().await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(first.headers()["x-progress"], "3 of 10 members");
    let too_soon = poll().await.unwrap();
    assert_eq!(too_soon.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(too_soon.headers()["retry-after"], first.headers()["retry-after"]);
    assert_eq!(too_soon.json::<Value>().await.unwrap()["issue"][0]["code"], "throttled");
    wait_as_told(&first).await;
    assert_eq!(poll().await.unwrap().status(), StatusCode::ACCEPTED, "polled as told");

    // A batch that is mostly guesses counts as failed matches: afterwards the client is held
    // back from single and bulk matching alike.
    let mut guess = maria_request(&t);
    parameter(&mut guess, "MemberPatient")["resource"]["birthDate"] = json!("1950-01-01");
    let guesses: Vec<Value> = (0..baton_holder::p2p::member_match::FAILURES_ALLOWED)
        .map(|_| json!({"name": "MemberBundle", "part": guess["parameter"].clone()}))
        .collect();
    let request = json!({"resourceType": "Parameters", "parameter": guesses}).to_string();
    let kick_off = || {
        http()
            .post(format!("{}/Group/$bulk-member-match", t.fhir))
            .bearer_auth(&token)
            .header("prefer", "respond-async")
            .header("content-type", "application/fhir+json")
            .body(request.clone())
            .send()
    };
    let accepted = kick_off().await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let manifest = manifest(accepted.headers()["content-location"].to_str().unwrap(), &token).await;
    assert_eq!(manifest["output"].as_array().unwrap().len(), 1);
    let refused = kick_off().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let single = member_match_token(&t).await;
    assert_eq!(member_match(&t, &single, &maria_request(&t).to_string()).await.0, StatusCode::TOO_MANY_REQUESTS);
});

holder_test!(a_batch_of_fifty_sorts_each_member_on_its_own, |t| {
    use baton_holder::oauth::client_credentials::BULK_MEMBER_MATCH_SCOPE;
    let (_, body) = system_token(&t, PAYER_CLIENT, BULK_MEMBER_MATCH_SCOPE).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    // 20 who match (Maria, James), 20 nobody here, 10 whose Consent has ended; one malformed
    // member among them does not fail the batch.
    let for_james = james_request(&t);
    let mut nobody = maria_request(&t);
    parameter(&mut nobody, "CoverageToMatch")["resource"]["identifier"][0]["value"] = json!("NOT-OURS-9");
    let mut ended = maria_request(&t);
    parameter(&mut ended, "Consent")["resource"]["provision"]["period"] =
        json!({"start": "2020-01-01", "end": "2020-12-31"});
    let mut malformed = maria_request(&t);
    parameter(&mut malformed, "MemberPatient")["resource"]["birthDate"] = json!("not a date");
    let bundle = |request: &Value| json!({"name": "MemberBundle", "part": request["parameter"].clone()});
    let maria = maria_request(&t);
    let mut members: Vec<Value> = (0..20).map(|n| bundle(if n % 2 == 0 { &maria } else { &for_james })).collect();
    members.extend((0..19).map(|_| bundle(&nobody)));
    members.push(bundle(&malformed));
    members.extend((0..10).map(|_| bundle(&ended)));
    assert_eq!(members.len(), 50);
    let response = http()
        .post(format!("{}/Group/$bulk-member-match", t.fhir))
        .bearer_auth(&token)
        .header("prefer", "respond-async")
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Parameters", "parameter": members}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["content-location"].to_str().unwrap().to_owned();
    let groups = outputs(&manifest(&location, &token).await, &token).await.remove("Group").unwrap();
    let quantity =
        |code: &str| groups.iter().find(|g| g["code"]["coding"][0]["code"] == code).unwrap()["quantity"].clone();
    assert_eq!(
        (quantity("match"), quantity("nomatch"), quantity("consentconstraint")),
        (json!(20), json!(20), json!(10))
    );
    // In the order sent, each a contained copy of what was sent.
    let matched = groups.iter().find(|g| g["code"]["coding"][0]["code"] == "match").unwrap();
    let references: Vec<&str> =
        matched["member"].as_array().unwrap().iter().filter_map(|m| m["entity"]["reference"].as_str()).collect();
    let (first, second) = (format!("Patient/{}", t.maria), format!("Patient/{}", t.james));
    assert_eq!(references[..2], [first.as_str(), second.as_str()]);
    // Fewer than half guessed wrong: the client is not held back.
    assert_eq!(member_match(&t, &member_match_token(&t).await, &maria_request(&t).to_string()).await.0, StatusCode::OK);
});
