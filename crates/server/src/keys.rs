//! The keys an operator trusts for signatures and attestations, per
//! namespace or per package (what `cairn namespace trust-key`, `keys` and
//! `untrust-key` do on a data directory, over HTTP):
//!
//! - `POST /cairn/v1/admin/namespaces/{namespace}/keys` (admin)
//!   `{key: PEM, package?: name, name?: label}`: 201 with the key's id;
//! - `DELETE /cairn/v1/admin/namespaces/{namespace}/keys/{key}?package=name`
//!   (admin): stops trusting the key (its id or label);
//! - `GET /cairn/v1/namespaces/{namespace}/keys` (anyone): every key
//!   trusted in the namespace, with its PEM.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_registry::oci::{TrustError, TrustedKey};
use serde::Deserialize;
use serde_json::json;

use crate::admin::{admin, store_error};
use crate::error::{blocking, ApiError};
use crate::warg::ApiJson;
use crate::AppState;

/// A key to trust.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TrustKey {
    /// PEM `PUBLIC KEY`.
    key: String,
    /// Only this package of the namespace (its name, without `ns:`).
    package: Option<String>,
    /// A label.
    #[serde(default)]
    name: String,
}

/// Which package a removal is about.
#[derive(Deserialize)]
pub(crate) struct Scope {
    package: Option<String>,
}

fn key_json(k: &TrustedKey) -> serde_json::Value {
    json!({
        "namespace": k.namespace,
        "package": k.package,
        "keyId": k.key_id,
        "name": k.label,
        "key": k.pem,
    })
}

/// A package given as `name` or `ns:name`, as its name within `namespace`.
fn package_in(namespace: &str, package: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(package) = package else {
        return Ok(None);
    };
    match package.split_once(':') {
        Some((ns, name)) if ns == namespace => Ok(Some(name.to_owned())),
        Some(_) => Err(ApiError::bad_request(format!(
            "package `{package}` is not in namespace `{namespace}`"
        ))),
        None => Ok(Some(package)),
    }
}

/// `POST /cairn/v1/admin/namespaces/{namespace}/keys`
pub(crate) async fn trust(
    State(app): State<AppState>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TrustKey>,
) -> Result<Response, ApiError> {
    admin(&app, &headers).await?;
    let package = package_in(&namespace, body.package)?;
    let oci = app.oci.clone();
    let stored = blocking(move || {
        oci.trust_key(&namespace, package.as_deref(), &body.key, &body.name)
            .map_err(|e| match e {
                TrustError::Store(e) => store_error(e),
                e => ApiError::bad_request(e.to_string()),
            })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(key_json(&stored))).into_response())
}

/// `DELETE /cairn/v1/admin/namespaces/{namespace}/keys/{key}`
pub(crate) async fn untrust(
    State(app): State<AppState>,
    Path((namespace, key)): Path<(String, String)>,
    Query(scope): Query<Scope>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&app, &headers).await?;
    let package = package_in(&namespace, scope.package)?;
    let oci = app.oci.clone();
    let (ns, pkg, k) = (namespace.clone(), package.clone(), key.clone());
    let removed = blocking(move || {
        oci.untrust_key(&ns, pkg.as_deref(), &k)
            .map_err(store_error)
    })
    .await?;
    if !removed {
        let whose = match &package {
            Some(p) => format!("package `{namespace}:{p}`"),
            None => format!("namespace `{namespace}` (namespace-wide)"),
        };
        return Err(ApiError::message(
            StatusCode::NOT_FOUND,
            format!(
                "no key `{key}` is trusted for {whose}: list them with `cairn namespace keys \
                 {namespace}`"
            ),
        ));
    }
    Ok(Json(json!({ "namespace": namespace, "package": package, "removed": key })).into_response())
}

/// `GET /cairn/v1/namespaces/{namespace}/keys`
pub(crate) async fn list(
    State(app): State<AppState>,
    Path(namespace): Path<String>,
) -> Result<Response, ApiError> {
    if let Err(e) = cairn_protocol::validate_namespace(&namespace) {
        return Err(ApiError::bad_request(format!(
            "`{namespace}` is not a namespace: {e}"
        )));
    }
    let oci = app.oci.clone();
    let ns = namespace.clone();
    let keys = blocking(move || oci.trusted_keys(&ns).map_err(store_error)).await?;
    Ok(Json(json!({
        "namespace": namespace,
        "keys": keys.iter().map(key_json).collect::<Vec<_>>(),
    }))
    .into_response())
}
