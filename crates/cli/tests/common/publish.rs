//! A client that publishes over HTTP as the load tests need it: a Warg
//! init and release with its content, and an OCI push of a Wasm artifact.

use std::net::SocketAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use serde_json::json;

use super::{request, Response};

fn sha256(bytes: &[u8]) -> String {
    Hash::of(bytes).to_string()
}

/// Publishes for one account on one server.
pub struct Publisher {
    /// The server.
    pub addr: SocketAddr,
    /// `Bearer <token>`.
    pub bearer: String,
    /// The key records are signed with.
    pub key: PrivateKey,
    /// Sees every answer (to count some).
    pub observe: fn(&Response),
}

impl Publisher {
    fn seen(&self, answer: Response) -> Response {
        (self.observe)(&answer);
        answer
    }

    fn auth(&self) -> [(&str, &str); 1] {
        [("authorization", self.bearer.as_str())]
    }

    /// A Warg init and release of `content`, with the upload; `Some`
    /// once the upload is acknowledged.
    pub fn warg_publish(&self, name: &PackageName, content: &[u8]) -> Option<String> {
        let (body, id) = cairn_interop::publish::publish_body(&self.key, name, content);
        let log = LogId::package(name);
        let mut headers = self.auth().to_vec();
        headers.push(("content-type", "application/json"));
        let answer = request(
            self.addr,
            "POST",
            &format!("/v1/package/{log}/record"),
            &headers,
            body.as_bytes(),
        )
        .ok()
        .map(|a| self.seen(a))?;
        if answer.status != 202 {
            return None;
        }
        let uploaded = request(
            self.addr,
            "POST",
            &format!(
                "/v1/package/{log}/record/{id}/content/{}",
                Hash::of(content)
            ),
            &[],
            content,
        )
        .ok()
        .map(|a| self.seen(a))?;
        (uploaded.status == 201).then_some(id)
    }

    /// Pushes a Wasm artifact to `repo:1.0.0`; `Some((manifest, layer))`
    /// once the push is acknowledged.
    pub fn oci_push(&self, repo: &str, content: &[u8]) -> Option<(String, String)> {
        let config = br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#;
        for blob in [&config[..], content] {
            let answer = request(
                self.addr,
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(blob)),
                &self.auth(),
                blob,
            )
            .ok()
            .map(|a| self.seen(a))?;
            if answer.status != 201 {
                return None;
            }
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.wasm.config.v0+json",
                "digest": sha256(config),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/wasm",
                "digest": sha256(content),
                "size": content.len(),
            }],
        })
        .to_string();
        let mut headers = self.auth().to_vec();
        headers.push(("content-type", "application/vnd.oci.image.manifest.v1+json"));
        let answer = request(
            self.addr,
            "PUT",
            &format!("/v2/{repo}/manifests/1.0.0"),
            &headers,
            manifest.as_bytes(),
        )
        .ok()
        .map(|a| self.seen(a))?;
        (answer.status == 201).then(|| (sha256(manifest.as_bytes()), sha256(content)))
    }
}

/// The path and JSON body of a publish of `name`'s signed `init` record.
pub fn init_request(key: &PrivateKey, name: &PackageName) -> (String, String) {
    let envelope = Envelope::sign(
        key,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp: Timestamp::new(1_800_000_000, 0),
            entries: vec![PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            }],
        },
    );
    let body = json!({
        "packageName": name.to_string(),
        "record": {
            "contentBytes": STANDARD.encode(envelope.content_bytes()),
            "keyId": envelope.key_id().to_string(),
            "signature": envelope.signature().to_string(),
        }
    })
    .to_string();
    (format!("/v1/package/{}/record", LogId::package(name)), body)
}
