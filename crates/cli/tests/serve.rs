//! `cairn serve` as a user meets it: what it logs, the data directory, the
//! operator key, discovery, the ledger, content downloads with `Range`, and
//! `cairn namespace define`.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use serde_json::{json, Value};

use common::{admin_token, cairn, fill, free_addr, http, http_as, request, start, Tmpfs};

const WASM: &[u8] = b"\0asm\x01\0\0\0\0\x09\x04testabcd";

fn body(name: &PackageName, envelope: &Envelope<PackageRecord>) -> Value {
    json!({
        "packageName": name.to_string(),
        "record": {
            "contentBytes": STANDARD.encode(envelope.content_bytes()),
            "keyId": envelope.key_id().to_string(),
            "signature": envelope.signature().to_string(),
        }
    })
}

/// Publishes `name` with one release of `content` over HTTP, uploading the
/// content where the server says; waits until published.
fn publish(addr: std::net::SocketAddr, data: &std::path::Path, name: &str, content: &[u8]) {
    let key = PrivateKey::generate();
    let name: PackageName = name.parse().expect("name");
    let envelope = Envelope::sign(
        &key,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp: Timestamp::new(1_700_000_000, 0),
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
    );
    let log = LogId::package(&name);
    let (status, answer) = http_as(
        addr,
        "POST",
        &format!("/v1/package/{log}/record"),
        Some(&body(&name, &envelope)),
        Some(&admin_token(data)),
    )
    .expect("publish");
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["state"], "sourcing", "{answer}");
    let digest = Hash::of(content).to_string();
    let upload = answer["missingContent"][&digest]["upload"][0]["url"]
        .as_str()
        .expect("upload url")
        .to_owned();
    let response = request(addr, "POST", &upload, &[], content).expect("upload");
    assert_eq!(response.status, 201, "{:?}", response.json());
    let record = answer["recordId"].as_str().expect("record id");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, status) = http(
            addr,
            "GET",
            &format!("/v1/package/{log}/record/{record}"),
            None,
        )
        .expect("status");
        if status["state"] == "published" {
            break;
        }
        assert!(Instant::now() < deadline, "not published: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The permission bits of a file.
#[cfg(unix)]
fn file_mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("file").permissions().mode() & 0o777
}

/// Runs `cairn token create <args> --data-dir <data>`.
fn token_create(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    cairn()
        .args(["token", "create"])
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("token create")
}

/// Starts an OCI upload to `repo` with `token`; returns the status.
fn start_upload(addr: std::net::SocketAddr, repo: &str, token: &str) -> u16 {
    request(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[("authorization", &format!("Bearer {token}"))],
        b"",
    )
    .expect("upload")
    .status
}

