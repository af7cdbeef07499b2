//! Who is calling: API tokens sent as `Authorization: Bearer <token>` (what
//! wkg's `WKG_REGISTRY_<HOST>_AUTH_BEARER` sends) or as the password of
//! Basic credentials, and the OCI token flow (`WWW-Authenticate: Bearer
//! realm=...` and `GET /auth/token`), which hands out short-lived tokens.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::PackageName;
use cairn_registry::auth::{new_token, token_hash, TokenInfo};
use cairn_registry::oci::{repository_of, ErrorCode, OciError};
use serde_json::json;

use crate::oci::OciResponseError;
use crate::{ApiError, AppState};

/// The token the token endpoint gives anonymous callers: it stands for no
/// credentials.
pub const ANONYMOUS: &str = "anonymous";
/// Lifetime of tokens the token endpoint mints, in seconds.
const MINTED_SECONDS: u64 = 300;

/// How to get a token that may push to `repository` (`<ns>/<name>`).
pub fn publish_scope_hint(repository: &str) -> String {
    let namespace = repository.split('/').next().unwrap_or(repository);
    format!("create one with `cairn token create --scope publish:{namespace}/*`")
}

/// Whether the request carries the anonymous token.
pub fn presented_anonymous(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case(&format!("bearer {ANONYMOUS}"))
        })
}

/// The secret a request carries, if any.
fn secret(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (kind, rest) = value.split_once(' ')?;
    let secret = if kind.eq_ignore_ascii_case("bearer") {
        rest.trim().to_owned()
    } else if kind.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':')?.1.to_owned()
    } else {
        return None;
    };
    (secret != ANONYMOUS && !secret.is_empty()).then_some(secret)
}

/// The caller's token, `None` for an anonymous caller; an error for
/// credentials that are unknown or expired.
pub async fn caller(app: &AppState, headers: &HeaderMap) -> Result<Option<TokenInfo>, OciError> {
    let Some(secret) = secret(headers) else {
        return Ok(None);
    };
    let hash = token_hash(&secret);
    // A token seen recently is checked from memory, on this worker.
    let found = match app.tokens.cached(&hash) {
        Some(info) => Some(info),
        None => {
            let tokens = app.tokens.clone();
            tokio::task::spawn_blocking(move || tokens.lookup(&hash))
                .await
                .map_err(|e| OciError::new(ErrorCode::Internal, e.to_string()))?
                .map_err(OciError::from)?
        }
    };
    match found {
        Some(info) if !info.expired(app.clock.now_seconds()) => Ok(Some(info)),
        Some(_) => Err(OciError::new(
            ErrorCode::Unauthorized,
            "the token has expired: create a new one with `cairn token create`",
        )),
        None => Err(OciError::new(
            ErrorCode::Unauthorized,
            "the token is not known to this registry",
        )),
    }
}

/// The `WWW-Authenticate` value that sends clients to the token endpoint.
fn www_authenticate(
    app: &AppState,
    headers: &HeaderMap,
    scope: Option<&str>,
) -> Option<HeaderValue> {
    let base = crate::warg::base_url(app, headers);
    let service = base
        .split_once("://")
        .map(|(_, host)| host)
        .unwrap_or(&base)
        .to_owned();
    let mut value = format!("Bearer realm=\"{base}/auth/token\",service=\"{service}\"");
    if let Some(scope) = scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    HeaderValue::from_str(&value).ok()
}

