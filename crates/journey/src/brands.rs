//! SMART App Launch 2.2 "User-access Brands and Endpoints": a plan publishes a Bundle of
//! brand Organizations and the FHIR Endpoints they offer; Baton turns it into directory
//! entries (name, aliases, states, logo, FHIR base) and refreshes it with `If-None-Match`.

use std::collections::HashMap;

use serde_json::Value;
use thiserror::Error;
use url::Url;

/// One plan found in a brands Bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandEntry {
    /// A stable id derived from the FHIR base (the same plan keeps its id across refreshes).
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub states: Vec<String>,
    pub logo_url: Option<Url>,
    pub fhir_base: Url,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BrandsError {
    #[error("the brands file is not valid JSON: {0}")]
    Json(String),
    #[error("the brands file is not a FHIR Bundle")]
    NotABundle,
    #[error("the brands Bundle lists no brand with a FHIR R4 endpoint")]
    Empty,
    #[error("the brands file could not be fetched: {0}")]
    Fetch(String),
    #[error("the brands URL must be http or https")]
    Scheme,
    /// The URL's host is (or resolves to) a private, local or otherwise non-public address.
    #[error(
        "the brands URL points to a private or local address ({0}); an operator can allow such addresses with \
         directory.allow_private_addresses"
    )]
    PrivateAddress(String),
    /// A brand's FHIR endpoint is plain http off this machine.
    #[error("the brands file lists a FHIR endpoint over plain http ({0}); Baton connects to plans only over https")]
    Insecure(String),
}

const BRAND_EXTENSION: &str = "http://hl7.org/fhir/StructureDefinition/organization-brand";
const PORTAL_EXTENSION: &str = "http://hl7.org/fhir/StructureDefinition/organization-portal";

/// Reads a User-access Brands Bundle. An Organization's endpoints are its `endpoint`s and its
/// portals' `portalEndpoint`s; an affiliate (`partOf`) without its own uses its parent's.
/// Endpoints that are not active FHIR REST endpoints (or not http/https) are left out.
pub fn parse(text: &str) -> Result<Vec<BrandEntry>, BrandsError> {
    let bundle: Value = serde_json::from_str(text).map_err(|e| BrandsError::Json(e.to_string()))?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(BrandsError::NotABundle);
    }
    let resources: Vec<(&str, &Value)> = bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e.get("fullUrl").and_then(Value::as_str).unwrap_or(""), e.get("resource")?)))
        .collect();
    // Endpoints by every name a reference may use: fullUrl, Endpoint/{id}.
    let mut endpoints: HashMap<String, Url> = HashMap::new();
    for (full_url, resource) in &resources {
        if resource["resourceType"] != "Endpoint" {
            continue;
        }
        let active = resource.get("status").and_then(Value::as_str).is_none_or(|s| s == "active");
        let rest =
            resource.pointer("/connectionType/code").and_then(Value::as_str).is_none_or(|c| c == "hl7-fhir-rest");
        let address = resource
            .get("address")
            .and_then(Value::as_str)
            .and_then(|a| Url::parse(a).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let (true, true, Some(address)) = (active, rest, address) else { continue };
        if !full_url.is_empty() {
            endpoints.insert((*full_url).to_owned(), address.clone());
        }
        if let Some(id) = resource.get("id").and_then(Value::as_str) {
            endpoints.insert(format!("Endpoint/{id}"), address);
        }
    }
    let organizations: HashMap<String, &Value> = resources
        .iter()
        .filter(|(_, r)| r["resourceType"] == "Organization")
        .flat_map(|(full_url, r)| {
            let mut names = vec![(*full_url).to_owned()];
            if let Some(id) = r.get("id").and_then(Value::as_str) {
                names.push(format!("Organization/{id}"));
            }
            names.into_iter().filter(|n| !n.is_empty()).map(move |n| (n, *r))
        })
        .collect();
    let own_endpoints = |organization: &Value| -> Vec<Url> {
        let mut references: Vec<&str> = organization
            .get("endpoint")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("reference").and_then(Value::as_str))
            .collect();
        for extension in organization.get("extension").and_then(Value::as_array).into_iter().flatten() {
            if extension["url"] == PORTAL_EXTENSION {
                for part in extension.get("extension").and_then(Value::as_array).into_iter().flatten() {
                    if part["url"] == "portalEndpoint"
                        && let Some(reference) = part.pointer("/valueReference/reference").and_then(Value::as_str)
                    {
                        references.push(reference);
                    }
                }
            }
        }
        let mut urls: Vec<Url> = references.iter().filter_map(|r| endpoints.get(*r).cloned()).collect();
        urls.dedup();
        urls
    };
    let mut entries: Vec<BrandEntry> = Vec::new();
    for (_, organization) in resources.iter().filter(|(_, r)| r["resourceType"] == "Organization") {
        let Some(name) = organization.get("name").and_then(Value::as_str).map(str::trim).filter(|n| !n.is_empty())
        else {
            continue;
        };
        let mut urls = own_endpoints(organization);
        if urls.is_empty()
            && let Some(parent) =
                organization.pointer("/partOf/reference").and_then(Value::as_str).and_then(|p| organizations.get(p))
        {
            urls = own_endpoints(parent);
        }
        if let Some(insecure) = urls.iter().find(|u| !crate::pinned::is_secure(u)) {
            return Err(BrandsError::Insecure(insecure.to_string()));
        }
        let aliases: Vec<String> = organization
            .get("alias")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let mut states: Vec<String> = organization
            .get("address")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("state").and_then(Value::as_str))
            .map(str::to_uppercase)
            .collect();
        states.sort();
        states.dedup();
        let logo_url = organization
            .get("extension")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|e| e["url"] == BRAND_EXTENSION)
            .flat_map(|e| e.get("extension").and_then(Value::as_array).into_iter().flatten())
            .find(|e| e["url"] == "brandLogo")
            .and_then(|e| e.get("valueUrl").and_then(Value::as_str))
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| u.scheme() == "https" || u.scheme() == "http");
        for fhir_base in urls {
            // Two brands may share an endpoint: the first names it.
            if entries.iter().any(|e| e.fhir_base == fhir_base) {
                continue;
            }
            entries.push(BrandEntry {
                id: id_for(&fhir_base),
                name: name.to_owned(),
                aliases: aliases.clone(),
                states: states.clone(),
                logo_url: logo_url.clone(),
                fhir_base,
            });
        }
    }
    if entries.is_empty() {
        return Err(BrandsError::Empty);
    }
    Ok(entries)
}

