//! The administration API, for an `admin` token: what `cairn token …` and
//! `cairn namespace define` do on a data directory, over HTTP to a running
//! registry (so the commands need no access to its files, and a revoked
//! token is refused at once rather than when the token cache lapses).
//!
//! - `POST /cairn/v1/admin/tokens` `{account, scopes, expiresIn?, note?}`:
//!   201 with the new token (shown only then);
//! - `GET /cairn/v1/admin/tokens`: every token's id, account, scopes,
//!   expiry, note (never the token);
//! - `DELETE /cairn/v1/admin/tokens/{id}`: revokes the one token whose id
//!   starts with `id` (at least 8 hex digits);
//! - `POST /cairn/v1/admin/namespaces` `{namespace}`: defines it;
//! - `POST /cairn/v1/admin/takedowns` `{package, version?, reason}`: takes
//!   a release (or a whole package) down, by a notice record in the log;
//! - `POST /cairn/v1/admin/restores` `{package, version?, reason}`: lifts it;
//! - `GET /cairn/v1/takedowns` (anyone): the take-downs in force;
//! - `PUT /cairn/v1/admin/policies/{namespace}` (a publish policy, as
//!   `GET /cairn/v1/policies/{namespace}` shows it to anyone): replaces
//!   the namespace's publish policy.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_registry::auth::{
    check_account, new_token, token_hash, Scope, TokenEntry, TokenInfo, TOKEN_LIFETIME_MAX,
};
use cairn_registry::policy::PublishPolicy;
use serde::Deserialize;
use serde_json::json;

use crate::error::{blocking, ApiError};
use crate::warg::ApiJson;
use crate::AppState;

/// Refuses a caller without an admin token.
pub(crate) async fn admin(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match crate::auth::caller(app, headers).await {
        Ok(Some(token)) if token.is_admin() => Ok(()),
        Ok(Some(token)) => Err(ApiError::message(
            StatusCode::FORBIDDEN,
            format!(
                "administration needs a token with the `admin` scope; this one (account `{}`) \
                 has {}",
                token.account,
                token.scope_list()
            ),
        )),
        Ok(None) => Err(ApiError::message(
            StatusCode::UNAUTHORIZED,
            "administration needs an admin token: send it as `Authorization: Bearer <token>` \
             (the registry wrote one to <data-dir>/admin.token at first start)",
        )),
        Err(e) => Err(ApiError::message(StatusCode::UNAUTHORIZED, e.message)),
    }
}

pub(crate) fn store_error(e: cairn_registry::StoreError) -> ApiError {
    let message = e.to_string();
    ApiError::storage(&e, message)
}

/// A new token's request.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateToken {
    account: String,
    scopes: Vec<String>,
    /// Seconds from now; none for a token that never expires.
    expires_in: Option<u64>,
    #[serde(default)]
    note: String,
}

fn entry_json(t: &TokenEntry) -> serde_json::Value {
    json!({
        "id": t.id(),
        "account": t.info.account,
        "scopes": t.info.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "expires": t.info.expires,
        "created": t.created,
        "note": t.note,
    })
}

