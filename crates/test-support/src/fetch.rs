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

/// The status the server at `base` answers to a POST of `path` (with
/// `authorization`) that announces a JSON body of `length` bytes, read
/// before any of the body is sent: a refusal from the headers alone (a
/// client still writing the body could see the connection close instead).
pub async fn status_for_length(base: &str, path: &str, authorization: &str, length: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {authorization}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), tcp.read(&mut answer));
    let n = read.await.expect("answered before the body").unwrap();
    let line = String::from_utf8_lossy(&answer[..n]).to_string();
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    code.unwrap_or_else(|| panic!("no status line in {line:?}"))
}
