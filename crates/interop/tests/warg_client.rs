//! The reference client library, `warg-client` 0.10, drives a Cairn server
//! in-process on a random 127.0.0.1 port: the whole life of a package
//! (init, releases, a grant to a second key that then releases, revoke,
//! yank), downloads by a client with empty storage, and a restart of the
//! server on the same data directory after which the old client's
//! consistency check from its last checkpoint passes.
//!
//! Every client call below runs the client's own verification: each fetch
//! checks the checkpoint signature (`/v1/verify/checkpoint`), replays and
//! validates the package and operator logs, checks inclusion proofs of
//! their heads against the checkpoint's log and map roots, and checks log
//! consistency from the last checkpoint it trusted. Any failure is an error
//! that fails the test.

mod common;

use cairn_interop::server::TestServer;
use cairn_registry::Config;
use common::{client, download_exact, download_newest, publish, reference_key, release};
use warg_client::storage::{PublishEntry, RegistryStorage};
use warg_protocol::package::Permission;
use warg_protocol::registry::PackageName;

/// A distinct, valid Wasm module per `tag`: the 8-byte header and a custom
/// section carrying the tag.
fn wasm(tag: &str) -> Vec<u8> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    let name = b"cairn-test";
    let payload_len = 1 + name.len() + tag.len();
    assert!(payload_len < 128, "tag too long for a one-byte length");
    bytes.push(0); // custom section
    bytes.push(payload_len as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warg_client_lifecycle_survives_restart() {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let data = scratch.path().join("data");
    let server = TestServer::start(&data, &["test"]);
    let url = server.url.clone();
    let addr = server.addr;

    let owner_key = reference_key(0);
    let second_key = reference_key(1);
    let name = PackageName::new("test:lifecycle").expect("name");
    let token = Some(server.admin_token.as_str());
    let owner = client(&url, &scratch.path().join("owner"), token);
    let second = client(&url, &scratch.path().join("second"), token);

    // Without a token the registry refuses to publish, and says how to get
    // one.
    let anonymous = client(&url, &scratch.path().join("anonymous"), None);
    let refused = publish(&anonymous, &owner_key, &name, vec![PublishEntry::Init])
        .await
        .expect_err("publishing without a token");
    let message = format!("{refused}");
    assert!(
        message.contains("cairn token create"),
        "the refusal names the fix: {message}"
    );

    // Init, then two releases.
    publish(&owner, &owner_key, &name, vec![PublishEntry::Init])
        .await
        .expect("init");
    let v100 = wasm("1.0.0");
    let v110 = wasm("1.1.0");
    let entry = release(&owner, "1.0.0", &v100).await;
    publish(&owner, &owner_key, &name, vec![entry])
        .await
        .expect("release 1.0.0");
    let entry = release(&owner, "1.1.0", &v110).await;
    publish(&owner, &owner_key, &name, vec![entry])
        .await
        .expect("release 1.1.0");

    // The second key cannot release before it is granted the permission.
    let v200 = wasm("2.0.0");
    let entry = release(&second, "2.0.0", &v200).await;
    let refused = publish(&second, &second_key, &name, vec![entry.clone()]).await;
    let message = format!("{}", refused.expect_err("release without permission"));
    assert!(
        message.contains("permission") || message.contains("release"),
        "names the missing permission: {message}"
    );

    // Grant release to the second key, which then releases.
    publish(
        &owner,
        &owner_key,
        &name,
        vec![PublishEntry::Grant {
            key: second_key.public_key(),
            permissions: vec![Permission::Release],
        }],
    )
    .await
    .expect("grant");
    publish(&second, &second_key, &name, vec![entry])
        .await
        .expect("release 2.0.0 by the granted key");

    // Revoke: the second key can no longer release.
    publish(
        &owner,
        &owner_key,
        &name,
        vec![PublishEntry::Revoke {
            key_id: second_key.public_key().fingerprint(),
            permissions: vec![Permission::Release],
        }],
    )
    .await
    .expect("revoke");
    let entry = release(&second, "2.1.0", &wasm("2.1.0")).await;
    publish(&second, &second_key, &name, vec![entry])
        .await
        .expect_err("a revoked key cannot release");

    // Yank 1.1.0.
    publish(
        &owner,
        &owner_key,
        &name,
        vec![PublishEntry::Yank {
            version: "1.1.0".parse().expect("version"),
        }],
    )
    .await
    .expect("yank");

    // A reader with empty storage: pinned and newest downloads, bytes
    // compared; the yanked version is neither newest nor downloadable.
    let reader_dir = scratch.path().join("reader");
    {
        let reader = client(&url, &reader_dir, None);
        assert_eq!(download_exact(&reader, &name, "1.0.0").await, v100);
        let (version, bytes) = download_newest(&reader, &name, "*").await;
        assert_eq!((version.to_string(), bytes), ("2.0.0".into(), v200.clone()));
        let (version, bytes) = download_newest(&reader, &name, "^1").await;
        assert_eq!(
            (version.to_string(), bytes),
            ("1.0.0".into(), v100.clone()),
            "1.1.0 is yanked"
        );
        let yanked = reader
            .download_exact(&name, &"1.1.0".parse().expect("version"))
            .await;
        assert!(
            yanked.is_err(),
            "a yanked release has no content to download"
        );
        let info = reader.package(&name).await.expect("package info");
        let versions: Vec<String> = info
            .state
            .releases()
            .map(|r| format!("{}{}", r.version, if r.yanked() { " (yanked)" } else { "" }))
            .collect();
        assert_eq!(versions, ["1.0.0", "1.1.0 (yanked)", "2.0.0"]);
    }
    let reader = client(&url, &reader_dir, None);
    let before = reader
        .registry()
        .load_checkpoint(None)
        .await
        .expect("load checkpoint")
        .expect("the reader trusts a checkpoint")
        .as_ref()
        .checkpoint
        .log_length;

    // Restart on the same data directory and port.
    server.stop();
    let server = TestServer::start_with(&data, &["test"], Config::default(), Some(addr));
    assert_eq!(server.url, url);

    // The owner releases again after the restart.
    let v300 = wasm("3.0.0");
    let entry = release(&owner, "3.0.0", &v300).await;
    publish(&owner, &owner_key, &name, vec![entry])
        .await
        .expect("release 3.0.0 after restart");

    // The reader updates from its old checkpoint: consistency proof,
    // inclusion proofs, signature, log replay.
    reader
        .update()
        .await
        .expect("update from the old checkpoint");
    let after = reader
        .registry()
        .load_checkpoint(None)
        .await
        .expect("load checkpoint")
        .expect("checkpoint")
        .as_ref()
        .checkpoint
        .log_length;
    assert!(after > before, "the reader moved from {before} to {after}");
    reader.clear_content_cache().await.expect("clear cache");
    assert_eq!(download_exact(&reader, &name, "1.0.0").await, v100);
    assert_eq!(download_exact(&reader, &name, "2.0.0").await, v200);
    let (version, bytes) = download_newest(&reader, &name, "*").await;
    assert_eq!((version.to_string(), bytes), ("3.0.0".into(), v300.clone()));

    // And a fresh client sees the same history.
    let fresh = client(&url, &scratch.path().join("fresh"), None);
    assert_eq!(download_exact(&fresh, &name, "1.0.0").await, v100);
    let (version, bytes) = download_newest(&fresh, &name, "^2").await;
    assert_eq!((version.to_string(), bytes), ("2.0.0".into(), v200));
    server.stop();
}

/// With anonymous reads off, the reference client (which fetches content
/// URLs without its token) still downloads: the content URLs it is given
/// carry a short-lived grant for that one digest (issue 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_client_downloads_when_reads_need_a_token() {
    use cairn_interop::server::TestOptions;
    let scratch = tempfile::tempdir().expect("scratch dir");
    let mut options = TestOptions::default();
    options.server.anonymous_pull = false;
    let server = TestServer::start_options(&scratch.path().join("data"), &["test"], options);
    let url = server.url.clone();
    let key = reference_key(0);
    let name = PackageName::new("test:private").expect("name");
    let token = Some(server.admin_token.as_str());
    let owner = client(&url, &scratch.path().join("owner"), token);
    publish(&owner, &key, &name, vec![PublishEntry::Init])
        .await
        .expect("init");
    let v1 = wasm("private 1.0.0");
    let entry = release(&owner, "1.0.0", &v1).await;
    publish(&owner, &key, &name, vec![entry])
        .await
        .expect("release");

    let reader_token = server.token("reader", &["pull"], None);
    let reader = client(&url, &scratch.path().join("reader"), Some(&reader_token));
    assert_eq!(download_exact(&reader, &name, "1.0.0").await, v1);

    // The grant is for that digest only, and nothing else opens without a
    // token.
    let http = reqwest::Client::new();
    let digest = cairn_protocol::Hash::of(&v1);
    let sources: serde_json::Value = http
        .get(format!("{url}/v1/content/{digest}"))
        .bearer_auth(&reader_token)
        .send()
        .await
        .expect("sources")
        .json()
        .await
        .expect("json");
    let file = sources["contentSources"][digest.to_string()][0]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert!(file.contains("?grant="), "{file}");
    let granted = http.get(&file).send().await.expect("download");
    assert_eq!(granted.status(), 200);
    assert_eq!(
        granted.bytes().await.expect("bytes").as_ref(),
        v1.as_slice()
    );
    let bare = file.split('?').next().expect("path");
    assert_eq!(http.get(bare).send().await.expect("get").status(), 401);
    let other = format!(
        "{url}/content/sha256-{}?{}",
        hex::encode([0u8; 32]),
        file.split('?').nth(1).expect("query")
    );
    assert_eq!(http.get(&other).send().await.expect("get").status(), 401);
    let forged = format!(
        "{}0",
        file.trim_end_matches(|c: char| c.is_ascii_hexdigit())
    );
    assert_eq!(http.get(&forged).send().await.expect("get").status(), 401);
}