/// `POST /cairn/v1/admin/tokens`
pub(crate) async fn create_token(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    admin(&app, &headers).await?;
    check_account(&body.account).map_err(ApiError::bad_request)?;
    if body.scopes.is_empty() || body.scopes.len() > 32 {
        return Err(ApiError::bad_request("give 1 to 32 scopes"));
    }
    let scopes = body
        .scopes
        .iter()
        .map(|s| {
            s.parse::<Scope>()
                .map_err(|e| ApiError::bad_request(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if body.note.len() > 1024 {
        return Err(ApiError::bad_request("the note is longer than 1,024 bytes"));
    }
    let now = app.clock.now_seconds();
    let expires =
        match body.expires_in {
            Some(0) => return Err(ApiError::bad_request("expiresIn must be positive")),
            Some(seconds) if seconds > TOKEN_LIFETIME_MAX => return Err(ApiError::bad_request(
                "expiresIn is longer than 100 years; leave it out for a token that never expires",
            )),
            Some(seconds) => Some(now + seconds),
            None => None,
        };
    let token = new_token();
    let info = TokenInfo {
        account: body.account.clone(),
        scopes,
        expires,
    };
    let store = app.tokens.store().clone();
    let (hash, stored) = (token_hash(&token), info.clone());
    let note = body.note.clone();
    blocking(move || {
        store.ensure_account(&stored.account).map_err(store_error)?;
        store.add_token(&hash, &stored, &note).map_err(store_error)
    })
    .await?;
    let entry = TokenEntry {
        hash: token_hash(&token),
        info,
        note: body.note,
        created: now,
    };
    let mut answer = entry_json(&entry);
    answer["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /cairn/v1/admin/tokens`
pub(crate) async fn list_tokens(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&app, &headers).await?;
    let store = app.tokens.store().clone();
    let tokens = blocking(move || store.tokens().map_err(store_error)).await?;
    let tokens: Vec<_> = tokens.iter().map(entry_json).collect();
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

/// `DELETE /cairn/v1/admin/tokens/{id}`
pub(crate) async fn revoke_token(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&app, &headers).await?;
    let id = id.to_ascii_lowercase();
    if id.len() < 8 || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!(
            "`{id}` is not a token id: give at least 8 hex digits (GET /cairn/v1/admin/tokens)"
        )));
    }
    let tokens = app.tokens.clone();
    let revoked = blocking(move || {
        let found: Vec<TokenEntry> = tokens
            .store()
            .tokens()
            .map_err(store_error)?
            .into_iter()
            .filter(|t| hex::encode(t.hash).starts_with(&id))
            .collect();
        match found.as_slice() {
            [] => Err(ApiError::message(
                StatusCode::NOT_FOUND,
                format!("no token has id `{id}`"),
            )),
            [one] => {
                tokens.revoke(&one.hash).map_err(store_error)?;
                Ok(one.clone())
            }
            many => Err(ApiError::bad_request(format!(
                "{} tokens have ids starting `{id}`: give more digits",
                many.len()
            ))),
        }
    })
    .await?;
    Ok(Json(json!({ "revoked": entry_json(&revoked) })).into_response())
}

/// A namespace to define.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DefineNamespace {
    namespace: String,
    /// Import it from this registry (a URL or domain) instead of defining it.
    #[serde(default)]
    import_from: Option<String>,
}

/// Checks a registry named by an import: a URL or a domain, one short
/// token of printable characters.
pub(crate) fn check_registry_name(registry: &str) -> Result<(), ApiError> {
    let ok = !registry.is_empty()
        && registry.len() <= 253
        && registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:/[]".contains(c));
    if !ok {
        return Err(ApiError::bad_request(format!(
            "`{registry}` is not a registry: give its URL (`https://registry.example`) or domain"
        )));
    }
    Ok(())
}

/// `POST /cairn/v1/admin/namespaces`
pub(crate) async fn define_namespace(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DefineNamespace>,
) -> Result<Response, ApiError> {
    admin(&app, &headers).await?;
    if let Err(e) = cairn_protocol::validate_namespace(&body.namespace) {
        return Err(ApiError::bad_request(format!(
            "`{}` is not a valid namespace: {e} (use kebab-case, e.g. `acme` or `my-org`)",
            body.namespace
        )));
    }
    if let Some(from) = &body.import_from {
        check_registry_name(from)?;
        let imported = app
            .registry
            .import_namespace(body.namespace.clone(), from.clone())
            .await?;
        covered(&app).await;
        return Ok(Json(json!({
            "namespace": body.namespace,
            "importedFrom": from,
            "imported": !imported.is_empty(),
        }))
        .into_response());
    }
    let defined = app
        .registry
        .define_namespaces(vec![body.namespace.clone()])
        .await?;
    covered(&app).await;
    Ok(Json(json!({
        "namespace": body.namespace,
        "defined": !defined.is_empty(),
    }))
    .into_response())
}

/// Waits until a checkpoint covers every record committed so far (an
/// operator record just answered), so that clients see it at once.
async fn covered(app: &AppState) {
    let committed = app.registry.committed_length();
    if committed > 0 {
        app.registry.checkpointed(committed - 1).await;
    }
}

/// A take-down's or restore's request.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Notice {
    package: String,
    version: Option<String>,
    reason: String,
    /// Also remove the content's bytes from storage (take-downs only).
    #[serde(default)]
    purge: bool,
}

