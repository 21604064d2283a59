//! A connection's health as an operator reads it, the same on the command
//! line (`status`) and on the admin page: its state (with why, and what
//! happens next), its queue and counts, when it last heard from Thena and
//! last wrote a record.

use crate::config::Config;
use crate::store::health::RecentFailures;
use crate::store::review::{Counts, LastSeen};
use crate::store::{ConnStatus, Connection, Store, StoreError};

/// A connection's state, as a badge and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct State {
    pub label: String,
    /// ok, busy, warn or bad (the page's colours).
    pub tone: &'static str,
    pub reason: Option<String>,
}

/// What the top of a connection's page and `thena-sf status` show.
#[derive(Debug, Clone)]
pub struct Health {
    pub state: State,
    /// Requests by state, the queue and the dead letters, read together.
    pub counts: Counts,
    pub last: LastSeen,
    pub recent: RecentFailures,
}

/// Reads a connection's health from the store (no call to Salesforce).
pub async fn health(store: &Store, config: &Config, c: &Connection) -> Result<Health, StoreError> {
    let counts = store.counts(&c.name).await?;
    let recent = store.recent_failures(&c.name, chrono::Utc::now()).await?;
    let last = store.last_seen(&c.name).await?;
    let state = state_of(
        c,
        counts.queued,
        &recent,
        &last,
        &config.webhook_url(&c.name),
    );
    Ok(Health {
        state,
        counts,
        last,
        recent,
    })
}

/// When the last webhook arrived, as people read it, or "none yet".
pub fn last_webhook(last: &LastSeen) -> String {
    match last
        .webhook_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
    {
        Some(t) => ago(t),
        None => "none yet".into(),
    }
}

/// When the last record was written, as people read it, or "none yet".
pub fn last_written(last: &LastSeen) -> String {
    match last.written_at.as_deref().and_then(crate::store::parse_ts) {
        Some(t) => ago(t),
        None => "none yet".into(),
    }
}

/// `2026-12-03 07:52 UTC (3 min ago)`.
fn ago(t: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (chrono::Utc::now() - t).num_seconds().max(0);
    let rel = match secs {
        0..=59 => "just now".to_string(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    };
    format!("{} ({rel})", t.format("%Y-%m-%d %H:%M UTC"))
}

/// A connection's state as a badge: the stored status, records refused
/// lately, and whether work is waiting.
fn state_of(
    c: &Connection,
    queued: i64,
    recent: &RecentFailures,
    last: &LastSeen,
    webhook_url: &str,
) -> State {
    match c.status {
        ConnStatus::ReconnectNeeded => State {
            label: "reconnect needed".into(),
            tone: "bad",
            reason: c.status_reason.clone(),
        },
        ConnStatus::Paused => State {
            label: "paused for API budget".into(),
            tone: "warn",
            reason: Some(paused_reason(c.status_reason.as_deref(), last.recheck_ms)),
        },
        ConnStatus::Healthy if c.provisioned_at.is_none() => State {
            label: "setting up".into(),
            tone: "busy",
            reason: Some("provisioning has not finished; open the connection and use Fix".into()),
        },
        ConnStatus::Healthy if recent.count > 0 => State {
            label: "degraded".into(),
            tone: "bad",
            reason: Some(degraded_reason(recent)),
        },
        ConnStatus::Healthy if queued == 0 && last.webhook_ms.is_none() => State {
            label: "waiting for the first webhook".into(),
            tone: "busy",
            reason: Some(format!(
                "Nothing has arrived from Thena yet: paste the webhook URL {webhook_url} and its token into Thena's webhook settings."
            )),
        },
        ConnStatus::Healthy if queued > 0 => State {
            label: "syncing".into(),
            tone: "busy",
            reason: None,
        },
        ConnStatus::Healthy => State {
            label: "healthy".into(),
            tone: "ok",
            reason: None,
        },
    }
}

/// Why it paused, and when it looks at the org's usage again (it resumes by
/// itself once there is headroom).
fn paused_reason(why: Option<&str>, recheck_ms: Option<i64>) -> String {
    let why = why
        .unwrap_or("The org's API usage is near its daily limit")
        .trim_end_matches('.');
    let now = chrono::Utc::now().timestamp_millis();
    match recheck_ms.filter(|at| *at >= now - 5_000) {
        Some(at) => format!(
            "{why}. It looks at the usage again at {} UTC (in {}s) and resumes by itself when there is headroom.",
            chrono::DateTime::from_timestamp_millis(at)
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            ((at - now).max(0) + 999) / 1000
        ),
        None => format!("{why}. It looks at the usage again every minute and resumes by itself when there is headroom."),
    }
}

/// "3 records failed in the last hour; the latest: CODE: message".
pub fn degraded_reason(recent: &RecentFailures) -> String {
    let s = if recent.count == 1 { "" } else { "s" };
    format!(
        "{} record{s} failed in the last hour; the latest: {}. See Failed for each one and its error.",
        recent.count,
        recent.latest.as_deref().unwrap_or("unknown")
    )
}

#[cfg(test)]
mod tests {
    use super::paused_reason;

    #[test]
    fn a_paused_connection_says_when_it_looks_again() {
        let soon = chrono::Utc::now().timestamp_millis() + 30_000;
        let said = paused_reason(
            Some("API usage 950/1000 is above 90% of the daily limit."),
            Some(soon),
        );
        assert!(
            said.starts_with("API usage 950/1000 is above 90% of the daily limit. It looks"),
            "{said}"
        );
        assert!(
            said.contains("(in 30s)") || said.contains("(in 29s)"),
            "{said}"
        );
        let unknown = paused_reason(None, None);
        assert!(unknown.contains("every minute"), "{unknown}");
    }
}
