//! The one error type of the HTTP layer: each variant maps to a status and a
//! stable `snake_case` code; internal detail is logged, never sent.

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a field is invalid (400).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Well-formed, but breaks a rule of the domain (422).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("authentication required")]
    Unauthorized,
    /// Credentials, a code or a refresh token that did not work (401). One
    /// message per kind, whatever the reason, so nothing is revealed.
    #[error("{message}")]
    AuthFailed { code: &'static str, message: &'static str },
    /// A bearer token that is malformed, expired, revoked or of a disabled user.
    #[error("invalid or expired access token")]
    InvalidToken,
    #[error("not allowed")]
    Forbidden,
    /// Authenticated or proven, but refused for a reason the caller can act on (403).
    #[error("{message}")]
    Refused { code: &'static str, message: &'static str },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Conflicts with the current state, e.g. a duplicate (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// A 429 with its own code and advice (e.g. password login suspended: use a code).
    #[error("{message}")]
    Suspended { code: &'static str, message: &'static str, retry_after_secs: u64 },
    /// A dependency or budget is exhausted for now (503), with its own code.
    #[error("{message}")]
    Unavailable { code: &'static str, message: &'static str },
    /// The body is larger than `BODY_LIMIT_BYTES` (413).
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The database cannot be reached right now (503, with `Retry-After`).
    #[error("the service is temporarily unavailable; try again shortly")]
    DatabaseUnavailable,
    /// Anything unexpected: logged with its cause, answered as an opaque 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable { code, message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            Self::AuthFailed { code, .. } => (StatusCode::UNAUTHORIZED, code),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Refused { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Suspended { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            Self::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::DatabaseUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<lockers_core::jobs::EnqueueError> for ApiError {
    fn from(e: lockers_core::jobs::EnqueueError) -> Self {
        match e {
            lockers_core::jobs::EnqueueError::Db(e) => e.into(),
            e => Self::Internal(anyhow::Error::new(e).context("enqueue failed")),
        }
    }
}

impl From<lockers_core::exchange::ExchangeError> for ApiError {
    fn from(e: lockers_core::exchange::ExchangeError) -> Self {
        use lockers_core::exchange::ExchangeError;
        match e {
            ExchangeError::UnknownCommand => ApiError::NotFound("door command"),
            ExchangeError::Db(e) => e.into(),
            ExchangeError::Enqueue(e) => e.into(),
        }
    }
}

impl From<lockers_core::db::DbError> for ApiError {
    fn from(e: lockers_core::db::DbError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, cause = %e.source, "database unavailable");
            return Self::DatabaseUnavailable;
        }
        Self::Internal(anyhow::Error::new(e))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if lockers_core::db::is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return Self::DatabaseUnavailable;
        }
        Self::Internal(anyhow::Error::new(e).context("database error"))
    }
}

/// Seconds a client is asked to wait when the database is unreachable: about
/// what a PostgreSQL restart or failover takes.
const DATABASE_RETRY_AFTER_SECS: u64 = 5;

impl ApiError {
    /// An internal error whose cause is an unreachable database (a sqlx error
    /// wrapped by a domain error or `anyhow` context on the way) is a 503 too.
    fn reclassified(self) -> Self {
        match self {
            Self::Internal(cause)
                if cause
                    .chain()
                    .any(|e| e.downcast_ref::<sqlx::Error>().is_some_and(lockers_core::db::is_unavailable)) =>
            {
                tracing::warn!(error = ?cause, "database unavailable");
                Self::DatabaseUnavailable
            }
            other => other,
        }
    }
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "locker not found"}}))]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, `snake_case`: what clients branch on.
    code: String,
    /// For people; may change.
    message: String,
}

/// The error shape of DESIGN.md, for responses built outside a handler too.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: message.into() } };
    (status, Json(body)).into_response()
}