impl Notice {
    fn parse(
        &self,
    ) -> Result<(cairn_protocol::PackageName, Option<cairn_protocol::Version>), ApiError> {
        let name = cairn_protocol::PackageName::new(&self.package).map_err(|e| {
            ApiError::bad_request(format!("`{}` is not a package name: {e}", self.package))
        })?;
        let version = self
            .version
            .as_deref()
            .map(|v| {
                cairn_protocol::Version::parse(v)
                    .map_err(|e| ApiError::bad_request(format!("`{v}` is not a version: {e}")))
            })
            .transpose()?;
        let reason = self.reason.trim();
        if reason.is_empty() || self.reason.len() > cairn_protocol::notice::MAX_REASON_BYTES {
            return Err(ApiError::bad_request(format!(
                "give the reason, in 1 to {} bytes: it is logged and shown with every refused \
                 download",
                cairn_protocol::notice::MAX_REASON_BYTES
            )));
        }
        Ok((name, version))
    }
}

/// Answers once the notice at `index` is in a checkpoint (so every reader
/// enforces it).
async fn noticed(
    app: &AppState,
    attested: cairn_registry::Attested,
    what: &str,
    body: &Notice,
) -> Result<Response, ApiError> {
    app.registry.checkpointed(attested.index).await;
    // The take-down just checkpointed is in force: it names the content.
    let purged = if body.purge {
        purge(app, body).await?.unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "notice": what,
            "package": body.package,
            "version": body.version,
            "reason": body.reason,
            "registryIndex": attested.index,
            "recordId": attested.record_id.to_string(),
            "purged": purged,
        })),
    )
        .into_response())
}

/// Removes the bytes of the content the take-down of `body`'s scope (in
/// force) names; answers their digests.
/// `None` when no take-down of the scope is in force (one read of the
/// notice log decides and names the content).
async fn purge(app: &AppState, body: &Notice) -> Result<Option<Vec<String>>, ApiError> {
    let (name, version) = body.parse()?;
    let registry = app.registry.clone();
    let oci = app.oci.clone();
    blocking(move || {
        let notices = registry.notices()?;
        let scope = cairn_protocol::notice::Scope {
            package: name,
            version,
        };
        let Some((_, down)) = notices.taken_down().find(|(s, _)| **s == scope) else {
            return Ok(None);
        };
        oci.purge(&down.content)
            .map_err(|e| ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, e.message))?;
        Ok(Some(down.content.iter().map(ToString::to_string).collect()))
    })
    .await
}

/// `POST /cairn/v1/admin/takedowns` `{package, version?, reason}`.
pub(crate) async fn take_down(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Notice>,
) -> Result<Response, ApiError> {
    admin(&app, &headers).await?;
    let (name, version) = body.parse()?;
    // Taken down already: a purge asked for now removes the bytes.
    if body.purge {
        if let Some(purged) = purge(&app, &body).await? {
            return Ok(Json(json!({
                "notice": "takeDown",
                "package": body.package,
                "version": body.version,
                "purged": purged,
            }))
            .into_response());
        }
    }
    let registry = app.registry.clone();
    let reason = body.reason.clone();
    let answer =
        blocking(move || Ok(registry.take_down(&name, version.as_ref(), &reason)?)).await?;
    let attested = answer.await?;
    noticed(&app, attested, "takeDown", &body).await
}