#[test]
fn serve_says_where_it_listens_and_keeps_its_data() {
    let data = tempfile::tempdir().expect("tempdir");
    let log = tempfile::NamedTempFile::new().expect("log file");
    let addr = free_addr();
    let mut server = start(
        data.path(),
        addr,
        &[],
        Stdio::from(log.reopen().expect("log file")),
    );
    let text = std::fs::read_to_string(log.path()).expect("log");
    assert!(
        text.contains(&format!("listening on http://{addr}")),
        "{text}"
    );
    let canonical = std::fs::canonicalize(data.path()).expect("canonical");
    assert!(
        text.contains(&format!("data in {}", canonical.display())),
        "{text}"
    );
    assert!(text.contains("created the operator key"), "{text}");
    #[cfg(unix)]
    assert_eq!(file_mode(&data.path().join("operator.key")), 0o600);
    assert!(data.path().join("cairn.sqlite3").exists());
    // The admin token made at first start, where the log says.
    let token_file = data.path().join("admin.token");
    assert!(text.contains("created the admin API token in"), "{text}");
    #[cfg(unix)]
    assert_eq!(file_mode(&token_file), 0o600);
    let token = std::fs::read_to_string(&token_file).expect("token");
    let answer = request(
        addr,
        "GET",
        "/v2/",
        &[("authorization", &format!("Bearer {}", token.trim()))],
        b"",
    )
    .expect("ping");
    assert_eq!(answer.status, 200);
    // `cairn token create` on the running registry: the new token works.
    let output = token_create(
        data.path(),
        &[
            "--account",
            "ci",
            "--scope",
            "publish:acme/*",
            "--expires",
            "1d",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(created.starts_with("cairn_"), "{created}");
    assert_eq!(start_upload(addr, "acme/thing", &created), 202);
    assert_eq!(start_upload(addr, "other/thing", &created), 403);
    // Bad scopes and lifetimes are refused with the fix.
    let output = token_create(data.path(), &["--scope", "push:everything"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("use `pull`, `publish:<namespace>/*`"),
        "{stderr}"
    );
    for (bad, says) in [
        ("soon", "--expires `soon`"),
        // A multi-byte last character once made it panic.
        ("5é", "the unit is d, h or m"),
        ("", "use a positive number"),
        // Once larger than an i64 of seconds: stored as "never", then purged.
        ("99999999999999999d", "longer than 100 years"),
        ("36501d", "longer than 100 years"),
    ] {
        let output = token_create(data.path(), &["--scope", "pull", "--expires", bad]);
        assert_eq!(output.status.code(), Some(1), "--expires {bad:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "--expires {bad:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // An account name is checked as the administration API checks it.
    let output = token_create(data.path(), &["--account", "two words", "--scope", "pull"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a valid name"));

    // A second server on the same data directory is refused with a reason.
    let output = cairn()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("second server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("another cairn process is using the data directory"),
        "{stderr}"
    );

    // Discovery: the document wkg reads, without `wargUrl`.
    let (status, doc) =
        http(addr, "GET", "/.well-known/wasm-pkg/registry.json", None).expect("get");
    assert_eq!(status, 200);
    assert_eq!(doc["preferredProtocol"], "oci");
    assert_eq!(doc["oci"]["registry"], addr.to_string());
    assert_eq!(doc["warg"]["url"], format!("http://{addr}"));
    assert!(doc.get("wargUrl").is_none());
    server.kill().expect("kill");
    server.wait().expect("reap");
}

#[test]
fn ledger_pages_and_range_downloads() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let mut server = start(data.path(), addr, &[], Stdio::null());
    publish(addr, data.path(), "example:ranged", WASM);

    let (_, cp) = http(addr, "GET", "/v1/fetch/checkpoint", None).expect("checkpoint");
    let length = cp["contents"]["logLength"].as_u64().expect("length");
    assert_eq!(length, 2);
    let (status, ledger) = http(addr, "GET", "/v1/ledger", None).expect("ledger");
    assert_eq!(status, 200);
    assert_eq!(ledger["hashAlgorithm"], "sha256");
    let source = &ledger["sources"][0];
    assert_eq!(source["firstRegistryIndex"], 0);
    assert_eq!(source["lastRegistryIndex"], length - 1);
    let url = format!("/{}", source["url"].as_str().expect("url"));
    let packed = request(addr, "GET", &url, &[], b"").expect("ledger records");
    assert_eq!(packed.status, 200);
    assert_eq!(packed.body.len() as u64, 64 * length);
    let second_leaf_log = &packed.body[64..96];
    let log = LogId::package(&"example:ranged".parse().expect("name"));
    assert_eq!(second_leaf_log, log.digest().as_bytes());

    let digest = Hash::of(WASM).to_string();
    let (status, sources) =
        http(addr, "GET", &format!("/v1/content/{digest}"), None).expect("sources");
    assert_eq!(status, 200, "{sources}");
    let source = &sources["contentSources"][&digest][0];
    assert_eq!(source["type"], "httpGet");
    assert_eq!(source["acceptRanges"], true);
    assert_eq!(source["size"], WASM.len());
    let url = source["url"].as_str().expect("url");
    let path = url
        .strip_prefix(&format!("http://{addr}"))
        .expect("absolute URL on this server");

    let full = request(addr, "GET", path, &[], b"").expect("download");
    assert_eq!(full.status, 200);
    assert_eq!(full.body, WASM);
    assert_eq!(full.header("accept-ranges"), Some("bytes"));

    let part = request(addr, "GET", path, &[("Range", "bytes=2-5")], b"").expect("range");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &WASM[2..=5]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 2-5/{}", WASM.len()).as_str())
    );
    let tail = request(addr, "GET", path, &[("Range", "bytes=-3")], b"").expect("suffix");
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, &WASM[WASM.len() - 3..]);
    let open = request(addr, "GET", path, &[("Range", "bytes=10-")], b"").expect("open range");
    assert_eq!(open.status, 206);
    assert_eq!(open.body, &WASM[10..]);
    let beyond = request(addr, "GET", path, &[("Range", "bytes=100-")], b"").expect("beyond");
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{}", WASM.len()).as_str())
    );
    assert!(beyond.json()["message"].is_string());

    let missing = Hash::of(b"absent").to_string();
    let (status, body) = http(addr, "GET", &format!("/v1/content/{missing}"), None).expect("get");
    assert_eq!(status, 404);
    assert_eq!(body["type"], "contentDigest");
    server.kill().expect("kill");
    server.wait().expect("reap");
}

#[test]
fn operator_key_from_the_environment() {
    let data = tempfile::tempdir().expect("tempdir");
    let key = PrivateKey::generate();
    let addr = free_addr();
    let mut server = cairn()
        .args(["serve", "--listen"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data.path())
        .env("CAIRN_OPERATOR_KEY", key.encode())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    let cp = loop {
        if let Ok((200, cp)) = http(addr, "GET", "/v1/fetch/checkpoint", None) {
            break cp;
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            let _ = server.wait();
            panic!("cairn serve did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(cp["keyId"], key.public_key().id().to_string());
    assert!(!data.path().join("operator.key").exists());
    server.kill().expect("kill");
    server.wait().expect("reap");

    // The registry refuses to start with another key.
    let output = cairn()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("CAIRN_OPERATOR_KEY", PrivateKey::generate().encode())
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not the key that initialised this registry"),
        "{stderr}"
    );
}

#[test]
fn namespace_define_on_a_stopped_registry() {
    let data = tempfile::tempdir().expect("tempdir");
    init_registry(data.path(), &[]);
    let output = cairn()
        .args(["namespace", "define", "other", "--data-dir"])
        .arg(data.path())
        .env_remove("CAIRN_OPERATOR_KEY")
        .output()
        .expect("define");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("namespace `other` is defined"));

    let output = cairn()
        .args(["namespace", "define", "Not_Kebab", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("define");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a valid namespace"), "{stderr}");

    let addr = free_addr();
    let mut server = start(data.path(), addr, &[], Stdio::null());
    publish(addr, data.path(), "other:thing", WASM);
    // And on the running registry.
    let output = cairn()
        .args(["namespace", "define", "third", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("define");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("defined on the running registry"));
    publish(addr, data.path(), "third:thing", b"\0asm\x01\0\0\0");
    server.kill().expect("kill");
    server.wait().expect("reap");
}

/// Runs `cairn token <args> --data-dir <data>` with `env`.
fn token(data: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    cairn()
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("CAIRN_KEY_ENCRYPTION_KEY")
        .envs(env.iter().copied())
        .output()
        .expect("cairn token")
}

fn ok(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Starts `cairn serve` on `data` once (with `env`), so a registry exists
/// there, and stops it.
fn init_registry(data: &std::path::Path, env: &[(&str, &str)]) {
    let addr = free_addr();
    let mut child = cairn()
        .args(["serve", "--namespace", "example", "--listen"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data)
        .env_remove("CAIRN_KEY_ENCRYPTION_KEY")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    common::wait_ready(&mut child, addr);
    child.kill().expect("kill");
    child.wait().expect("reap");
}

/// The custodial keys as stored in the database.
fn stored_custodial_keys(data: &std::path::Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(data.join("cairn.sqlite3")).expect("database");
    let mut stmt = conn
        .prepare("SELECT name, custodial_key FROM accounts ORDER BY name")
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn tokens_are_listed_revoked_and_the_admin_token_rotated() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let mut server = start(data.path(), addr, &[], Stdio::null());
    let first_admin = admin_token(data.path());
    let ci = ok(token(
        data.path(),
        &[
            "create",
            "--account",
            "ci",
            "--scope",
            "publish:acme/*",
            "--note",
            "build bot",
        ],
        &[],
    ))
    .trim()
    .to_owned();
    assert_eq!(start_upload(addr, "acme/thing", &ci), 202);
    let listed = ok(token(data.path(), &["list", "--json"], &[]));
    let entries: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(entries.len(), 2, "{listed}");
    let ci_entry = entries
        .iter()
        .find(|e| e["account"] == "ci")
        .expect("ci token");
    assert_eq!(ci_entry["note"], "build bot");
    assert_eq!(ci_entry["scopes"], json!(["publish:acme/*"]));
    assert!(!listed.contains(&ci), "a listing never shows a token");
    let table = ok(token(data.path(), &["list"], &[]));
    assert!(
        table.contains("build bot") && table.contains("ci"),
        "{table}"
    );
    server.kill().expect("kill");
    server.wait().expect("reap");

    // Revoked, and the admin token rotated, on the stopped registry.
    let id = ci_entry["id"].as_str().expect("id");
    let refused = token(data.path(), &["revoke", "abc"], &[]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("at least 8 hex digits"));
    let revoked = token(data.path(), &["revoke", &id[..10]], &[]);
    assert!(revoked.status.success());
    assert!(String::from_utf8_lossy(&revoked.stderr).contains("revoked token"));
    ok(token(data.path(), &["rotate-admin"], &[]));
    let second_admin = admin_token(data.path());
    assert_ne!(first_admin, second_admin);
    let listed = ok(token(data.path(), &["list", "--json"], &[]));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let missing = token(&data.path().join("nowhere"), &["list"], &[]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("holds no registry"));

    let mut server = start(data.path(), addr, &[], Stdio::null());
    assert_eq!(start_upload(addr, "acme/thing", &ci), 401);
    assert_eq!(start_upload(addr, "acme/thing", &first_admin), 401);
    assert_eq!(start_upload(addr, "acme/thing", &second_admin), 202);
    server.kill().expect("kill");
    server.wait().expect("reap");
}

#[test]
fn custodial_keys_are_sealed_at_rest() {
    let data = tempfile::tempdir().expect("tempdir");
    init_registry(data.path(), &[]);
    ok(token(
        data.path(),
        &["create", "--account", "alice", "--scope", "pull"],
        &[],
    ));
    let stored = stored_custodial_keys(data.path());
    assert_eq!(stored.len(), 2, "admin and alice: {stored:?}");
    assert!(
        stored.iter().all(|(_, k)| k.starts_with("sealed:v1:")),
        "{stored:?}"
    );
    // The key-encryption key is beside the database, not in it, 0600.
    let kek = data.path().join("custodial.key");
    #[cfg(unix)]
    assert_eq!(file_mode(&kek), 0o600);
    let database = std::fs::read(data.path().join("cairn.sqlite3")).expect("db");
    let kek_text = std::fs::read_to_string(&kek).expect("kek");
    assert!(!String::from_utf8_lossy(&database).contains(kek_text.trim()));

    // A key given in the environment instead; the wrong one is refused.
    let other = tempfile::tempdir().expect("tempdir");
    let key = "11".repeat(32);
    init_registry(other.path(), &[("CAIRN_KEY_ENCRYPTION_KEY", &key)]);
    ok(token(
        other.path(),
        &["create", "--account", "bob", "--scope", "pull"],
        &[("CAIRN_KEY_ENCRYPTION_KEY", &key)],
    ));
    assert!(!other.path().join("custodial.key").exists());
    let wrong = token(
        other.path(),
        &["list"],
        &[("CAIRN_KEY_ENCRYPTION_KEY", &"22".repeat(32))],
    );
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("does not open with this key-encryption key"),
        "{stderr}"
    );

    // A key stored in plaintext by an earlier Cairn is sealed at the next
    // open, and still works.
    let plain = cairn_protocol::PrivateKey::generate();
    {
        let conn = rusqlite::Connection::open(data.path().join("cairn.sqlite3")).expect("db");
        conn.execute(
            "INSERT INTO accounts (name, custodial_key, created) VALUES ('old', ?1, 0)",
            [plain.encode()],
        )
        .expect("insert");
    }
    ok(token(data.path(), &["list"], &[]));
    let stored = stored_custodial_keys(data.path());
    assert!(
        stored.iter().all(|(_, k)| k.starts_with("sealed:v1:")),
        "{stored:?}"
    );
    let database = std::fs::read(data.path().join("cairn.sqlite3")).expect("db");
    assert!(
        !String::from_utf8_lossy(&database).contains(&plain.encode()),
        "no plaintext copy remains in the database file"
    );
}

#[test]
fn a_full_disk_answers_507_keeps_no_failed_upload_and_the_server_still_starts() {
    let mount = tempfile::tempdir().expect("tempdir");
    let Some(_tmpfs) = Tmpfs::mount(mount.path(), "6m") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs to fill (needs root); the disk-full test did not run"
        );
        return;
    };
    let data = mount.path().join("data");
    let addr = free_addr();
    let mut server = start(&data, addr, &[], Stdio::null());
    let token = admin_token(&data);
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let started =
        request(addr, "POST", "/v2/example/big/blobs/uploads/", &auth, b"").expect("start upload");
    assert_eq!(started.status, 202);
    let location = started.header("location").expect("location").to_owned();
    let chunk = vec![7u8; 1 << 20];
    let mut full = None;
    for _ in 0..10 {
        let answer = request(addr, "PATCH", &location, &auth, &chunk).expect("patch");
        if answer.status != 202 {
            full = Some(answer);
            break;
        }
    }
    let full = full.expect("the disk fills within 10 MiB");
    assert_eq!(full.status, 507, "{}", String::from_utf8_lossy(&full.body));
    let text = String::from_utf8_lossy(&full.body).into_owned();
    assert!(
        text.contains("storage is full") && text.contains("was ended"),
        "{text}"
    );
    // The failed session and its bytes are gone at once.
    assert_eq!(
        request(addr, "GET", &location, &auth, b"")
            .expect("status")
            .status,
        404
    );
    let uploads: Vec<_> = std::fs::read_dir(data.join("blobs/uploads"))
        .expect("uploads")
        .collect();
    assert!(uploads.is_empty(), "{uploads:?}");
    // And the space is free again for a small push.
    let small = b"small blob";
    let digest = format!(
        "sha256:{}",
        Hash::of(small).to_string().trim_start_matches("sha256:")
    );
    let pushed = request(
        addr,
        "POST",
        &format!("/v2/example/small/blobs/uploads/?digest={digest}"),
        &auth,
        small,
    )
    .expect("push");
    assert_eq!(
        pushed.status,
        201,
        "{}",
        String::from_utf8_lossy(&pushed.body)
    );
    server.kill().expect("kill");
    server.wait().expect("reap");

    // A disk full to the last byte: the server still starts (opening the
    // database writes nothing; the ballast is there if it must) and
    // serves reads.
    fill(mount.path());
    let mut server = start(&data, addr, &[], Stdio::null());
    let (status, _) = http(addr, "GET", "/v1/fetch/checkpoint", None).expect("read");
    assert_eq!(status, 200);
    // Writes say the disk is full.
    let refused = request(
        addr,
        "POST",
        &format!("/v2/example/later/blobs/uploads/?digest={digest}"),
        &auth,
        small,
    )
    .expect("push");
    assert_eq!(
        refused.status,
        507,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    server.kill().expect("kill");
    server.wait().expect("reap");
}

#[test]
fn the_log_has_an_access_line_per_request_no_secrets_and_no_colour() {
    let data = tempfile::tempdir().expect("tempdir");
    let log = tempfile::NamedTempFile::new().expect("log file");
    let addr = free_addr();
    let mut server = start(
        data.path(),
        addr,
        &["--no-anonymous-pull"],
        Stdio::from(log.reopen().expect("log file")),
    );
    let token = admin_token(data.path());
    let bearer = format!("Bearer {token}");
    let answer = request(
        addr,
        "GET",
        "/v1/fetch/checkpoint?secret-looking=query",
        &[("authorization", &bearer), ("x-request-id", "trace-me-1")],
        b"",
    )
    .expect("request");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-request-id"), Some("trace-me-1"));
    let refused = request(addr, "GET", "/v1/fetch/checkpoint", &[], b"").expect("request");
    assert_eq!(refused.status, 401);
    server.kill().expect("kill");
    server.wait().expect("reap");
    let text = std::fs::read_to_string(log.path()).expect("log");
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cairn::access"))
        .collect();
    assert!(
        access
            .iter()
            .any(|l| l.contains("trace-me-1") && l.contains("status=200")),
        "{text}"
    );
    assert!(access.iter().any(|l| l.contains("status=401")), "{text}");
    assert!(!text.contains(&token), "a token reached the log");
    assert!(
        !text.contains("secret-looking"),
        "a query string reached the log"
    );
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log that is not a terminal"
    );
}

#[test]
fn administration_never_creates_a_registry_by_accident() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let nowhere = scratch.path().join("cairn-data");
    for args in [
        &["token", "create", "--scope", "pull"][..],
        &["token", "list"][..],
        &["namespace", "define", "acme"][..],
        &["namespace", "policy", "acme", "--oci-create", "true"][..],
    ] {
        let output = cairn()
            .args(args)
            .arg("--data-dir")
            .arg(&nowhere)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("holds no registry") && stderr.contains("--data-dir"),
            "{args:?}: {stderr}"
        );
        assert!(!nowhere.exists(), "{args:?} created {}", nowhere.display());
    }
}

#[test]
fn the_home_page_and_completions_are_for_people() {
    let data = tempfile::tempdir().expect("tempdir");
    let log = tempfile::NamedTempFile::new().expect("log file");
    let addr = free_addr();
    let mut server = start(
        data.path(),
        addr,
        &[],
        Stdio::from(log.reopen().expect("log file")),
    );
    let page = request(addr, "GET", "/", &[], b"").expect("home");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
    let html = String::from_utf8_lossy(&page.body);
    for needle in [
        "<code>example</code>",
        &format!("cairn config --registry http://{addr}"),
        &format!("default_registry = \"{addr}\""),
        "protocol = \"http\"",
        &format!("warg config --registry http://{addr}"),
        "/.well-known/wasm-pkg/registry.json",
    ] {
        assert!(html.contains(needle), "the page lacks {needle}:\n{html}");
    }
    server.kill().expect("kill");
    server.wait().expect("reap");
    let text = std::fs::read_to_string(log.path()).expect("log");
    assert!(text.contains("namespaces: example"), "{text}");
    assert!(
        text.contains(&format!("cairn config --registry http://{addr}")),
        "{text}"
    );
    let completions = cairn().args(["completions", "bash"]).output().expect("run");
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("complete -F"));
    let help = cairn().args(["serve", "--help"]).output().expect("run");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("OCI 1.1") && help.contains("Warg v1"),
        "{help}"
    );
}

#[test]
fn administration_over_http_with_the_admin_token() {
    let data = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let mut server = start(data.path(), addr, &[], Stdio::null());
    let url = format!("http://{addr}");
    let admin_file = data.path().join("admin.token");
    let run = |args: &[&str], admin: Option<&str>| {
        let mut command = cairn();
        command
            .args(args)
            .args(["--registry", &url])
            .current_dir(elsewhere.path())
            .env_remove("CAIRN_ADMIN_TOKEN")
            .env_remove("CAIRN_DATA_DIR");
        if let Some(token) = admin {
            command.env("CAIRN_ADMIN_TOKEN", token);
        }
        command.output().expect("cairn")
    };
    // Without an admin token: how to give one.
    let refused = run(&["token", "create", "--scope", "pull"], None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("CAIRN_ADMIN_TOKEN"));
    // From another directory, over HTTP: nothing is created there.
    let created = cairn()
        .args([
            "token",
            "create",
            "--account",
            "ci",
            "--scope",
            "publish:example/*",
        ])
        .args(["--registry", &url, "--admin-token-file"])
        .arg(&admin_file)
        .current_dir(elsewhere.path())
        .output()
        .expect("create");
    let token = ok(created).trim().to_owned();
    assert!(token.starts_with("cairn_"), "{token}");
    assert!(!elsewhere.path().join("cairn-data").exists());
    assert_eq!(start_upload(addr, "example/thing", &token), 202);
    let admin = admin_token(data.path());
    let listed = ok(run(&["token", "list", "--json"], Some(&admin)));
    let ci: Value = listed
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .find(|t| t["account"] == "ci")
        .expect("the ci token is listed");
    // Revoked over HTTP: refused at once, not when a cache lapses.
    let id = ci["id"].as_str().expect("id").to_owned();
    ok(run(&["token", "revoke", &id], Some(&admin)));
    assert_eq!(start_upload(addr, "example/thing", &token), 401);
    // A token without the admin scope may not administer.
    let pull = ok(run(
        &["token", "create", "--account", "reader", "--scope", "pull"],
        Some(&admin),
    ))
    .trim()
    .to_owned();
    let denied = run(&["token", "list"], Some(&pull));
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("`admin` scope"));
    // Namespaces too.
    let defined = ok(run(&["namespace", "define", "other"], Some(&admin)));
    assert!(
        defined.contains("namespace `other` is defined"),
        "{defined}"
    );
    let page = request(addr, "GET", "/", &[], b"").expect("home");
    assert!(String::from_utf8_lossy(&page.body).contains("<code>other</code>"));
    server.kill().expect("kill");
    server.wait().expect("reap");
}
