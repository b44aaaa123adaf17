//! The dashboard: one page at `/` and its assets, embedded in the binary (no CDN, no build
//! step), and the session a browser signs in with. The page holds no data: it calls the JSON
//! API and follows `/events` like any client, authenticated by the session cookie, so `/` and
//! `/assets/{file}` are public.
//!
//! Signing in is `POST /session` with the token as a bearer header: the one token check
//! validates it, and the answer sets the `chatgptd_session` cookie (HttpOnly, SameSite=Strict)
//! that the event streams and later calls present.

use axum::extract::Path;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatgptd_runtime::http::auth::{expired_session_cookie, session_cookie};
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{Access, Caller, Routes, Scope, error_response};
use serde_json::json;
use utoipa::OpenApi;

/// The files of the page: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
];

const INDEX: &str = include_str!("../assets/index.html");

/// `/`, `/assets/{file}` and `/session`.
pub fn routes() -> Routes {
    Routes::new()
        .documented(DashboardApi::openapi())
        .route("/", Method::GET, Access::Public, axum::routing::get(index))
        .route(
            "/assets/{file}",
            Method::GET,
            Access::Public,
            axum::routing::get(asset),
        )
        .get("/session", Scope::Read, who)
        .post("/session", Scope::Read, sign_in)
        .route(
            "/session",
            Method::DELETE,
            Access::Public,
            axum::routing::delete(sign_out),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(index, asset, who, sign_in, sign_out),
    tags((name = "dashboard", description = "The web page at `/` and the session a browser signs in with"))
)]
struct DashboardApi;

/// The dashboard page. It holds no data: it loads it from the API once signed in.
#[utoipa::path(get, path = "/", tag = "dashboard", responses(
    (status = 200, description = "the page", body = String, content_type = "text/html"),
))]
async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

/// A script or style sheet of the page.
#[utoipa::path(get, path = "/assets/{file}", tag = "dashboard",
    params(("file" = String, Path, description = "the file's name", example = "app.js")),
    responses(
        (status = 200, description = "the file", content(
            (String = "text/javascript"), (String = "text/css"))),
        (status = 404, description = "no such file", body = ErrorBody),
    ))]
async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, content)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *content,
        )
            .into_response(),
        None => error_response(
            StatusCode::NOT_FOUND,
            "no such asset",
            json!({"assets": ASSETS.iter().map(|(name, _, _)| *name).collect::<Vec<_>>()}),
        ),
    }
}

/// Who the session (or bearer token) is: the token's name.
#[utoipa::path(get, path = "/session", tag = "dashboard", responses(
    (status = 200, description = "the token's name", body = serde_json::Value,
        example = json!({"token": "local"})),
))]
async fn who(caller: Caller) -> Response {
    axum::Json(json!({"token": caller.name()})).into_response()
}

/// Signs a browser in: the token, sent as `Authorization: Bearer`, is checked like any
/// request's, and the answer keeps it in the HttpOnly `chatgptd_session` cookie. With no
/// tokens checked (`http.auth = "none"`) there is nothing to keep.
#[utoipa::path(post, path = "/session", tag = "dashboard", responses(
    (status = 200, description = "signed in: the cookie is set", body = serde_json::Value,
        example = json!({"token": "local"})),
))]
async fn sign_in(caller: Caller, headers: axum::http::HeaderMap) -> Response {
    let body = axum::Json(json!({"token": caller.name()}));
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .map(|(_, secret)| secret.trim())
        .filter(|secret| !secret.is_empty());
    match secret {
        Some(secret) => ([(header::SET_COOKIE, session_cookie(secret))], body).into_response(),
        // Authenticated by the cookie already, or no tokens: nothing new to keep.
        None => body.into_response(),
    }
}

/// Signs a browser out: the cookie is removed. Public, so a stale cookie can always go.
#[utoipa::path(delete, path = "/session", tag = "dashboard", responses(
    (status = 204, description = "signed out"),
))]
async fn sign_out() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, expired_session_cookie())],
    )
        .into_response()
}