/// `POST /cairn/v1/admin/restores` `{package, version?, reason}`.
pub(crate) async fn restore(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Notice>,
) -> Result<Response, ApiError> {
    admin(&app, &headers).await?;
    let (name, version) = body.parse()?;
    if body.purge {
        return Err(ApiError::bad_request(
            "a restore purges nothing: `purge` goes with a take-down",
        ));
    }
    let attested = app
        .registry
        .restore(&name, version.as_ref(), &body.reason)
        .await?;
    noticed(&app, attested, "restore", &body).await
}

/// `GET /cairn/v1/takedowns`: every take-down in force, for anyone to see
/// what the operator removed and why.
pub(crate) async fn take_downs(State(app): State<AppState>) -> Result<Response, ApiError> {
    let registry = app.registry.clone();
    let notices = blocking(move || Ok(registry.notices()?)).await?;
    let list: Vec<serde_json::Value> = notices
        .taken_down()
        .map(|(scope, down)| {
            json!({
                "package": scope.package.as_str(),
                "version": scope.version.as_ref().map(ToString::to_string),
                "content": down.content.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "reason": down.reason,
                "timestamp": down.timestamp.seconds(),
            })
        })
        .collect();
    Ok(Json(json!({ "takeDowns": list })).into_response())
}

/// `GET /cairn/v1/mirrors`: how each mirror stands: the origin's latest
/// verified checkpoint, when it was last reached (and how stale the copy
/// is), the last error, and whether it stopped on an inconsistency.
pub(crate) async fn mirrors(State(app): State<AppState>) -> Response {
    let now = app.clock.now_seconds();
    let list: Vec<serde_json::Value> = app
        .oci
        .mirror_reports()
        .into_iter()
        .map(|r| {
            json!({
                "origin": r.origin,
                "namespace": r.namespace,
                "packages": r.packages,
                "content": if r.content_all { "all" } else { "on-demand" },
                "checkpointLength": r.checkpoint_length,
                "lastSuccess": r.last_success,
                "staleSeconds": r.last_success.map(|t| now.saturating_sub(t)),
                "packagesHeld": r.packages_held,
                "error": r.error,
                "stopped": r.stopped,
            })
        })
        .collect();
    Json(json!({ "mirrors": list })).into_response()
}

/// A fork's request.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ForkNamespace {
    namespace: String,
    /// Only this package of the namespace.
    #[serde(default)]
    package: Option<String>,
}

/// `POST /cairn/v1/admin/forks` `{namespace, package?}`: takes over a
/// mirrored namespace, or one package of it, from its origin (a fork
/// notice in the log, then the origin's verified records replayed into
/// this log).
pub(crate) async fn fork(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ForkNamespace>,
) -> Result<Response, ApiError> {
    admin(&app, &headers).await?;
    if let Err(e) = cairn_protocol::validate_namespace(&body.namespace) {
        return Err(ApiError::bad_request(format!(
            "`{}` is not a valid namespace: {e}",
            body.namespace
        )));
    }
    let package = body
        .package
        .as_deref()
        .map(|p| {
            let name = cairn_protocol::PackageName::new(p).map_err(|e| {
                ApiError::bad_request(format!("`{p}` is not a valid package name: {e}"))
            })?;
            if name.namespace() != body.namespace {
                return Err(ApiError::bad_request(format!(
                    "package `{name}` is not in namespace `{}`",
                    body.namespace
                )));
            }
            Ok(name)
        })
        .transpose()?;
    let oci = app.oci.clone();
    let namespace = body.namespace.clone();
    let one = package.clone();
    let (log_length, packages, records) = blocking(move || {
        oci.fork_mirrored(&namespace, one.as_ref()).map_err(|e| {
            let status = match e.code {
                cairn_registry::oci::ErrorCode::NameUnknown => StatusCode::NOT_FOUND,
                cairn_registry::oci::ErrorCode::BlobUnknown => StatusCode::CONFLICT,
                cairn_registry::oci::ErrorCode::Denied => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            ApiError::message(status, e.message)
        })
    })
    .await?;
    covered(&app).await;
    Ok(Json(json!({
        "namespace": body.namespace,
        "package": package.map(|p| p.to_string()),
        "originLogLength": log_length,
        "packages": packages,
        "records": records,
    }))
    .into_response())
}

/// `GET /cairn/v1/forks`: the namespaces this registry took over, and
/// where (and at which checkpoint) their history came from.
pub(crate) async fn forks(State(app): State<AppState>) -> Result<Response, ApiError> {
    let registry = app.registry.clone();
    let notices = blocking(move || Ok(registry.notices()?)).await?;
    let list: Vec<serde_json::Value> = notices
        .forks()
        .map(|(_, fork)| {
            json!({
                "namespace": fork.namespace,
                "package": fork.package.as_ref().map(ToString::to_string),
                "origin": fork.origin,
                "logLength": fork.log_length,
                "logRoot": fork.log_root.to_string(),
                "timestamp": fork.timestamp.seconds(),
            })
        })
        .collect();
    Ok(Json(json!({ "forks": list })).into_response())
}

/// The most releases a policy may allow to break their series.
const ALLOWED_BREAKS_MAX: usize = 1000;

fn policy_namespace(namespace: &str) -> Result<(), ApiError> {
    cairn_protocol::validate_namespace(namespace).map_err(|e| {
        ApiError::bad_request(format!(
            "`{namespace}` is not a valid namespace: {e} (use kebab-case, e.g. `acme`)"
        ))
    })
}

/// A policy as JSON, its tag the `ETag` (strong: the tag is a digest of
/// the content), to give back in `If-Match`.
fn policy_response(namespace: &str, policy: &PublishPolicy) -> Response {
    let mut response = Json(json!({ "namespace": namespace, "policy": policy })).into_response();
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{}\"", policy.tag())) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

