//! Administration of a running registry over HTTP (`--registry URL`, an
//! admin token from `CAIRN_ADMIN_TOKEN` or `--admin-token-file`), the
//! other way besides `--data-dir`: it needs no access to the registry's
//! files, and a revoked token is refused at once.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Where to administer over HTTP.
#[derive(clap::Args, Clone)]
pub struct RemoteArgs {
    /// Administer the running registry at this URL over HTTP (with an admin
    /// token) instead of the data directory.
    #[arg(long, env = "CAIRN_ADMIN_URL", value_name = "URL")]
    pub registry: Option<String>,
    /// A file holding the admin token (e.g. `<data-dir>/admin.token`);
    /// `CAIRN_ADMIN_TOKEN` gives the token itself.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
}

/// What the administration API answered.
struct Answer {
    /// 412: the `If-Match` tag was no longer the resource's.
    changed_meanwhile: bool,
    /// The `ETag`, unquoted.
    tag: Option<String>,
    value: Value,
}

/// A running registry's administration API.
pub struct Remote {
    url: String,
    token: String,
    http: reqwest::blocking::Client,
}

/// An HTTP client with the same timeouts and trusted CAs as every other
/// client command (`cairn_client::Limits` from the environment).
pub(crate) fn http_client() -> Result<reqwest::blocking::Client> {
    let limits = cairn_client::Limits::from_env(|k| std::env::var_os(k))?;
    let mut builder = reqwest::blocking::Client::builder()
        .connect_timeout(limits.connect_timeout)
        .timeout(limits.read_timeout);
    if let Some(pem) = &limits.trusted_ca_pem {
        for root in reqwest::Certificate::from_pem_bundle(pem)? {
            builder = builder.add_root_certificate(root);
        }
    }
    Ok(builder.build()?)
}

impl Remote {
    /// The API at `--registry`, if given.
    pub fn from_args(args: &RemoteArgs) -> Result<Option<Remote>> {
        let Some(url) = &args.registry else {
            return Ok(None);
        };
        let url = cairn_client::config::check_url(url)?;
        let token = match (
            std::env::var("CAIRN_ADMIN_TOKEN").ok(),
            &args.admin_token_file,
        ) {
            (_, Some(file)) => std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the admin token in {}", file.display()))?,
            (Some(token), None) if !token.trim().is_empty() => token,
            _ => bail!(
                "administering {url} over HTTP needs its admin token: set CAIRN_ADMIN_TOKEN, or \
                 pass --admin-token-file <data-dir>/admin.token"
            ),
        };
        Ok(Some(Remote {
            url,
            token: token.trim().to_owned(),
            http: http_client()?,
        }))
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        Ok(self.exchange(method, path, body, None)?.value)
    }

    /// One request; an answer that is not a success is an error, except
    /// 412 (the `If-Match` tag no longer matches), answered as it is.
    fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Result<Answer> {
        let url = format!("{}/cairn/v1/admin{path}", self.url);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(tag) = if_match {
            request = request.header(reqwest::header::IF_MATCH, format!("\"{tag}\""));
        }
        let response = request.send().with_context(|| {
            format!("cannot reach {}: is `cairn serve` running there?", self.url)
        })?;
        let status = response.status();
        let tag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_owned());
        let text = response.text().unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() && status != reqwest::StatusCode::PRECONDITION_FAILED {
            let message = value["message"]
                .as_str()
                .map_or_else(|| text.trim().to_owned(), str::to_owned);
            bail!("{} refused: {message} (HTTP {})", self.url, status.as_u16());
        }
        Ok(Answer {
            changed_meanwhile: status == reqwest::StatusCode::PRECONDITION_FAILED,
            tag,
            value,
        })
    }

    /// Creates a token; returns the registry's answer (with `token`).
    pub fn create_token(
        &self,
        account: &str,
        scopes: &[String],
        expires_in: Option<u64>,
        note: &str,
    ) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/tokens",
            Some(json!({
                "account": account,
                "scopes": scopes,
                "expiresIn": expires_in,
                "note": note,
            })),
        )
    }

    /// Every token (`id`, `account`, `scopes`, `expires`, `note`).
    pub fn tokens(&self) -> Result<Vec<Value>> {
        let answer = self.call(reqwest::Method::GET, "/tokens", None)?;
        Ok(answer["tokens"].as_array().cloned().unwrap_or_default())
    }

    /// Revokes the token whose id starts with `id`.
    pub fn revoke(&self, id: &str) -> Result<Value> {
        let answer = self.call(reqwest::Method::DELETE, &format!("/tokens/{id}"), None)?;
        Ok(answer["revoked"].clone())
    }

    /// Defines a namespace; whether it was new.
    pub fn define_namespace(&self, namespace: &str) -> Result<bool> {
        let answer = self.call(
            reqwest::Method::POST,
            "/namespaces",
            Some(json!({ "namespace": namespace })),
        )?;
        Ok(answer["defined"].as_bool().unwrap_or(false))
    }

    /// Imports a namespace from another registry; whether it was new.
    pub fn import_namespace(&self, namespace: &str, from: &str) -> Result<bool> {
        let answer = self.call(
            reqwest::Method::POST,
            "/namespaces",
            Some(json!({ "namespace": namespace, "importFrom": from })),
        )?;
        Ok(answer["imported"].as_bool().unwrap_or(false))
    }

    /// The publish policy of `namespace`, and its tag (to change it only
    /// if unchanged).
    pub fn policy(&self, namespace: &str) -> Result<(Value, Option<String>)> {
        let answer = self.exchange(
            reqwest::Method::GET,
            &format!("/policies/{namespace}"),
            None,
            None,
        )?;
        Ok((answer.value["policy"].clone(), answer.tag))
    }

    /// Replaces the publish policy of `namespace`, with `tag` only if it
    /// still has that tag; the policy now, or `None` when another edit
    /// came in between (nothing changed).
    pub fn set_policy(
        &self,
        namespace: &str,
        policy: &Value,
        tag: Option<&str>,
    ) -> Result<Option<Value>> {
        let answer = self.exchange(
            reqwest::Method::PUT,
            &format!("/policies/{namespace}"),
            Some(policy.clone()),
            tag,
        )?;
        Ok((!answer.changed_meanwhile).then(|| answer.value["policy"].clone()))
    }

    /// Forks a mirrored namespace; the registry's answer.
    pub fn fork(&self, namespace: &str, package: Option<&str>) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/forks",
            Some(json!({ "namespace": namespace, "package": package })),
        )
    }

    /// Takes down (or, with `restore`, restores) a release or a package.
    pub fn notice(
        &self,
        restore: bool,
        package: &str,
        version: Option<&str>,
        reason: &str,
        purge: bool,
    ) -> Result<Value> {
        let body = if purge {
            json!({ "package": package, "version": version, "reason": reason, "purge": true })
        } else {
            json!({ "package": package, "version": version, "reason": reason })
        };
        self.call(
            reqwest::Method::POST,
            if restore { "/restores" } else { "/takedowns" },
            Some(body),
        )
    }

    /// The URL administered.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// `cairn takedown`.
