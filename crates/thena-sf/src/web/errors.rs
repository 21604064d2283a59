//! The admin page's error answers: a page that says what happened and what
//! to do, for every handler.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::render;
use super::views::{Chrome, ErrorPage};
use crate::store::StoreError;

/// A page that says what happened and what to do, with a way back to
/// Integrations.
pub fn error_page(
    status: StatusCode,
    chrome: Option<Chrome>,
    title: &str,
    what: &str,
    todo: &str,
) -> Response {
    error_page_to(
        status,
        chrome,
        title,
        what,
        todo,
        ("Back to Integrations", "/integrations"),
    )
}

/// An error page whose button does what its text says: `(label, href)`.
pub fn error_page_to(
    status: StatusCode,
    chrome: Option<Chrome>,
    title: &str,
    what: &str,
    todo: &str,
    (label, href): (&str, &str),
) -> Response {
    render(
        status,
        &ErrorPage {
            chrome: chrome.unwrap_or_default(),
            title: title.into(),
            what: what.into(),
            todo: todo.into(),
            back: href.into(),
            back_label: label.into(),
        },
    )
}

/// The page for a failure of our own (the store): what failed, no internals beyond its message.
pub fn failure(message: &str) -> Response {
    tracing::error!(error = %message, "the admin page failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "Something failed on our side",
        message,
        "Try again in a moment. If it keeps failing, check the connector's log.",
    )
}

/// The answer when a named connection is not there (or the store failed).
pub fn missing(chrome: Chrome, e: &StoreError) -> Response {
    match e {
        StoreError::NoConnection(n) => error_page(
            StatusCode::NOT_FOUND,
            Some(chrome),
            "No such connection",
            &format!("There is no connection named '{n}'."),
            "Open Integrations to see the connections there are.",
        ),
        other => failure(&other.to_string()),
    }
}

/// Any path no route serves: our page, not a bare 404.
pub async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        None,
        "No such page",
        "There is no page at this address.",
        "Open Integrations to find your way from there.",
    )
}

/// Why an admin action could not finish, for handlers that use `?`: the
/// store failed (our page for it), or the answer is made already.
pub enum AdminError {
    Store(StoreError),
    Answered(Response),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Store(e)
    }
}

impl From<Response> for AdminError {
    fn from(r: Response) -> Self {
        AdminError::Answered(r)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::Store(e) => failure(&e.to_string()),
            AdminError::Answered(r) => r,
        }
    }
}

/// What an admin handler answers.
pub type AdminResult = Result<Response, AdminError>;
