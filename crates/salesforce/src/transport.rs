//! How calls reach Salesforce: which certificate authorities are trusted,
//! which proxy carries them, and what a failed call says about why.
//!
//! Trust is the platform's store (honouring `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`, through rustls-native-certs) plus Mozilla's roots built in,
//! plus any CA the caller adds: behind a TLS-inspecting proxy or with a
//! private CA, the company's CA is one of these. The proxy is the one the
//! caller names, else `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` with
//! `NO_PROXY` (reqwest's system proxy).

use std::time::Duration;

use crate::error::{Error, Result};

/// Extra trust and a proxy for every HTTP client this crate builds. Cheap to clone.
#[derive(Clone, Default)]
pub struct Transport {
    roots: Vec<reqwest::Certificate>,
    proxy: Option<reqwest::Proxy>,
    /// The proxy's URL without credentials, for Debug and messages.
    proxy_shown: Option<String>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("extra_roots", &self.roots.len())
            .field("proxy", &self.proxy_shown)
            .finish()
    }
}

impl Transport {
    /// Also trusts every certificate in this PEM bundle.
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Transport> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::Config(format!("not a PEM certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Config("the PEM bundle holds no certificate".into()));
        }
        self.roots.extend(certs);
        Ok(self)
    }

    /// Sends every call through `url` (`http://host:port`, credentials allowed),
    /// except to hosts `no_proxy` lists (comma-separated, as `NO_PROXY`).
    pub fn with_proxy(mut self, url: &str, no_proxy: Option<&str>) -> Result<Transport> {
        let shown = shown_url(url);
        let proxy = reqwest::Proxy::all(url)
            .map_err(|_| Error::Config(format!("proxy {shown} is not a valid URL")))?
            .no_proxy(no_proxy.and_then(reqwest::NoProxy::from_string));
        self.proxy = Some(proxy);
        self.proxy_shown = Some(shown);
        Ok(self)
    }

    /// An HTTP client that never follows redirects (an API answer is never a
    /// redirect we trust), with this trust and proxy.
    pub fn http_client(&self, timeout: Duration) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(8);
        for c in &self.roots {
            b = b.add_root_certificate(c.clone());
        }
        if let Some(p) = &self.proxy {
            b = b.proxy(p.clone());
        }
        b.build().expect("a TLS backend is compiled in")
    }
}

/// A URL's scheme, host and port, without credentials or path.
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(unparsable)".into(),
    }
}

/// A request that got no answer, as the client's error: [`Error::TimedOut`]
/// when the client's timeout ended it.
pub(crate) fn unanswered(e: &reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::TimedOut(redact(e))
    } else {
        Error::Transport(redact(e))
    }
}

/// A transport error's text without its URL (which may carry a query with a
/// secret): what kind of failure, and the host. An untrusted certificate and
/// a proxy's refusal say so, since neither gets better by retrying.
pub(crate) fn redact(e: &reqwest::Error) -> String {
    let host = e
        .url()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    if let Some(why) = untrusted_certificate(e) {
        return format!(
            "the TLS certificate of {host} is not trusted ({why}); if a TLS-inspecting proxy or a \
             private CA signs it, trust that CA with `ca_file` in the config, or SSL_CERT_FILE / SSL_CERT_DIR"
        );
    }
    // hyper-util's TunnelError, known by its variants' names.
    match chain(e).map(|s| format!("{s:?}")).find(|d| d.starts_with("Proxy") || d.starts_with("Tunnel")) {
        Some(d) if d == "ProxyAuthRequired" => {
            return format!("the proxy refused to open a tunnel to {host}: it wants credentials (407); give them in the proxy URL")
        }
        Some(d) if d == "TunnelUnsuccessful" => {
            return format!("the proxy refused to open a tunnel to {host}")
        }
        _ => {}
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off"
    } else {
        "the request failed"
    };
    format!("{kind} ({host})")
}

/// Every error in `e`'s chain, looking inside `io::Error`s too (whose
/// `source` skips the error they wrap).
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(e);
    std::iter::from_fn(move || {
        let cur = next?;
        next = match cur
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => cur.source(),
        };
        Some(cur)
    })
}

/// Why rustls refused the server's certificate, if it did.
fn untrusted_certificate(e: &reqwest::Error) -> Option<String> {
    chain(e).find_map(|s| match s.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(why) => Some(format!("{why:?}")),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_is_shown_without_its_credentials() {
        let t = Transport::default()
            .with_proxy("http://user:hunter2@proxy.corp:3128/x", Some("localhost"))
            .unwrap();
        let shown = format!("{t:?}");
        assert!(shown.contains("http://proxy.corp:3128"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let err = Transport::default()
            .with_proxy("::not a url hunter2", None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        assert!(Transport::default().with_ca_pem(b"hello").is_err());
    }
}