/// `GET /cairn/v1/policies/{namespace}` (anyone): what a release must
/// carry to be published there.
pub(crate) async fn publish_policy(
    State(app): State<AppState>,
    Path(namespace): Path<String>,
) -> Result<Response, ApiError> {
    policy_namespace(&namespace)?;
    let registry = app.registry.clone();
    let asked = namespace.clone();
    let policy = blocking(move || registry.publish_policy(&asked).map_err(store_error)).await?;
    Ok(policy_response(&namespace, &policy))
}

/// The tag an `If-Match` header asks for (`None`: none given, or `*`).
fn if_match(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is not text"))?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(tag) if !tag.contains('"') => Ok(Some(tag.to_owned())),
        _ => Err(ApiError::bad_request(
            "If-Match takes one tag, quoted, as the policy's ETag gives it",
        )),
    }
}

/// `PUT /cairn/v1/admin/policies/{namespace}`: replaces the namespace's
/// publish policy.
pub(crate) async fn set_publish_policy(
    State(app): State<AppState>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    ApiJson(policy): ApiJson<PublishPolicy>,
) -> Result<Response, ApiError> {
    admin(&app, &headers).await?;
    policy_namespace(&namespace)?;
    if policy.allowed_breaks.len() > ALLOWED_BREAKS_MAX {
        return Err(ApiError::bad_request(format!(
            "a policy allows at most {ALLOWED_BREAKS_MAX} breaks; this one lists {}",
            policy.allowed_breaks.len()
        )));
    }
    for release in &policy.allowed_breaks {
        cairn_registry::policy::check_allowed_break(&namespace, release)
            .map_err(ApiError::bad_request)?;
    }
    let tag = if_match(&headers)?;
    let registry = app.registry.clone();
    let (asked, set) = (namespace.clone(), policy.clone());
    let done = blocking(move || {
        registry
            .set_publish_policy(&asked, &set, tag.as_deref())
            .map_err(store_error)
    })
    .await?;
    if !done {
        return Err(ApiError::message(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "the publish policy of `{namespace}` changed since it was read (it no longer has \
                 the tag in If-Match): read it again and make the change on what it is now"
            ),
        ));
    }
    tracing::info!(%namespace, ?policy, "publish policy set");
    Ok(policy_response(&namespace, &policy))
}
