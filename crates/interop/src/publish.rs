//! Publishing over the Warg face as load benchmarks need it: a signed
//! `init` and `release` record of fresh package, then its content upload,
//! over a shared async HTTP client.

use base64::Engine;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use serde_json::json;

/// A package's first record: init (owner `key`) and release `1.0.0` of
/// `content`, signed by `key`.
pub fn first_release(key: &PrivateKey, content: &[u8]) -> Envelope<PackageRecord> {
    Envelope::sign(
        key,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp: Timestamp::new(1_800_000_000, 0),
            entries: vec![
                PackageEntry::Init {
                    hash_algorithm: HashAlgorithm::Sha256,
                    key: key.public_key().clone(),
                },
                PackageEntry::Release {
                    version: "1.0.0".parse().expect("version"),
                    content: Hash::of(content),
                },
            ],
        },
    )
}

/// A Warg publish body of [`first_release`] for `name`; and the record's
/// id.
pub fn publish_body(key: &PrivateKey, name: &PackageName, content: &[u8]) -> (String, String) {
    let envelope = first_release(key, content);
    let body = json!({
        "packageName": name.to_string(),
        "record": {
            "contentBytes": base64::engine::general_purpose::STANDARD.encode(envelope.content_bytes()),
            "keyId": envelope.key_id().to_string(),
            "signature": envelope.signature().to_string(),
        }
    })
    .to_string();
    (body, envelope.record_id().to_string())
}

/// A Warg publish of `name` with its upload, at `url` with `bearer`
/// (`Bearer <token>`); the status of the last step (201: uploaded, the
/// record has left `sourcing`), or 0 when a request failed.
pub async fn publish(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    key: &PrivateKey,
    name: &PackageName,
    content: &[u8],
) -> u16 {
    let with_auth = |request: reqwest::RequestBuilder| match bearer {
        Some(b) => request.header("authorization", b),
        None => request,
    };
    let (body, id) = publish_body(key, name, content);
    let log = LogId::package(name);
    let answer = with_auth(client.post(format!("{url}/v1/package/{log}/record")))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let Ok(answer) = answer else { return 0 };
    if answer.status().as_u16() != 202 {
        return answer.status().as_u16();
    }
    let _ = answer.bytes().await;
    let upload = with_auth(client.post(format!(
        "{url}/v1/package/{log}/record/{id}/content/{}",
        Hash::of(content)
    )))
    .body(content.to_vec())
    .send()
    .await;
    match upload {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }
        Err(_) => 0,
    }
}
