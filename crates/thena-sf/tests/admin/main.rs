//! The admin page: over HTTP (login, sessions, CSRF, the actions) and in a
//! real browser. One test binary, grouped by feature (ARCHITECTURE.md,
//! "Testing").

mod admin_page;
mod browser;
mod support;
