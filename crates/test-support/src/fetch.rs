//! A request sent and its answer read in one step, for tests that only care
//! about the body.

use std::future::Future;

use serde_json::Value;

/// `send().await.unwrap().text().await.unwrap()`, said once.
pub trait Fetch {
    /// The answer's body as text (panics when no answer comes).
    fn fetch_text(self) -> impl Future<Output = String> + Send;
    /// The answer's body as JSON (panics when no answer or no JSON comes).
    fn fetch_json(self) -> impl Future<Output = Value> + Send;
}

impl Fetch for reqwest::RequestBuilder {
    async fn fetch_text(self) -> String {
        let answer = self.send().await.expect("an answer");
        answer.text().await.expect("a body")
    }

    async fn fetch_json(self) -> Value {
        let answer = self.send().await.expect("an answer");
        answer.json().await.expect("a JSON body")
    }
}

/// Posts the Thena webhook `body` for `connection` to the connector at
/// `base`, with `token` in `Authorization`; the answer (panics when none
/// comes).
pub async fn post_webhook(
    http: &reqwest::Client,
    base: &str,
    connection: &str,
    token: &str,
    body: &Value,
) -> reqwest::Response {
    http.post(format!("{base}/webhooks/thena/{connection}"))
        .header("Authorization", token)
        .json(body)
        .send()
        .await
        .expect("an answer")
}
