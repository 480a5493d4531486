//! SMART App Launch scopes (2.2): v1 (`patient/Condition.read`) and v2 (`patient/Condition.rs`).

use std::fmt;

/// Whose data a resource scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    Patient,
    User,
    System,
}

/// A resource scope, e.g. `patient/Observation.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    pub context: Context,
    /// A type name, or `*`.
    pub resource_type: String,
    pub read: bool,
    pub search: bool,
    /// Other permissions (create, update, delete, v1 `write`) — never granted by Baton.
    pub write: bool,
    /// Written in the v2 syntax.
    pub v2: bool,
    /// v2 query restriction (`?category=…`): Baton grants no restricted scopes.
    pub restricted: bool,
}

/// One scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Resource(ResourceScope),
    LaunchPatient,
    OpenId,
    FhirUser,
    OfflineAccess,
    OnlineAccess,
    Other(String),
}

impl Scope {
    pub fn parse(text: &str) -> Scope {
        match text {
            "launch/patient" => return Scope::LaunchPatient,
            "openid" => return Scope::OpenId,
            "fhirUser" => return Scope::FhirUser,
            "offline_access" => return Scope::OfflineAccess,
            "online_access" => return Scope::OnlineAccess,
            _ => {}
        }
        parse_resource_scope(text).map(Scope::Resource).unwrap_or_else(|| Scope::Other(text.to_owned()))
    }
}

fn parse_resource_scope(text: &str) -> Option<ResourceScope> {
    let (context, rest) = text.split_once('/')?;
    let context = match context {
        "patient" => Context::Patient,
        "user" => Context::User,
        "system" => Context::System,
        _ => return None,
    };
    let (rest, restricted) = match rest.split_once('?') {
        Some((rest, _query)) => (rest, true),
        None => (rest, false),
    };
    let (resource_type, permissions) = rest.rsplit_once('.')?;
    if resource_type != "*" && !crate::is_resource_type_name(resource_type) {
        return None;
    }
    let mut scope = ResourceScope {
        context,
        resource_type: resource_type.to_owned(),
        read: false,
        search: false,
        write: false,
        v2: false,
        restricted,
    };
    match permissions {
        "read" => (scope.read, scope.search) = (true, true),
        "write" => scope.write = true,
        "*" => (scope.read, scope.search, scope.write) = (true, true, true),
        v2 => {
            // v2: letters of "cruds", each at most once, in that order.
            let mut last = None;
            for letter in v2.chars() {
                let position = "cruds".find(letter)?;
                if last.is_some_and(|l| position <= l) {
                    return None;
                }
                last = Some(position);
                match letter {
                    'r' => scope.read = true,
                    's' => scope.search = true,
                    _ => scope.write = true,
                }
            }
            last?;
            scope.v2 = true;
        }
    }
    Some(scope)
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::LaunchPatient => f.write_str("launch/patient"),
            Scope::OpenId => f.write_str("openid"),
            Scope::FhirUser => f.write_str("fhirUser"),
            Scope::OfflineAccess => f.write_str("offline_access"),
            Scope::OnlineAccess => f.write_str("online_access"),
            Scope::Other(text) => f.write_str(text),
            Scope::Resource(scope) => {
                let context = match scope.context {
                    Context::Patient => "patient",
                    Context::User => "user",
                    Context::System => "system",
                };
                let permissions = if scope.v2 {
                    let mut p = String::new();
                    if scope.read {
                        p.push('r');
                    }
                    if scope.search {
                        p.push('s');
                    }
                    p
                } else {
                    "read".to_owned()
                };
                write!(f, "{context}/{}.{permissions}", scope.resource_type)
            }
        }
    }
}

