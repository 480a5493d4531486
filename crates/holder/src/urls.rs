use url::Url;

/// Where the data-holder side's endpoints are, as other plans see them.
#[derive(Debug, Clone)]
pub struct Urls {
    /// This Baton's public URL, with a trailing slash.
    pub public: String,
    /// The FHIR base, without a trailing slash (`…/fhir`).
    pub fhir_base: String,
    pub authorize: String,
    pub token: String,
    pub introspect: String,
    pub revoke: String,
    pub jwks: String,
    pub brands: String,
}

impl Urls {
    pub fn new(public_url: &Url) -> Self {
        let public = {
            let mut text = public_url.as_str().to_owned();
            if !text.ends_with('/') {
                text.push('/');
            }
            text
        };
        Self {
            fhir_base: format!("{public}fhir"),
            authorize: format!("{public}oauth/authorize"),
            token: format!("{public}oauth/token"),
            introspect: format!("{public}oauth/introspect"),
            revoke: format!("{public}oauth/revoke"),
            jwks: format!("{public}oauth/jwks"),
            brands: format!("{public}brands.json"),
            public,
        }
    }

    /// The origin of the public URL (`https://host[:port]`), used as the brand identifier.
    pub fn origin(&self) -> String {
        Url::parse(&self.public).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
    }
}
