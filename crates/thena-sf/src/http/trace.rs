//! One span per HTTP request (tower-http): method, path, the connection a
//! webhook is for, then its status and latency. The path only: a query
//! string may carry a webhook token. Failures are logged at `info` or
//! `warn`; a successful request only at `debug` (thousands a second).

use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The connection a webhook path names (`/webhooks/thena/{connection}`).
fn connection_of(path: &str) -> &str {
    path.strip_prefix("/webhooks/thena/")
        .map(|rest| rest.split('/').next().unwrap_or(""))
        .unwrap_or("")
}

fn make_span(req: &Request) -> Span {
    let path = req.uri().path();
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %path,
        connection = connection_of(path),
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

fn on_response(res: &Response, latency: Duration, span: &Span) {
    let status = res.status().as_u16();
    let ms = latency.as_millis() as u64;
    span.record("status", status);
    span.record("latency_ms", ms);
    match status {
        500.. => tracing::warn!(status, latency_ms = ms, "request failed"),
        400.. => tracing::info!(status, latency_ms = ms, "request refused"),
        _ => tracing::debug!(status, latency_ms = ms, "request answered"),
    }
}

/// The layer, for the webhook server and the admin page.
#[allow(clippy::type_complexity)]
pub fn layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request) -> Span,
    (),
    fn(&Response, Duration, &Span),
    (),
    (),
    (),
> {
    TraceLayer::new_for_http()
        .make_span_with(make_span as fn(&Request) -> Span)
        .on_request(())
        .on_response(on_response as fn(&Response, Duration, &Span))
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_connection_comes_from_a_webhook_path_only() {
        assert_eq!(super::connection_of("/webhooks/thena/acme"), "acme");
        assert_eq!(super::connection_of("/webhooks/thena/acme/x"), "acme");
        assert_eq!(super::connection_of("/connections/acme"), "");
    }
}