/// A set of scopes, as in an OAuth `scope` parameter (space-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    pub fn parse(text: &str) -> Scopes {
        let mut scopes = Vec::new();
        for part in text.split_whitespace() {
            let scope = Scope::parse(part);
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Scopes(scopes)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Patient-context read access to `resource_type` (v1 `.read` or v2 `r`).
    pub fn can_read(&self, resource_type: &str) -> bool {
        self.patient_scopes().any(|s| s.read && (s.resource_type == "*" || s.resource_type == resource_type))
    }

    /// Patient-context search access to `resource_type` (v1 `.read` or v2 `s`).
    pub fn can_search(&self, resource_type: &str) -> bool {
        self.patient_scopes().any(|s| s.search && (s.resource_type == "*" || s.resource_type == resource_type))
    }

    fn patient_scopes(&self) -> impl Iterator<Item = &ResourceScope> {
        self.0.iter().filter_map(|s| match s {
            Scope::Resource(r) if r.context == Context::Patient && !r.restricted => Some(r),
            _ => None,
        })
    }

    /// Whether any patient-context resource scope is present.
    pub fn has_patient_data_scopes(&self) -> bool {
        self.patient_scopes().any(|s| s.read || s.search)
    }

    /// What Baton grants of these: identity and launch scopes, and read/search of patient
    /// resources (write permissions and restricted scopes are dropped).
    pub fn grantable(&self) -> Scopes {
        Scopes(
            self.0
                .iter()
                .filter_map(|scope| match scope {
                    Scope::Resource(r) if r.context == Context::Patient && !r.restricted && (r.read || r.search) => {
                        Some(Scope::Resource(ResourceScope { write: false, ..r.clone() }))
                    }
                    Scope::Resource(_) | Scope::Other(_) => None,
                    other => Some(other.clone()),
                })
                .collect(),
        )
    }

    /// Those of `self` also allowed by `allowed` (a client's registered scopes).
    pub fn within(&self, allowed: &Scopes) -> Scopes {
        Scopes(
            self.0
                .iter()
                .filter(|scope| match scope {
                    Scope::Resource(r) => allowed.patient_scopes().any(|a| {
                        (a.resource_type == "*" || a.resource_type == r.resource_type)
                            && (a.read || !r.read)
                            && (a.search || !r.search)
                    }),
                    other => allowed.contains(other),
                })
                .cloned()
                .collect(),
        )
    }

    /// System scopes read as one member's: a Payer-to-Payer token reaches only the member the
    /// other plan matched, so `system/*.rs` there means what `patient/*.rs` means to a member's
    /// app. Other scopes stay as they are.
    pub fn system_as_patient(&self) -> Scopes {
        Scopes(
            self.0
                .iter()
                .map(|scope| match scope {
                    Scope::Resource(r) if r.context == Context::System => {
                        Scope::Resource(ResourceScope { context: Context::Patient, ..r.clone() })
                    }
                    other => other.clone(),
                })
                .collect(),
        )
    }

    /// The resource types readable with these scopes, among `candidates`.
    pub fn readable_types<'a>(&self, candidates: &[&'a str]) -> Vec<&'a str> {
        candidates.iter().copied().filter(|t| self.can_read(t) || self.can_search(t)).collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payer_to_payer_tokens_system_scopes_read_as_the_matched_members() {
        let scopes = Scopes::parse("system/*.rs system/Coverage.read http://example.org/op").system_as_patient();
        assert!(scopes.can_read("Condition") && scopes.can_search("Coverage"));
        assert!(!Scopes::parse("system/*.rs").can_read("Condition"), "unmapped, a system scope is no member's");
        assert!(scopes.contains(&Scope::Other("http://example.org/op".into())));
    }

    #[test]
    fn v1_and_v2_scopes() {
        let scopes = Scopes::parse(
            "launch/patient openid fhirUser offline_access patient/Condition.read patient/Observation.rs",
        );
        assert!(scopes.contains(&Scope::LaunchPatient));
        assert!(scopes.can_read("Condition") && scopes.can_search("Condition"));
        assert!(scopes.can_read("Observation") && scopes.can_search("Observation"));
        assert!(!scopes.can_read("Patient"));
        let wildcard = Scopes::parse("patient/*.rs");
        assert!(wildcard.can_read("ExplanationOfBenefit"));
        let read_only = Scopes::parse("patient/Patient.r");
        assert!(read_only.can_read("Patient") && !read_only.can_search("Patient"));
    }

    #[test]
    fn malformed_and_foreign_scopes() {
        for text in [
            "patient/Condition.sr",
            "patient/Condition.rr",
            "patient/condition.read",
            "patient/Condition.",
            "other/X.read",
        ] {
            assert!(matches!(Scope::parse(text), Scope::Other(_)), "{text}");
        }
        assert!(!Scopes::parse("user/Condition.read").can_read("Condition"), "only patient context counts");
        let restricted = Scopes::parse("patient/Observation.rs?category=laboratory");
        assert!(!restricted.can_read("Observation"), "restricted scopes grant nothing here");
    }

    #[test]
    fn granting_narrows() {
        let requested = Scopes::parse(
            "launch/patient openid patient/*.cruds patient/Condition.read user/Patient.read patient/Observation.rs?code=x junk",
        );
        let granted = requested.grantable();
        assert_eq!(granted.to_string(), "launch/patient openid patient/*.rs patient/Condition.read");
        let allowed = Scopes::parse("launch/patient patient/Condition.read");
        assert_eq!(granted.within(&allowed).to_string(), "launch/patient patient/Condition.read");
    }

    #[test]
    fn display_round_trips() {
        let text = "launch/patient fhirUser patient/Coverage.read patient/*.rs";
        assert_eq!(Scopes::parse(text).to_string(), text);
    }
}