/// `brand-` and the FHIR base's host and path as letters, digits and `-` (at most 64).
pub fn id_for(fhir_base: &Url) -> String {
    let raw = format!("{}{}", fhir_base.host_str().unwrap_or(""), fhir_base.path());
    let mut id = String::from("brand-");
    let mut last_dash = true;
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            id.push(c);
            last_dash = false;
        } else if !last_dash {
            id.push('-');
            last_dash = true;
        }
    }
    if let Some(port) = fhir_base.port() {
        id.push_str(&format!("-{port}"));
    }
    let id = id.trim_end_matches('-').to_owned();
    id.chars().take(64).collect()
}

/// The result of asking for a brands file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// `304 Not Modified`: what was imported before is current.
    NotModified,
    Body {
        text: String,
        etag: Option<String>,
    },
}

/// Fetches a brands file, sending `If-None-Match` when an ETag is known. At most 10 MB. Unless
/// `allow_private`, only from public addresses: staff give the URL, and the server must not
/// become their way into the plan's own network.
pub async fn fetch(
    http: &reqwest::Client,
    url: &Url,
    etag: Option<&str>,
    allow_private: bool,
) -> Result<Fetched, BrandsError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BrandsError::Scheme);
    }
    let pinned;
    let http = if allow_private {
        http
    } else {
        pinned = public_only(url).await?;
        &pinned
    };
    let mut request = http.get(url.clone()).header("accept", "application/fhir+json, application/json");
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().await.map_err(|e| BrandsError::Fetch(e.without_url().to_string()))?;
    if response.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !response.status().is_success() {
        return Err(BrandsError::Fetch(format!("the server answered {}", response.status())));
    }
    let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if response.content_length().is_some_and(|n| n > 10 * 1024 * 1024) {
        return Err(BrandsError::Fetch("the file is larger than 10 MB".into()));
    }
    let bytes = response.bytes().await.map_err(|e| BrandsError::Fetch(e.without_url().to_string()))?;
    if bytes.len() > 10 * 1024 * 1024 {
        return Err(BrandsError::Fetch("the file is larger than 10 MB".into()));
    }
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| BrandsError::Json("not UTF-8".into()))?;
    Ok(Fetched::Body { text, etag })
}

/// A client that reaches `url`'s host only at the public addresses it resolves to now (pinned,
/// so a second lookup cannot answer differently), or why not.
async fn public_only(url: &Url) -> Result<reqwest::Client, BrandsError> {
    use std::net::SocketAddr;
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| BrandsError::Fetch(format!("{name} could not be resolved: {e}")))?
            .collect(),
        None => return Err(BrandsError::Scheme),
    };
    if let Some(private) = addresses.iter().find(|a| !is_public(a.ip())) {
        return Err(BrandsError::PrivateAddress(private.ip().to_string()));
    }
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30));
    if let Some(name) = url.domain() {
        builder = builder.resolve_to_addrs(name, &addresses);
    }
    builder.build().map_err(|e| BrandsError::Fetch(e.to_string()))
}

