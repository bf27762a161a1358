//! What a page says about the last form: done (after the redirect that
//! follows a successful write, `?done=`), or refused (the page drawn again
//! with the status and a message). Messages are catalogue keys, never text.

use axum::http::StatusCode;
use minijinja::Value;
use minijinja::context;

use crate::error::ApiError;
use crate::web::WebError;
use crate::web::i18n;

/// The message a page shows above its content.
#[derive(Debug, Clone, Default)]
pub enum Notice {
    #[default]
    None,
    /// A write went through; the catalogue key of what happened.
    Done(&'static str),
    /// A form was refused: the answer's status and the message's key.
    Refused { status: StatusCode, key: String },
}

/// The successes a redirect may announce, by their `?done=` word.
const DONE: &[(&str, &str)] = &[
    ("state_created", "admin.done_state_created"),
    ("state_renamed", "admin.done_state_renamed"),
    ("state_deleted", "admin.done_state_deleted"),
    ("city_created", "admin.done_city_created"),
    ("city_updated", "admin.done_city_updated"),
    ("city_deleted", "admin.done_city_deleted"),
    ("point_updated", "admin.done_point_updated"),
    ("point_deleted", "admin.done_point_deleted"),
    ("locker_created", "admin.done_locker_created"),
    ("locker_updated", "admin.done_locker_updated"),
    ("locker_deleted", "admin.done_locker_deleted"),
    ("maintenance_on", "admin.done_maintenance_on"),
    ("maintenance_off", "admin.done_maintenance_off"),
    ("force_clear", "admin.done_force_clear"),
    ("user_updated", "admin.done_user_updated"),
    ("job_retried", "admin.done_job_retried"),
];

impl Notice {
    /// The notice of a `?done=` word; unknown words say nothing.
    pub fn done(word: Option<&str>) -> Self {
        word.and_then(|w| DONE.iter().find(|(k, _)| *k == w)).map_or(Self::None, |(_, key)| Self::Done(key))
    }

    /// A form refused with `status` and message `key`.
    pub fn refused(status: StatusCode, key: &str) -> Self {
        Self::Refused { status, key: key.to_owned() }
    }

    /// A use case's refusal, through the JSON API's one mapping (same status
    /// and code); a server-side failure stays an error page.
    pub fn from_error(error: impl Into<ApiError>) -> Result<Self, WebError> {
        let error = WebError::from(error.into());
        let status = error.status();
        if status.is_server_error() || status == StatusCode::UNAUTHORIZED {
            return Err(error);
        }
        let code = error.code();
        let key = [format!("admin.err_{code}"), format!("common.err_{code}")]
            .into_iter()
            .find(|key| i18n::has(key))
            .unwrap_or_else(|| "admin.err_other".to_owned());
        Ok(Self::Refused { status, key })
    }

    /// The status the page answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Refused { status, .. } => *status,
            _ => StatusCode::OK,
        }
    }

    /// The template's `notice`: `{kind, key}` or none.
    pub fn value(&self) -> Value {
        match self {
            Self::None => Value::from(()),
            Self::Done(key) => context! { kind => "done", key => *key },
            Self::Refused { key, .. } => context! { kind => "error", key => key },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_done_word_has_an_english_text() {
        for (word, key) in DONE {
            assert!(i18n::has(key), "{word}: {key}");
        }
        assert!(i18n::has("admin.err_other"));
        assert!(matches!(Notice::done(Some("nonsense")), Notice::None));
    }

    #[test]
    fn refusals_keep_the_api_status_and_a_server_failure_stays_an_error_page() {
        let refused = Notice::from_error(ApiError::conflict("name_taken", "x")).unwrap();
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        assert!(matches!(&refused, Notice::Refused { key, .. } if key == "admin.err_name_taken"));
        assert!(Notice::from_error(ApiError::Internal(anyhow::anyhow!("boom"))).is_err());
    }
}