/// A 401 `response` with the Bearer challenge.
fn with_challenge(
    app: &AppState,
    headers: &HeaderMap,
    scope: Option<&str>,
    mut response: Response,
) -> Response {
    if let Some(value) = www_authenticate(app, headers, scope) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// An OCI 401 with the Bearer challenge.
pub fn challenge(
    app: &AppState,
    headers: &HeaderMap,
    scope: Option<&str>,
    e: OciError,
) -> Response {
    with_challenge(app, headers, scope, OciResponseError(e).into_response())
}

/// `GET /auth/token`: the OCI token endpoint. With Basic (or Bearer)
/// credentials holding an API token, it mints a token of the same scopes
/// valid for five minutes; without, an anonymous token when anonymous pull
/// is on.
pub async fn token(
    State(app): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let scope = params.get("scope").cloned();
    let info = match caller(&app, &headers).await {
        Ok(info) => info,
        Err(e) => return challenge(&app, &headers, scope.as_deref(), e),
    };
    let (token, expires_in) = match info {
        None if app.anonymous_pull => (ANONYMOUS.to_owned(), MINTED_SECONDS),
        None => {
            return challenge(
                &app,
                &headers,
                scope.as_deref(),
                OciError::new(
                    ErrorCode::Unauthorized,
                    "this registry does not allow anonymous access: log in with an API token",
                ),
            )
        }
        Some(info) => {
            let now = app.clock.now_seconds();
            let until = now + MINTED_SECONDS;
            let expires = Some(info.expires.map_or(until, |e| e.min(until)));
            let minted = TokenInfo { expires, ..info };
            let token = new_token();
            let auth = app.tokens.store().clone();
            let hash = token_hash(&token);
            let stored = tokio::task::spawn_blocking(move || {
                let _ = auth.purge_tokens(now);
                auth.add_token(&hash, &minted, "minted by /auth/token")
            })
            .await;
            if !matches!(stored, Ok(Ok(()))) {
                return OciResponseError(OciError::new(
                    ErrorCode::Internal,
                    "cannot store the minted token",
                ))
                .into_response();
            }
            let left = expires.map_or(MINTED_SECONDS, |e| {
                e.saturating_sub(app.clock.now_seconds())
            });
            (token, left)
        }
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
        })
        .to_string(),
    )
        .into_response()
}

/// A Warg-face 401: the reference clients read `message`; the challenge
/// tells OCI-minded tools where tokens come from.
fn warg_unauthorized(app: &AppState, headers: &HeaderMap, message: String) -> Response {
    let response = ApiError::message(StatusCode::UNAUTHORIZED, message).into_response();
    with_challenge(app, headers, None, response)
}

/// The Warg face's publish check: a record for `name` needs a token whose
/// scopes cover the package's repository (`<ns>/<name>`). The record's
/// signature is checked later by the engine against the package's keys.
pub async fn warg_publisher(
    app: &AppState,
    headers: &HeaderMap,
    name: &PackageName,
) -> Result<TokenInfo, Response> {
    let repository = repository_of(name);
    let hint = format!(
        "{} and send it as `Authorization: Bearer <token>` (warg CLI: `warg login`)",
        publish_scope_hint(&repository)
    );
    match caller(app, headers).await {
        Err(e) => Err(warg_unauthorized(
            app,
            headers,
            format!("{}: {hint}", e.message),
        )),
        Ok(None) => Err(warg_unauthorized(
            app,
            headers,
            format!("publishing `{name}` needs an API token with a publish scope for it: {hint}"),
        )),
        Ok(Some(token)) if !token.allows_push(&repository) => Err(ApiError::message(
            StatusCode::FORBIDDEN,
            format!(
                "the token of account `{}` may not publish `{name}` (its scopes: {}): {hint}",
                token.account,
                token.scope_list()
            ),
        )
        .into_response()),
        Ok(Some(token)) => Ok(token),
    }
}

/// Middleware for the Warg face's reads: when anonymous pull is off, they
/// need a valid token.
/// Whether the request downloads content with a valid grant (see
/// [`crate::grant`]).
fn granted(app: &AppState, uri: &axum::http::Uri) -> bool {
    let Some(name) = uri.path().strip_prefix("/content/") else {
        return false;
    };
    let Some(grant) = uri
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("grant=")))
    else {
        return false;
    };
    let Ok(digest) = cairn_api::paths::content_file_digest(name).parse::<cairn_protocol::Hash>()
    else {
        return false;
    };
    app.grants.allows(&digest, grant, app.clock.now_seconds())
}

pub async fn warg_pull_gate(State(app): State<AppState>, request: Request, next: Next) -> Response {
    match pull_allowed(&app, request.headers(), request.uri()).await {
        Ok(()) => next.run(request).await,
        Err(denied) => denied,
    }
}

/// Whether `request` may read through the Warg face: anonymous reads are
/// on, or it carries a content grant or a token that may pull. The
/// refusal is the answer to send.
pub(crate) async fn pull_allowed(
    app: &AppState,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<(), Response> {
    if app.anonymous_pull || granted(app, uri) {
        return Ok(());
    }
    match caller(app, headers).await {
        Ok(Some(token)) if token.allows_pull() => Ok(()),
        Ok(_) => Err(warg_unauthorized(
            app,
            headers,
            "this registry does not allow anonymous reads: send an API token as \
             `Authorization: Bearer <token>`"
                .to_owned(),
        )),
        Err(e) => Err(warg_unauthorized(app, headers, e.message)),
    }
}