#[derive(clap::Args)]
pub struct TakeDownArgs {
    /// The release (`namespace:name@1.2.3`) or, without a version, the
    /// whole package: every release, and no new records.
    target: String,
    /// Why, in words shown with every refused download and kept in the
    /// log for good (e.g. a legal notice's reference).
    #[arg(long)]
    reason: String,
    /// Lift an earlier take-down of the same release or package instead.
    #[arg(long, conflicts_with = "purge")]
    restore: bool,
    /// Also remove the content's bytes from storage (with the take-down,
    /// or after it). A restore afterwards serves nothing until the bytes
    /// are pushed again.
    #[arg(long)]
    purge: bool,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `cairn takedown`: a signed notice in the registry's log; the content
/// is refused (451, with the reason) on both faces from the next
/// checkpoint on, while every record and proof stays valid.
pub fn take_down(args: TakeDownArgs) -> Result<()> {
    let (package, version) = match args.target.split_once('@') {
        Some((p, v)) => (p, Some(v)),
        None => (args.target.as_str(), None),
    };
    let Some(api) = Remote::from_args(&args.remote)? else {
        bail!(
            "a take-down is recorded by the running registry: name it with --registry URL (or \
             CAIRN_ADMIN_URL) and give its admin token (CAIRN_ADMIN_TOKEN or --admin-token-file)"
        );
    };
    let answer = api.notice(args.restore, package, version, &args.reason, args.purge)?;
    if args.json {
        println!("{answer}");
    } else if answer.get("recordId").is_none() {
        println!(
            "{} was taken down already on {}; its content's bytes are purged",
            args.target,
            api.url()
        );
    } else {
        println!(
            "{} {} on {} (notice record {} at registry index {})",
            args.target,
            if args.restore {
                "restored"
            } else {
                "taken down"
            },
            api.url(),
            answer["recordId"].as_str().unwrap_or("?"),
            answer["registryIndex"]
        );
        if args.purge {
            println!("its content's bytes are purged");
        }
    }
    Ok(())
}

impl Remote {
    /// Trusts a public key (PEM) for signatures in `namespace`, or only in
    /// its `package`; the registry's answer (`keyId`, `name`).
    pub fn trust_key(
        &self,
        namespace: &str,
        package: Option<&str>,
        pem: &str,
        label: &str,
    ) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            &format!("/namespaces/{namespace}/keys"),
            Some(json!({ "key": pem, "package": package, "name": label })),
        )
    }

    /// The keys trusted in `namespace`.
    pub fn trusted_keys(&self, namespace: &str) -> Result<Vec<Value>> {
        let answer = self.call(
            reqwest::Method::GET,
            &format!("/namespaces/{namespace}/keys"),
            None,
        )?;
        Ok(answer["keys"].as_array().cloned().unwrap_or_default())
    }

    /// Stops trusting a key (its id or label).
    pub fn untrust_key(&self, namespace: &str, package: Option<&str>, key: &str) -> Result<()> {
        let mut path = format!("/namespaces/{namespace}/keys/{key}");
        if let Some(package) = package {
            path.push_str(&format!("?package={package}"));
        }
        self.call(reqwest::Method::DELETE, &path, None)?;
        Ok(())
    }
}