impl ApiError {
    /// Seconds to wait before trying again, for 429 and 503 answers.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::TooManyRequests { retry_after_secs } | Self::Suspended { retry_after_secs, .. } => {
                Some((*retry_after_secs).max(1))
            }
            Self::DatabaseUnavailable => Some(DATABASE_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// Status, code and retry delay, for answers that are not JSON (the
    /// console's pages). An internal error is logged here, as in `into_response`.
    pub fn classify(self) -> (StatusCode, &'static str, Option<u64>) {
        let this = self.reclassified();
        if let Self::Internal(cause) = &this {
            tracing::error!(error = ?cause, "request failed");
        }
        let (status, code) = this.status_and_code();
        (status, code, this.retry_after())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = self.reclassified();
        let (status, code) = this.status_and_code();
        let message = match &this {
            Self::Internal(cause) => {
                // Logged once here with its whole chain; the client sees nothing of it.
                tracing::error!(error = ?cause, "request failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = error_response(status, code, message);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let retry_after = this.retry_after();
        if let Some(secs) = retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A deserializer's message without the Rust names in it: serde says
/// "expected struct LoginBody" where a client needs "expected a JSON object".
fn without_type_names(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("expected ") {
        let (head, tail) = rest.split_at(at + "expected ".len());
        out.push_str(head);
        let named =
            [("struct ", "a JSON object"), ("tuple struct ", "a JSON array"), ("enum ", "one of the allowed values")]
                .into_iter()
                .find_map(|(kind, plain)| tail.strip_prefix(kind).map(|t| (t, plain)));
        rest = match named {
            Some((t, plain)) => {
                out.push_str(plain);
                t.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
            }
            None => tail,
        };
    }
    out.push_str(rest);
    out
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::PayloadTooLarge;
        }
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                Self::bad_request("unsupported_media_type", "expected a JSON body with content-type application/json")
            }
            JsonRejection::JsonSyntaxError(e) => {
                Self::bad_request("malformed_json", without_type_names(&e.body_text()))
            }
            JsonRejection::JsonDataError(e) => Self::bad_request("invalid_body", without_type_names(&e.body_text())),
            _ => Self::bad_request("invalid_body", "the request body could not be read"),
        }
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::PayloadTooLarge;
        }
        match rejection {
            FormRejection::InvalidFormContentType(_) => Self::bad_request(
                "unsupported_media_type",
                "expected a form body with content-type application/x-www-form-urlencoded",
            ),
            other => Self::bad_request("invalid_body", without_type_names(&other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_query", without_type_names(&rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_path", without_type_names(&rejection.body_text()))
    }
}

/// `Json` whose rejections answer in the app's error shape.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use axum::routing::post;
    use serde::Deserialize;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    #[derive(Deserialize)]
    struct Input {
        #[allow(dead_code)]
        name: String,
    }

    async fn echo(AppJson(_): AppJson<Input>) -> StatusCode {
        StatusCode::NO_CONTENT
    }

    async fn call(content_type: Option<&str>, body: &'static str) -> (StatusCode, Value) {
        let mut request = Request::post("/");
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let response =
            Router::new().route("/", post(echo)).oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn json_rejections_answer_400_in_the_error_shape_with_stable_codes() {
        let json = Some("application/json");
        assert_eq!(call(json, r#"{"name": "x"}"#).await.0, StatusCode::NO_CONTENT);
        for (content_type, body, code) in [
            (None, r#"{"name": "x"}"#, "unsupported_media_type"),
            (json, r#"{"name": "#, "malformed_json"),
            (json, r#"{"name": 5}"#, "invalid_body"),
            (json, r#"{}"#, "invalid_body"),
        ] {
            let (status, body) = call(content_type, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }

    #[tokio::test]
    async fn body_errors_name_json_shapes_never_rust_types() {
        let (status, body) = call(Some("application/json"), "[]").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("expected a JSON object"), "{message}");
        assert!(!message.contains("Input") && !message.contains("struct"), "{message}");
        assert_eq!(
            without_type_names("invalid type: string, expected enum Size"),
            "invalid type: string, expected one of the allowed values"
        );
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause_and_rate_limits_say_when_to_retry() {
        let response = ApiError::Internal(anyhow::anyhow!("password=hunter2 leaked")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("hunter2"));

        let response = ApiError::TooManyRequests { retry_after_secs: 42 }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
    }

    #[tokio::test]
    async fn an_unreachable_database_answers_503_with_retry_after_even_when_wrapped() {
        let direct: ApiError = sqlx::Error::PoolTimedOut.into();
        let wrapped = ApiError::Internal(anyhow::Error::new(sqlx::Error::PoolTimedOut).context("loading the user"));
        for error in [direct, wrapped] {
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "5");
            let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body["error"]["code"], "database_unavailable");
        }
        let other: ApiError = sqlx::Error::RowNotFound.into();
        assert_eq!(other.into_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