/// Whether `ip` is on the public internet: not loopback, private, link-local, shared,
/// documentation, unspecified or multicast (IPv4 inside IPv6 judged as IPv4).
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
                    || first == 0x2001 && v6.segments()[1] == 0x0db8)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn a_local_address_is_refused_before_anything_is_fetched() {
        let http = reqwest::Client::new();
        for url in ["http://127.0.0.1:9/brands.json", "http://localhost:9/brands.json", "http://[::1]:9/x"] {
            let refused = fetch(&http, &Url::parse(url).unwrap(), None, false).await;
            assert!(matches!(refused, Err(BrandsError::PrivateAddress(_))), "{url}: {refused:?}");
        }
        // Allowed, it is tried (and here nothing listens).
        let tried = fetch(&http, &Url::parse("http://127.0.0.1:9/brands.json").unwrap(), None, true).await;
        assert!(matches!(tried, Err(BrandsError::Fetch(_))), "{tried:?}");
    }

    #[test]
    fn brands_become_directory_entries() {
        let bundle = json!({
            "resourceType": "Bundle", "type": "collection",
            "entry": [
                {"fullUrl": "https://hp.example/Organization/hp", "resource": {
                    "resourceType": "Organization", "id": "hp", "name": "Example Health Plan",
                    "alias": ["EHP"], "address": [{"state": "wi"}, {"state": "IL"}, {"state": "WI"}],
                    "extension": [{"url": BRAND_EXTENSION, "extension": [{"url": "brandLogo", "valueUrl": "https://hp.example/logo.svg"}]},
                        {"url": PORTAL_EXTENSION, "extension": [{"url": "portalEndpoint", "valueReference": {"reference": "Endpoint/r4"}}]}]}},
                {"resource": {"resourceType": "Organization", "id": "affiliate", "name": "Example Health Plan of Madison",
                    "partOf": {"reference": "Organization/hp"}}},
                {"resource": {"resourceType": "Organization", "id": "old", "name": "Retired Plan", "endpoint": [{"reference": "Endpoint/off"}]}},
                {"fullUrl": "https://hp.example/Endpoint/r4", "resource": {"resourceType": "Endpoint", "id": "r4", "status": "active",
                    "connectionType": {"code": "hl7-fhir-rest"}, "address": "https://fhir.hp.example/r4"}},
                {"resource": {"resourceType": "Endpoint", "id": "off", "status": "off", "address": "https://old.example/fhir"}}
            ]
        });
        let entries = parse(&bundle.to_string()).unwrap();
        assert_eq!(
            entries.len(),
            1,
            "the affiliate shares the parent's endpoint; the retired one is off: {entries:#?}"
        );
        let hp = &entries[0];
        assert_eq!(hp.name, "Example Health Plan");
        assert_eq!(hp.id, "brand-fhir-hp-example-r4");
        assert_eq!(hp.aliases, ["EHP"]);
        assert_eq!(hp.states, ["IL", "WI"]);
        assert_eq!(hp.logo_url.as_ref().map(Url::as_str), Some("https://hp.example/logo.svg"));
        assert_eq!(hp.fhir_base.as_str(), "https://fhir.hp.example/r4");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert!(matches!(parse("{"), Err(BrandsError::Json(_))));
        assert_eq!(parse(r#"{"resourceType":"Patient"}"#), Err(BrandsError::NotABundle));
        assert_eq!(parse(r#"{"resourceType":"Bundle","entry":[]}"#), Err(BrandsError::Empty));
        let plain_http = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Organization", "id": "hp", "name": "Plain Plan", "endpoint": [{"reference": "Endpoint/r4"}]}},
            {"resource": {"resourceType": "Endpoint", "id": "r4", "address": "http://fhir.plain.example/r4"}}
        ]});
        assert_eq!(parse(&plain_http.to_string()), Err(BrandsError::Insecure("http://fhir.plain.example/r4".into())));
    }

    #[test]
    fn ids_are_stable_and_valid() {
        let url = Url::parse("http://127.0.0.1:3001/fhir").unwrap();
        assert_eq!(id_for(&url), "brand-127-0-0-1-fhir-3001");
        assert!(baton_fhir_like_id(&id_for(&url)));
    }

    fn baton_fhir_like_id(id: &str) -> bool {
        id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }
}
