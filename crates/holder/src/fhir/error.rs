use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_fhir::outcome::{self, IssueType};

/// A FHIR API error, answered once as an OperationOutcome with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirError {
    pub status: StatusCode,
    pub issue: IssueType,
    pub message: String,
    /// Seconds to wait before asking again (`Retry-After`), for a 429 or 503.
    pub retry_after: Option<u64>,
}

impl FhirError {
    pub fn new(status: StatusCode, issue: IssueType, message: impl Into<String>) -> Self {
        Self { status, issue, message: message.into(), retry_after: None }
    }

    /// Tells the caller how long to wait (`Retry-After`).
    pub fn retry_after(self, seconds: u64) -> Self {
        Self { retry_after: Some(seconds), ..self }
    }

    pub fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, IssueType::Invalid, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, IssueType::Processing, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, IssueType::Login, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, IssueType::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, IssueType::NotFound, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, IssueType::Deleted, message)
    }

    pub fn server(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "FHIR API error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception, "the server failed to answer")
    }
}

impl From<baton_store::StoreError> for FhirError {
    fn from(error: baton_store::StoreError) -> Self {
        FhirError::server(error)
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let body = outcome::error(self.issue, &self.message).to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fhir\", error=\"invalid_token\""),
            );
        }
        response
    }
}
