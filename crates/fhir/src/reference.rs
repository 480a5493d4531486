//! FHIR references (`Reference.reference` strings).

/// A parsed `Reference.reference`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference<'a> {
    /// `Type/id` (optionally `Type/id/_history/v`), relative to the server's base.
    Relative { resource_type: &'a str, id: &'a str },
    /// `https://base/Type/id`: `base` is everything before `Type/id`.
    Absolute { base: &'a str, resource_type: &'a str, id: &'a str },
    /// `#id`: a contained resource.
    Contained { id: &'a str },
    /// Anything else (`urn:uuid:…`, `urn:oid:…`, malformed).
    Other(&'a str),
}

impl<'a> Reference<'a> {
    pub fn parse(text: &'a str) -> Self {
        if let Some(id) = text.strip_prefix('#') {
            return Reference::Contained { id };
        }
        if text.starts_with("urn:") {
            return Reference::Other(text);
        }
        let without_history = match text.find("/_history/") {
            Some(i) => &text[..i],
            None => text,
        };
        let mut parts = without_history.rsplitn(3, '/');
        let (Some(id), Some(resource_type)) = (parts.next(), parts.next()) else {
            return Reference::Other(text);
        };
        if !crate::is_resource_type_name(resource_type) || !crate::is_valid_id(id) {
            return Reference::Other(text);
        }
        match parts.next() {
            None => Reference::Relative { resource_type, id },
            Some(base) if base.starts_with("http://") || base.starts_with("https://") => {
                Reference::Absolute { base, resource_type, id }
            }
            Some(_) => Reference::Other(text),
        }
    }

    /// `(type, id)` when the reference names a resource on some server.
    pub fn type_and_id(&self) -> Option<(&'a str, &'a str)> {
        match *self {
            Reference::Relative { resource_type, id } | Reference::Absolute { resource_type, id, .. } => {
                Some((resource_type, id))
            }
            _ => None,
        }
    }

    /// `(type, id)` when the reference is local to `base` (relative, or absolute on `base`).
    pub fn local_to(&self, base: &str) -> Option<(&'a str, &'a str)> {
        match *self {
            Reference::Relative { resource_type, id } => Some((resource_type, id)),
            Reference::Absolute { base: b, resource_type, id } if same_base(b, base) => Some((resource_type, id)),
            _ => None,
        }
    }
}

/// Whether two FHIR base URLs are the same (ignoring one trailing slash).
pub fn same_base(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(Reference::parse("Patient/123"), Reference::Relative { resource_type: "Patient", id: "123" });
        assert_eq!(
            Reference::parse("Patient/123/_history/4"),
            Reference::Relative { resource_type: "Patient", id: "123" }
        );
        assert_eq!(
            Reference::parse("https://old.example/fhir/Coverage/c-1"),
            Reference::Absolute { base: "https://old.example/fhir", resource_type: "Coverage", id: "c-1" }
        );
        assert_eq!(Reference::parse("#med1"), Reference::Contained { id: "med1" });
        assert_eq!(Reference::parse("urn:uuid:1234"), Reference::Other("urn:uuid:1234"));
        assert_eq!(Reference::parse("patient/123"), Reference::Other("patient/123"));
        assert_eq!(Reference::parse("Patient/bad id"), Reference::Other("Patient/bad id"));
        assert_eq!(Reference::parse("ftp://x/Patient/1"), Reference::Other("ftp://x/Patient/1"));
    }

    #[test]
    fn local_references() {
        let base = "http://127.0.0.1:3001/fhir/";
        assert_eq!(Reference::parse("Patient/1").local_to(base), Some(("Patient", "1")));
        assert_eq!(Reference::parse("http://127.0.0.1:3001/fhir/Patient/1").local_to(base), Some(("Patient", "1")));
        assert_eq!(Reference::parse("https://elsewhere.example/fhir/Patient/1").local_to(base), None);
    }
}
