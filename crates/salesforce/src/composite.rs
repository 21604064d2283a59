//! `POST /composite`: several REST requests in one API call.
//!
//! "The entire series of requests counts as a single call toward your API
//! limits" (REST API guide, "Send Multiple Requests Using Composite"): up to
//! 25 subrequests, at most 5 of them queries or sObject Collections. Each
//! subrequest answers with its own status and body; one that fails does not
//! fail the others unless `allOrNone` asks for it.

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::client::{api_error, query_path, Client};
use crate::error::{Error, Result};
use crate::json;

/// Subrequests per composite call.
pub const MAX_SUBREQUESTS: usize = 25;
/// Queries and sObject Collections per composite call.
pub const MAX_QUERIES: usize = 5;

/// One subrequest: a path under the data API (`query?q=...`,
/// `sobjects/Contact`), as [`Client::send`] takes it.
#[derive(Debug, Clone)]
pub struct Subrequest {
    pub method: Method,
    pub path: String,
    pub reference_id: String,
    pub body: Option<Value>,
    /// Headers of this subrequest (not Accept, Authorization or
    /// Content-Type, which it takes from the composite call).
    pub headers: Vec<(String, String)>,
}

impl Subrequest {
    /// A SOQL query (`GET query?q=...`, the text URL-encoded).
    pub fn query(reference_id: impl Into<String>, soql: &str) -> Subrequest {
        Subrequest {
            method: Method::GET,
            path: query_path(soql),
            reference_id: reference_id.into(),
            body: None,
            headers: Vec::new(),
        }
    }
}

/// One subrequest's answer.
#[derive(Debug, Clone)]
pub struct SubResult {
    pub status: u16,
    pub body: Value,
}

impl SubResult {
    /// The body of a success, or the subrequest's error as an [`Error::Api`].
    pub fn into_result(self) -> Result<Value> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(Error::Api(api_error(self.status, &self.body)))
        }
    }
}

impl Client {
    /// Sends subrequests in one composite call (at most
    /// [`MAX_SUBREQUESTS`]); one answer per subrequest, in order.
    ///
    /// Salesforce reads every `@{...}` in a subrequest's url and body as a
    /// reference to an earlier answer: text that merely looks like one
    /// (a customer's message) fails its subrequest. Query text is URL-encoded
    /// (`%40%7B`), so it stays text; a JSON body's strings do not.
    pub async fn composite(
        &self,
        subs: &[Subrequest],
        all_or_none: bool,
    ) -> Result<Vec<SubResult>> {
        let base = format!("/services/data/v{}/", self.api_version());
        let requests: Vec<Value> = subs
            .iter()
            .map(|s| {
                let mut r = json!({
                    "method": s.method.as_str(),
                    "url": format!("{base}{}", s.path.trim_start_matches('/')),
                    "referenceId": s.reference_id,
                });
                if let Some(b) = &s.body {
                    r["body"] = b.clone();
                }
                if !s.headers.is_empty() {
                    let h: serde_json::Map<String, Value> = s
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect();
                    r["httpHeaders"] = Value::Object(h);
                }
                r
            })
            .collect();
        let body = json!({"allOrNone": all_or_none, "compositeRequest": requests});
        let (_, v) = self
            .send(Method::POST, "composite", Some(&body), &[])
            .await?;
        let answers = v
            .get("compositeResponse")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Protocol("composite answer without compositeResponse".into()))?;
        subs.iter()
            .map(|s| {
                let a = answers
                    .iter()
                    .find(|a| json::text(a, "referenceId") == Some(&s.reference_id))
                    .ok_or_else(|| {
                        Error::Protocol(format!("composite answer without {}", s.reference_id))
                    })?;
                Ok(SubResult {
                    status: a.get("httpStatusCode").and_then(Value::as_u64).unwrap_or(0) as u16,
                    body: a.get("body").cloned().unwrap_or(Value::Null),
                })
            })
            .collect()
    }

    /// Runs queries together, [`MAX_QUERIES`] per composite call (a lone
    /// query goes by itself); each one's records (all pages) or its own
    /// error, in order. A failure of the call itself fails them all.
    pub async fn query_many(
        &self,
        soql: &[String],
    ) -> Result<Vec<Result<Vec<Map<String, Value>>>>> {
        if let [one] = soql {
            return Ok(vec![self.query(one).await]);
        }
        let mut out = Vec::with_capacity(soql.len());
        for group in soql.chunks(MAX_QUERIES) {
            let subs: Vec<Subrequest> = group
                .iter()
                .enumerate()
                .map(|(i, q)| Subrequest::query(format!("q{i}"), q))
                .collect();
            for answer in self.composite(&subs, false).await? {
                out.push(self.records(answer).await);
            }
        }
        Ok(out)
    }

    /// A query subrequest's records (every page), or its error.
    pub async fn records(&self, answer: SubResult) -> Result<Vec<Map<String, Value>>> {
        self.all_records(answer.into_result()?).await
    }
}
