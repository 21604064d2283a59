//! One error taxonomy for every Salesforce call, each variant saying what the
//! caller should do about it.

use std::time::Duration;

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The access token is no longer valid: refresh it and try again.
    RefreshAuth,
    /// The refresh token or credentials were refused: a person must reconnect.
    Reconnect,
    /// A passing fault: retry with backoff.
    Retry,
    /// The org's daily API limit is used up: pause until headroom returns.
    PauseForDay,
    /// The org's schema does not match (a field or object is missing or hidden): repair it.
    FixSchema,
    /// Retrying will not help.
    GiveUp,
}

/// A Salesforce error in its own terms: code, message and fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
    /// For `DUPLICATES_DETECTED` on a single-record call: the rule and what
    /// it matched (boxed: errors stay small).
    pub duplicates: Option<Box<Duplicates>>,
}

/// A duplicate rule's refusal, from `duplicateResut` (sic, as orgs send it)
/// or `duplicateResult` (salesforce-api.md §9.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Duplicates {
    pub rule: Option<String>,
    /// The matched records as (object, id).
    pub records: Vec<(String, String)>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message.trim())?;
        if !self.fields.is_empty() {
            write!(f, " (fields: {})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An answer from Salesforce's REST or SOAP API.
    #[error("Salesforce said {0}")]
    Api(ApiError),
    /// An OAuth error from the token endpoint (`invalid_grant`, ...).
    #[error("Salesforce OAuth error {error}: {description}")]
    OAuth {
        status: u16,
        error: String,
        description: String,
    },
    /// No answer: connection refused or reset, timeout.
    #[error("could not reach Salesforce: {0}")]
    Transport(String),
    /// No answer within the client's timeout. A real org can run a query
    /// for about two minutes before it answers `QUERY_TIMEOUT`
    /// (salesforce-api.md §9.5), so a caller may read this as that answer.
    #[error("could not reach Salesforce: {0}")]
    TimedOut(String),
    /// An answer the client could not understand.
    #[error("unexpected answer from Salesforce: {0}")]
    Protocol(String),
    /// A configuration mistake on our side (bad URL, missing refresh token).
    #[error("{0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Codes that mean "try again in a moment".
const RETRYABLE: &[&str] = &[
    "UNABLE_TO_LOCK_ROW",
    "SERVER_UNAVAILABLE",
    "UNKNOWN_EXCEPTION",
    "QUERY_TIMEOUT",
    "TXN_SECURITY_METERING_ERROR",
];
/// Codes that mean the org's schema or permissions do not match what we expect.
const SCHEMA: &[&str] = &[
    "INVALID_FIELD",
    "INVALID_TYPE",
    "INVALID_FIELD_FOR_INSERT_UPDATE",
    "NO_SUCH_COLUMN",
];

/// Classifies a Salesforce error code (per-record or whole call).
pub fn classify_code(status: u16, code: &str, message: &str) -> Action {
    match code {
        "INVALID_SESSION_ID" => Action::RefreshAuth,
        // The daily limit says "TotalRequests Limit exceeded"; the concurrent-request
        // limit shares the code but passes in seconds.
        "REQUEST_LIMIT_EXCEEDED" if message.contains("TotalRequests") => Action::PauseForDay,
        "REQUEST_LIMIT_EXCEEDED" => Action::Retry,
        c if RETRYABLE.contains(&c) => Action::Retry,
        c if SCHEMA.contains(&c) => Action::FixSchema,
        "NOT_FOUND" if status == 404 => Action::FixSchema,
        _ if status >= 500 || status == 429 || status == 408 => Action::Retry,
        _ => Action::GiveUp,
    }
}

impl Error {
    pub fn action(&self) -> Action {
        match self {
            Error::Api(e) => classify_code(e.status, &e.code, &e.message),
            Error::OAuth { error, status, .. } => match error.as_str() {
                "invalid_grant" | "invalid_client_id" | "invalid_client" | "inactive_user"
                | "inactive_org" => Action::Reconnect,
                _ if *status >= 500 => Action::Retry,
                _ => Action::GiveUp,
            },
            Error::Transport(_) | Error::TimedOut(_) => Action::Retry,
            Error::Protocol(_) | Error::Config(_) => Action::GiveUp,
        }
    }

    /// The Salesforce error code, if there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api(e) => Some(&e.code),
            Error::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Capped, jittered exponential backoff: attempt 0 waits about `base`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(cap);
    // Full jitter between half and all of the capped delay.
    let half = capped / 2;
    half + Duration::from_nanos(rand::random::<u64>() % (half.as_nanos().max(1) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str, message: &str) -> Error {
        Error::Api(ApiError {
            status,
            code: code.into(),
            message: message.into(),
            ..Default::default()
        })
    }

    #[test]
    fn every_class_says_what_to_do() {
        assert_eq!(
            api(401, "INVALID_SESSION_ID", "Session expired or invalid").action(),
            Action::RefreshAuth
        );
        assert_eq!(
            api(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded."
            )
            .action(),
            Action::PauseForDay
        );
        assert_eq!(
            api(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded."
            )
            .action(),
            Action::Retry
        );
        assert_eq!(api(503, "SERVER_UNAVAILABLE", "x").action(), Action::Retry);
        assert_eq!(api(500, "UNKNOWN_EXCEPTION", "x").action(), Action::Retry);
        assert_eq!(api(400, "UNABLE_TO_LOCK_ROW", "x").action(), Action::Retry);
        assert_eq!(
            api(400, "INVALID_FIELD", "No such column").action(),
            Action::FixSchema
        );
        assert_eq!(
            api(404, "NOT_FOUND", "The requested resource does not exist").action(),
            Action::FixSchema
        );
        assert_eq!(api(400, "STRING_TOO_LONG", "x").action(), Action::GiveUp);
        assert_eq!(api(400, "DUPLICATE_VALUE", "x").action(), Action::GiveUp);
        let grant = Error::OAuth {
            status: 400,
            error: "invalid_grant".into(),
            description: "expired access/refresh token".into(),
        };
        assert_eq!(grant.action(), Action::Reconnect);
        assert_eq!(Error::Transport("reset".into()).action(), Action::Retry);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        for attempt in 0..30 {
            let d = backoff(attempt, base, cap);
            assert!(d <= cap, "{attempt}: {d:?}");
            assert!(d >= (base.saturating_mul(1 << attempt.min(16))).min(cap) / 2);
        }
    }
}
