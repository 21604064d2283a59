//! A request's story for the admin page: finding a request by id, title or
//! requestor, the deliveries received for it (ingest's log) and what the
//! sync did with it (the activity log).

use sqlx::Row;

use super::queue::{row_state, RequestState};
use super::review::Activity;
use super::{Store, StoreError};

/// One delivery received for a request, and what ingest made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub received_ms: i64,
    /// `request update (Closed)`, `comment added or edited`, ...
    pub action: String,
    /// queued, duplicate, stale, out_of_scope.
    pub result: String,
}

/// `text` as a LIKE pattern that matches it anywhere, its own `%`, `_` and
/// `\` taken literally (with `ESCAPE '\'`).
fn contains_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    /// Requests whose id is `q`, or whose title or requestor contains it
    /// (any case); newest first, at most `limit`.
    pub async fn search_requests(
        &self,
        connection: &str,
        q: &str,
        limit: i64,
    ) -> Result<Vec<RequestState>, StoreError> {
        let q = q.trim();
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sql!(
            "SELECT * FROM requests WHERE connection = $1 AND (request_id = $2
               OR LOWER(title) LIKE $3 ESCAPE '\\' OR LOWER(requestor) LIKE $3 ESCAPE '\\')
             ORDER BY request_id = $2 DESC, updated_at DESC, request_id LIMIT $4",
            (connection, q, contains_pattern(q), limit),
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_state).collect()
    }

    /// The deliveries received for a request, newest first, at most `limit`.
    pub async fn deliveries_of(
        &self,
        connection: &str,
        request_id: &str,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sql!(
            "SELECT received_ms, action, result FROM deliveries WHERE connection = $1 AND request_id = $2 ORDER BY id DESC LIMIT $3",
            (connection, request_id, limit),
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    received_ms: r.try_get("received_ms")?,
                    action: r.try_get("action")?,
                    result: r.try_get("result")?,
                })
            })
            .collect()
    }

    /// What the sync did with a request (synced, skipped, failed, ...),
    /// newest first, at most `limit`.
    pub async fn activity_of(
        &self,
        connection: &str,
        request_id: &str,
        limit: i64,
    ) -> Result<Vec<Activity>, StoreError> {
        Ok(sql_as!(
            Activity, "SELECT id, request_id, outcome, detail, sf_id, at FROM activity WHERE connection = $1 AND request_id = $2 ORDER BY id DESC LIMIT $3",
            (connection, request_id, limit),
        )
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn wildcards_in_a_search_are_taken_literally() {
        assert_eq!(contains_pattern("Login"), "%login%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
