//! OperationOutcome: how a FHIR API says what went wrong.

use serde_json::{Value, json};

/// `OperationOutcome.issue.code` values Baton uses (FHIR R4 IssueType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Security,
    Login,
    Forbidden,
    NotFound,
    Deleted,
    NotSupported,
    TooCostly,
    Processing,
    Throttled,
    Exception,
}

impl IssueType {
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Security => "security",
            IssueType::Login => "login",
            IssueType::Forbidden => "forbidden",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::NotSupported => "not-supported",
            IssueType::TooCostly => "too-costly",
            IssueType::Processing => "processing",
            IssueType::Throttled => "throttled",
            IssueType::Exception => "exception",
        }
    }
}

/// An OperationOutcome with one error issue.
pub fn error(code: IssueType, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code.code(), "diagnostics": diagnostics}]
    })
}

/// The diagnostics of the first issue of an OperationOutcome, if it is one.
pub fn diagnostics(outcome: &Value) -> Option<&str> {
    if outcome.get("resourceType")?.as_str()? != "OperationOutcome" {
        return None;
    }
    outcome.pointer("/issue/0/diagnostics")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let outcome = error(IssueType::NotFound, "Condition/x is not known");
        assert_eq!(outcome["issue"][0]["code"], "not-found");
        assert_eq!(diagnostics(&outcome), Some("Condition/x is not known"));
        assert_eq!(diagnostics(&json!({"resourceType": "Patient"})), None);
    }
}
