//! A posted admin form as axum extractors: [`Posted`] checks the session,
//! the origin and the CSRF token before a handler runs; [`ConnPosted`] also
//! loads the connection named in the path. A handler that takes one of them
//! only runs for a form the admin really sent.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::de::DeserializeOwned;

use super::auth::{form_session, Session};
use super::errors::missing;
use super::App;
use crate::store::Connection;

/// A form that carries the session's CSRF token.
pub trait Csrf {
    fn csrf(&self) -> &str;
}

/// `Csrf` for forms whose token is their `csrf` field.
macro_rules! csrf_field {
    ($($form:ty),+) => {
        $(impl $crate::web::form::Csrf for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })+
    };
}
pub(crate) use csrf_field;

/// A form whose session, origin and CSRF token were checked.
pub struct Posted<F> {
    pub session: Session,
    pub form: F,
}

/// A form posted on a connection's page: [`Posted`], and the connection.
pub struct ConnPosted<F> {
    pub session: Session,
    pub conn: Connection,
    pub form: F,
}

impl<F> FromRequest<App> for Posted<F>
where
    F: Csrf + DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let Form(form) = Form::<F>::from_request(req, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let session = form_session(app, &headers, form.csrf()).await?;
        Ok(Posted { session, form })
    }
}

impl<F> FromRequest<App> for ConnPosted<F>
where
    F: Csrf + DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Path(name) = Path::<String>::from_request_parts(&mut parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let Posted { session, form } =
            Posted::<F>::from_request(Request::from_parts(parts, body), app).await?;
        match app.store.connection(&name).await {
            Ok(conn) => Ok(ConnPosted {
                session,
                conn,
                form,
            }),
            Err(e) => Err(missing(session.chrome(), &e)),
        }
    }
}

/// A form that carries only its CSRF token (Log out, Reconnect).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

csrf_field!(CsrfForm);
