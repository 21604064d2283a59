//! Helpers for black-box tests: an emulator on port 0 and a small client.

use std::time::Duration;

use serde_json::Value;
use sf_emulator::{EmulatorConfig, Running};

pub const V: &str = "67.0";

pub struct Org {
    pub emu: Running,
    pub http: reqwest::Client,
    pub token: String,
}

impl Org {
    pub async fn start(config: EmulatorConfig) -> Org {
        let emu = test_support::emulator::start(config).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let mut org = Org {
            emu,
            http,
            token: String::new(),
        };
        org.token = org.password_token().await;
        org
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url)
    }

    pub fn data(&self, path: &str) -> String {
        self.url(&format!("/services/data/v{V}{path}"))
    }

    pub async fn password_token(&self) -> String {
        let r = self
            .http
            .post(self.url("/services/oauth2/token"))
            .form(&test_support::emulator::password_form(
                test_support::emulator::ADMIN,
                test_support::emulator::PASSWORD,
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        self.send_with(method, path, body, &[]).await
    }

    /// [`Org::send`] with extra request headers.
    pub async fn send_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .http
            .request(method, self.data(path))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("answer");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v, headers)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::GET, path, None).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::POST, path, Some(body)).await;
        (s, v)
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::PATCH, path, Some(body)).await;
        (s, v)
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::DELETE, path, None).await;
        (s, v)
    }

    pub async fn query(&self, soql: &str) -> (u16, Value) {
        let url = format!("/query?q={}", urlencode(soql));
        self.get(&url).await
    }

    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(self.url(&format!("/_emulator/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "admin {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn soap(&self, session: &str, op_xml: &str) -> (u16, String) {
        let env = test_support::emulator::metadata_envelope(session, op_xml);
        let r = self
            .http
            .post(self.url(&format!("/services/Soap/m/{V}")))
            .header("content-type", "text/xml")
            .header("SOAPAction", "\"\"")
            .body(env)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// A Metadata API call that must succeed; its answer.
    pub async fn soap_ok(&self, op_xml: &str) -> String {
        let (s, body) = self.soap(&self.token, op_xml).await;
        assert!(
            s == 200 && body.contains("<success>true</success>"),
            "{body}"
        );
        body
    }

    /// Creates `Obj__c` (auto-number name) with the given `<fields>` XML and grants the admin FLS on them.
    pub async fn custom_object(&self, name: &str, fields: &[(&str, &str)]) {
        let fields_xml: String = fields
            .iter()
            .map(|(f, xml)| format!("<fields><fullName>{f}</fullName>{xml}</fields>"))
            .collect();
        let (s, body) = self
            .soap(
                &self.token,
                &format!(
                    r#"<createMetadata><metadata xsi:type="CustomObject"><fullName>{name}</fullName><deploymentStatus>Deployed</deploymentStatus><label>{name}</label><nameField><displayFormat>N-{{0000}}</displayFormat><label>Number</label><type>AutoNumber</type></nameField><pluralLabel>{name}s</pluralLabel><sharingModel>ReadWrite</sharingModel>{fields_xml}</metadata></createMetadata>"#
                ),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains("<success>true</success>"), "{body}");
        let perms: String = fields
            .iter()
            .map(|(f, _)| format!("<fieldPermissions><editable>true</editable><field>{name}.{f}</field><readable>true</readable></fieldPermissions>"))
            .collect();
        let (s, body) = self
            .soap(&self.token, &format!(r#"<upsertMetadata><metadata xsi:type="Profile"><fullName>Admin</fullName>{perms}</metadata></upsertMetadata>"#))
            .await;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains("<success>true</success>"), "{body}");
    }
}

/// The first error code of a refusal's body (`[{"errorCode": …}]`), or "".
pub fn code(body: &Value) -> &str {
    body[0]["errorCode"].as_str().unwrap_or("")
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn text_field(len: u32) -> String {
    format!("<label>T</label><length>{len}</length><type>Text</type>")
}

pub fn ext_field(unique: bool) -> String {
    format!("<externalId>true</externalId><label>Key</label><length>80</length><type>Text</type><unique>{unique}</unique>")
}
