//! The OCI clients people use, against a Cairn server on 127.0.0.1, and the
//! one history both faces share:
//!
//! - `wkg` 0.16.1 builds a WIT package with metadata, publishes it (found
//!   through `/.well-known/wasm-pkg/registry.json`, authenticated by
//!   `WKG_REGISTRY_<HOST>_AUTH_BEARER`), gets it newest and pinned as WIT
//!   and Wasm, fetches a world that imports it (the lock digest is the layer
//!   digest), and its semver gate refuses an incompatible version; the
//!   reference `warg-client` then downloads and verifies what wkg pushed;
//! - a release published with `warg-client` is pulled with wkg and skopeo,
//!   skopeo copies it to an OCI layout and back (`--preserve-digests`), and
//!   the copy pushed back to a version tag is a release on the Warg face;
//! - oras-py pushes a Wasm artifact with its config, pulls it back, and
//!   attaches a signature-like artifact (`subject`) that the referrers API
//!   then lists.
//!
//! The tools come from `$CAIRN_WKG`, `$CAIRN_SKOPEO`, `$CAIRN_ORAS_PYTHON`,
//! or where `.ci/run` installs them (`~/.cache/cairn-ci`, skopeo from
//! Debian); a test whose tool is missing fails under `CAIRN_REQUIRE_TOOLS`
//! (as `.ci/run` runs it) and skips with a banner otherwise
//! ([`tools::require`]).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn_interop::http::Http;
use cairn_interop::server::TestServer;
use cairn_interop::tools::{self, output_text as text, Tool};
use cairn_protocol::{Hash, LogId, PackageName as CairnName};
use cairn_registry::oci::OciConfig;
use cairn_registry::Config;
use cairn_server::ServerOptions;
use common::{client, download_exact, publish, reference_key, release};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warg_client::storage::PublishEntry;
use warg_protocol::registry::PackageName;

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[track_caller]
fn succeeded(what: &str, output: Output) -> String {
    let text = text(&output);
    assert!(output.status.success(), "{what} failed:\n{text}");
    text
}

/// A 127.0.0.1 address no one listens on yet.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// A wkg user with its own home and config, talking to `registry` over
/// plain HTTP (wkg uses HTTPS for OCI unless the config says otherwise).
struct Wkg {
    binary: PathBuf,
    home: PathBuf,
    config: PathBuf,
}

impl Wkg {
    fn new(binary: PathBuf, home: &Path, registry: &str) -> Wkg {
        std::fs::create_dir_all(home).expect("wkg home");
        let config = home.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "default_registry = \"{registry}\"\n\
                 [registry.\"{registry}\".oci]\n\
                 protocol = \"http\"\n"
            ),
        )
        .expect("wkg config");
        Wkg {
            binary,
            home: home.to_owned(),
            config,
        }
    }

    /// Runs `wkg <args> --config <config>` in `dir`, with `env` set.
    fn run(&self, dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
        let mut command = Command::new(&self.binary);
        tools::isolate(&mut command, &self.home)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_BACKTRACE", "0")
            .env("NO_COLOR", "1")
            .current_dir(dir);
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("run wkg")
    }

    /// Builds `acme:<name>@<version>` from WIT with `functions` in its
    /// `greet` interface and `[metadata]` in `wkg.toml`; returns the bytes.
    fn build(&self, dir: &Path, name: &str, version: &str, functions: &[&str]) -> Vec<u8> {
        std::fs::create_dir_all(dir.join("wit")).expect("wit dir");
        let functions: String = functions
            .iter()
            .map(|f| format!("  {f}: func(name: string) -> string;\n"))
            .collect();
        std::fs::write(
            dir.join("wit/world.wit"),
            format!(
                "package acme:{name}@{version};\n\n\
                 interface greet {{\n{functions}}}\n\n\
                 world {name} {{\n  export greet;\n}}\n"
            ),
        )
        .expect("world.wit");
        std::fs::write(
            dir.join("wkg.toml"),
            "[metadata]\n\
             authors = \"Acme Devs <dev@acme.test>\"\n\
             description = \"Test greeter interface\"\n\
             licenses = \"Apache-2.0\"\n\
             source = \"https://git.acme.test/greeter\"\n\
             homepage = \"https://acme.test/greeter\"\n",
        )
        .expect("wkg.toml");
        succeeded("wkg build", self.run(dir, &["build"], &[]));
        std::fs::read(dir.join(format!("acme:{name}@{version}.wasm"))).expect("built package")
    }
}

/// The environment variable wkg reads a bearer token from for `host`.
fn bearer_env(host: &str, token: &str) -> Vec<(String, String)> {
    let key: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    vec![(format!("WKG_REGISTRY_{key}_AUTH_BEARER"), token.to_owned())]
}

/// The manifest of `repo:reference` and its digest, over HTTP.
fn manifest(http: &Http, repo: &str, reference: &str) -> (Value, String, Vec<u8>) {
    let reply = http.send(
        Method::GET,
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("accept", "application/vnd.oci.image.manifest.v1+json")],
        Vec::new(),
    );
    assert_eq!(reply.status, StatusCode::OK, "manifest {repo}:{reference}");
    let digest = reply.header("docker-content-digest");
    (reply.json(), digest, reply.body)
}

/// The Warg face's view: the content digest of `name@version`, if released.
fn warg_release(server: &TestServer, name: &str, version: &str) -> Option<Hash> {
    let name = CairnName::new(name).expect("name");
    let state = server
        .registry
        .published_package(&LogId::package(&name))
        .expect("package state")?;
    let version = version.parse().expect("version");
    let content = state
        .releases()
        .find(|r| r.version == version)
        .map(|r| r.content);
    content
}

/// Runs the reference client's futures from a plain test.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[test]
fn wkg_publishes_gets_and_fetches_and_warg_client_verifies() {
    let test = "wkg_publishes_gets_and_fetches_and_warg_client_verifies";
    let Some(binary) = tools::require(test, Tool::WKG) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    // The server tells wkg, through its discovery document, to send OCI
    // traffic to 127.0.0.1:<port>; wkg is configured with the registry
    // name `localhost:<port>` only. The bearer token is given for the
    // 127.0.0.1 host, so publishing works only if wkg followed discovery.
    let addr = free_addr();
    let oci_host = addr.to_string();
    let server = TestServer::start_full(
        &scratch.path().join("data"),
        &["acme"],
        Config::default(),
        OciConfig::default(),
        ServerOptions {
            public_url: Some(format!("http://{oci_host}")),
            ..ServerOptions::default()
        },
        Some(addr),
    );
    let http = Http::new(&server.url);
    let discovery = http
        .send(
            Method::GET,
            "/.well-known/wasm-pkg/registry.json",
            &[],
            Vec::new(),
        )
        .json();
    assert_eq!(discovery["oci"]["registry"], oci_host.as_str());
    let registry_name = format!("localhost:{}", addr.port());
    let wkg = Wkg::new(binary, &scratch.path().join("wkg"), &registry_name);
    let auth = bearer_env(&oci_host, &server.admin_token);

    let v123_dir = scratch.path().join("greeter-1.2.3");
    let v123 = wkg.build(&v123_dir, "greeter", "1.2.3", &["hello"]);
    let file = "acme:greeter@1.2.3.wasm";

    // Without a token the push is refused, and nothing is released.
    let refused = wkg.run(&v123_dir, &["publish", file], &[]);
    assert!(!refused.status.success(), "anonymous publish refused");
    assert!(
        text(&refused).contains("needs a token"),
        "the refusal says why: {}",
        text(&refused)
    );
    assert_eq!(warg_release(&server, "acme:greeter", "1.2.3"), None);

    let published = succeeded("wkg publish", wkg.run(&v123_dir, &["publish", file], &auth));
    assert!(
        published.contains("Published acme:greeter@1.2.3"),
        "{published}"
    );

    // One history: the Warg face has the release with the same digest as
    // the OCI layer, and the reference client downloads and verifies it.
    let (pushed, _, _) = manifest(&http, "acme/greeter", "1.2.3");
    let layer = pushed["layers"][0]["digest"]
        .as_str()
        .expect("layer digest");
    assert_eq!(layer, sha256(&v123));
    assert_eq!(
        pushed["annotations"]["org.opencontainers.image.description"],
        "Test greeter interface"
    );
    assert_eq!(
        warg_release(&server, "acme:greeter", "1.2.3").map(|h| h.to_string()),
        Some(sha256(&v123))
    );
    let reader = client(&server.url, &scratch.path().join("warg-reader"), None);
    let name = PackageName::new("acme:greeter").expect("name");
    assert_eq!(block_on(download_exact(&reader, &name, "1.2.3")), v123);

    // Get: newest as WIT (the default), pinned as WIT and as Wasm, newest
    // as Wasm; the Wasm bytes are the published bytes.
    let out = scratch.path().join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    succeeded(
        "wkg get newest",
        wkg.run(&out, &["get", "acme:greeter", "-o", "./newest/"], &[]),
    );
    let newest_wit = std::fs::read_to_string(out.join("newest/acme_greeter@1.2.3.wit"))
        .expect("newest WIT written");
    assert!(newest_wit.contains("hello: func"), "{newest_wit}");
    succeeded(
        "wkg get pinned wit",
        wkg.run(
            &out,
            &[
                "get",
                "--format",
                "wit",
                "acme:greeter@1.2.3",
                "-o",
                "./pinned.wit",
            ],
            &[],
        ),
    );
    let pinned_wit = std::fs::read_to_string(out.join("pinned.wit")).expect("pinned WIT");
    assert!(
        pinned_wit.contains("package acme:greeter@1.2.3"),
        "{pinned_wit}"
    );
    for (reference, file) in [
        ("acme:greeter@1.2.3", "./pinned.wasm"),
        ("acme:greeter", "./newest.wasm"),
    ] {
        succeeded(
            "wkg get wasm",
            wkg.run(
                &out,
                &["get", "--format", "wasm", reference, "-o", file],
                &[],
            ),
        );
        assert_eq!(
            std::fs::read(out.join(file)).expect("wasm"),
            v123,
            "{reference}"
        );
    }

    // Fetch a world that imports the package: the lock records the layer
    // digest.
    let app = scratch.path().join("app");
    std::fs::create_dir_all(app.join("wit")).expect("app wit");
    std::fs::write(
        app.join("wit/world.wit"),
        "package acme:app@0.1.0;\n\nworld app {\n  import acme:greeter/greet@1.2.3;\n}\n",
    )
    .expect("app world");
    succeeded("wkg fetch", wkg.run(&app, &["fetch"], &[]));
    assert!(app
        .join("wit/deps/acme-greeter-1.2.3/package.wit")
        .is_file());
    let lock = std::fs::read_to_string(app.join("wkg.lock")).expect("wkg.lock");
    assert!(
        lock.contains(&format!("digest = \"{layer}\"")),
        "the lock digest is the layer digest {layer}:\n{lock}"
    );

    // The semver gate: 1.3.0 without `hello` is refused by wkg; with a new
    // function added it is compatible, published and the newest.
    let broken_dir = scratch.path().join("greeter-1.3.0-broken");
    wkg.build(&broken_dir, "greeter", "1.3.0", &["goodbye"]);
    let refused = wkg.run(&broken_dir, &["publish", "acme:greeter@1.3.0.wasm"], &auth);
    assert!(!refused.status.success(), "incompatible version refused");
    assert!(
        text(&refused).contains("not semver-compatible"),
        "{}",
        text(&refused)
    );
    assert_eq!(warg_release(&server, "acme:greeter", "1.3.0"), None);
    let v130_dir = scratch.path().join("greeter-1.3.0");
    let v130 = wkg.build(&v130_dir, "greeter", "1.3.0", &["hello", "goodbye"]);
    succeeded(
        "wkg publish 1.3.0",
        wkg.run(&v130_dir, &["publish", "acme:greeter@1.3.0.wasm"], &auth),
    );
    succeeded(
        "wkg get newest after 1.3.0",
        wkg.run(
            &out,
            &[
                "get",
                "--format",
                "wasm",
                "acme:greeter",
                "-o",
                "./v130.wasm",
            ],
            &[],
        ),
    );
    assert_eq!(std::fs::read(out.join("v130.wasm")).expect("wasm"), v130);
    server.stop();
}

#[test]
fn a_warg_client_release_is_pulled_by_wkg_and_copied_by_skopeo() {
    let test = "a_warg_client_release_is_pulled_by_wkg_and_copied_by_skopeo";
    let (Some(wkg_binary), Some(skopeo)) = (
        tools::require(test, Tool::WKG),
        tools::require(test, Tool::SKOPEO),
    ) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let server = TestServer::start(&scratch.path().join("data"), &["acme"]);
    let http = Http::new(&server.url);
    let host = server.addr.to_string();
    let wkg = Wkg::new(wkg_binary, &scratch.path().join("wkg"), &host);
    let bytes = wkg.build(&scratch.path().join("hello"), "hello", "1.0.0", &["hi"]);

    // Published through the Warg face with the reference client.
    let owner = client(
        &server.url,
        &scratch.path().join("owner"),
        Some(&server.admin_token),
    );
    let key = reference_key(0);
    let name = PackageName::new("acme:hello").expect("name");
    block_on(async {
        publish(&owner, &key, &name, vec![PublishEntry::Init])
            .await
            .expect("init");
        let entry = release(&owner, "1.0.0", &bytes).await;
        publish(&owner, &key, &name, vec![entry])
            .await
            .expect("release");
    });

    // wkg pulls it.
    succeeded(
        "wkg get",
        wkg.run(
            scratch.path(),
            &[
                "get",
                "--format",
                "wasm",
                "acme:hello@1.0.0",
                "-o",
                "./got.wasm",
            ],
            &[],
        ),
    );
    assert_eq!(
        std::fs::read(scratch.path().join("got.wasm")).expect("got"),
        bytes
    );

    // skopeo: inspect, list tags, copy to a layout and back.
    let policy = scratch.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({"default": [{"type": "insecureAcceptAnything"}]}).to_string(),
    )
    .expect("policy");
    let skopeo_run = |args: &[&str]| {
        Command::new(&skopeo)
            .arg("--policy")
            .arg(&policy)
            .args(args)
            .env("HOME", scratch.path())
            .current_dir(scratch.path())
            .output()
            .expect("run skopeo")
    };
    let source = format!("docker://{host}/acme/hello:1.0.0");
    let (served, digest, served_bytes) = manifest(&http, "acme/hello", "1.0.0");
    assert_eq!(served["layers"][0]["digest"], sha256(&bytes));
    // The manifest Cairn built carries the metadata wkg wrote into the
    // component, as wkg's own publish would.
    let annotations = &served["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.description"],
        "Test greeter interface"
    );
    assert_eq!(
        annotations["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    assert_eq!(
        annotations["org.opencontainers.image.url"],
        "https://acme.test/greeter"
    );
    assert_eq!(annotations["org.opencontainers.image.version"], "1.0.0");
    let raw = skopeo_run(&["inspect", "--raw", "--tls-verify=false", &source]);
    assert!(raw.status.success(), "inspect: {}", text(&raw));
    assert_eq!(raw.stdout, served_bytes, "inspect --raw gives the bytes");
    let tags = succeeded(
        "list-tags",
        skopeo_run(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{host}/acme/hello"),
        ]),
    );
    let tags: Value = serde_json::from_str(&tags).expect("list-tags JSON");
    assert_eq!(tags["Tags"], json!(["1.0.0"]));
    let layout = scratch.path().join("layout");
    let layout_ref = format!("oci:{}:1.0.0", layout.display());
    succeeded(
        "copy to a layout",
        skopeo_run(&[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &source,
            &layout_ref,
        ]),
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("layout index"))
            .expect("index JSON");
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let layer_file = layout
        .join("blobs/sha256")
        .join(&sha256(&bytes)["sha256:".len()..]);
    assert_eq!(std::fs::read(layer_file).expect("layer in layout"), bytes);

    // Copied back without credentials: refused, nothing stored.
    let refused = skopeo_run(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &layout_ref,
        &format!("docker://{host}/acme/copy:1.0.0"),
    ]);
    assert!(!refused.status.success(), "anonymous copy refused");
    assert_eq!(warg_release(&server, "acme:copy", "1.0.0"), None);
    // With credentials: a release of `acme:copy` with the same manifest
    // digest, which the reference client verifies and downloads.
    succeeded(
        "copy back",
        skopeo_run(&[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("admin:{}", server.admin_token),
            &layout_ref,
            &format!("docker://{host}/acme/copy:1.0.0"),
        ]),
    );
    let (_, copied_digest, _) = manifest(&http, "acme/copy", "1.0.0");
    assert_eq!(copied_digest, digest);
    let reader = client(&server.url, &scratch.path().join("reader"), None);
    let copy = PackageName::new("acme:copy").expect("name");
    assert_eq!(block_on(download_exact(&reader, &copy, "1.0.0")), bytes);
    server.stop();
}

/// The oras-py side of [`oras_pushes_pulls_and_attaches_a_signature`]:
/// prints one JSON object with what happened.
const ORAS_SCRIPT: &str = r#"
import hashlib, json, sys
import requests
import oras.client, oras.oci
host, token = sys.argv[1], sys.argv[2]
out = {}
wasm = open("hello.wasm", "rb").read()
layer = "sha256:" + hashlib.sha256(wasm).hexdigest()
json.dump({"created": "2026-11-25T00:00:00Z", "author": None, "architecture": "wasm",
           "os": "wasip1", "layerDigests": [layer]}, open("config.json", "w"))
target = f"{host}/acme/oras:0.1.0"
anonymous = oras.client.OrasClient(hostname=host, insecure=True)
try:
    anonymous.push(target=target, files=["hello.wasm:application/wasm"],
                   manifest_config="config.json:application/vnd.wasm.config.v0+json")
    out["anonymous"] = "pushed"
except Exception as e:
    out["anonymous"] = str(e)
c = oras.client.OrasClient(hostname=host, insecure=True)
c.login(username="admin", password=token, hostname=host)
r = c.push(target=target, files=["hello.wasm:application/wasm"],
           manifest_config="config.json:application/vnd.wasm.config.v0+json")
out["push"] = r.status_code
out["digest"] = r.headers.get("Docker-Content-Digest")
files = c.pull(target=target, outdir="pulled")
out["pulled"] = open(files[0], "rb").read() == wasm
raw = requests.get(f"http://{host}/v2/acme/oras/manifests/0.1.0",
                   headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
subject = oras.oci.Subject(mediaType="application/vnd.oci.image.manifest.v1+json",
                           digest=out["digest"], size=len(raw.content))
open("signature.json", "w").write('{"signed": "acme/oras:0.1.0"}')
r = c.push(target=f"{host}/acme/oras:sha256-signature",
           files=["signature.json:application/vnd.example.signature+json"],
           manifest_config="signature.json:application/vnd.example.signature.config+json",
           subject=subject)
out["signature"] = r.status_code
out["signature_digest"] = r.headers.get("Docker-Content-Digest")
out["subject_header"] = r.headers.get("OCI-Subject")
print(json.dumps(out))
"#;

#[test]
fn oras_pushes_pulls_and_attaches_a_signature() {
    let test = "oras_pushes_pulls_and_attaches_a_signature";
    let Some(python) = tools::require(test, Tool::ORAS_PY) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let server = TestServer::start(&scratch.path().join("data"), &["acme"]);
    let http = Http::new(&server.url);
    let host = server.addr.to_string();
    let wasm = b"\0asm\x01\0\0\0\0\x0a\x09oras-test".to_vec();
    std::fs::write(scratch.path().join("hello.wasm"), &wasm).expect("wasm");
    std::fs::write(scratch.path().join("push.py"), ORAS_SCRIPT).expect("script");
    let output = Command::new(&python)
        .args(["push.py", &host, &server.admin_token])
        .current_dir(scratch.path())
        .env("HOME", scratch.path())
        .output()
        .expect("run oras-py");
    let result: Value = serde_json::from_str(
        text(&output)
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("oras-py printed no result:\n{}", text(&output))),
    )
    .expect("result JSON");
    assert!(output.status.success(), "oras-py: {}", text(&output));
    let anonymous = result["anonymous"].as_str().unwrap_or_default();
    assert_ne!(anonymous, "pushed", "an anonymous push is refused");
    assert_eq!(result["push"], 201, "{result}");
    assert_eq!(
        result["pulled"], true,
        "the pulled layer is the pushed Wasm"
    );
    assert_eq!(result["signature"], 201, "{result}");
    let digest = result["digest"].as_str().expect("manifest digest");
    assert_eq!(result["subject_header"], digest);

    // The Wasm push is a release on the Warg face.
    assert_eq!(
        warg_release(&server, "acme:oras", "0.1.0").map(|h| h.to_string()),
        Some(sha256(&wasm))
    );
    // The signature is listed among the release's referrers, and only
    // under its artifact type.
    let referrers = http
        .send(
            Method::GET,
            &format!("/v2/acme/oras/referrers/{digest}"),
            &[],
            Vec::new(),
        )
        .json();
    // Beside it, the release's offline proof, which the registry attaches.
    let listed: Vec<&Value> = referrers["manifests"]
        .as_array()
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    assert_eq!(listed.len(), 2, "{referrers}");
    let signature = listed
        .iter()
        .find(|m| m["digest"] == result["signature_digest"])
        .unwrap_or_else(|| panic!("no signature among {referrers}"));
    assert_eq!(
        signature["artifactType"],
        "application/vnd.example.signature.config+json"
    );
    assert!(listed
        .iter()
        .any(|m| m["artifactType"] == "application/vnd.cairn.tlog-proof.v1"));
    let filtered = http
        .send(
            Method::GET,
            &format!("/v2/acme/oras/referrers/{digest}?artifactType=application/x-other"),
            &[],
            Vec::new(),
        )
        .json();
    assert_eq!(filtered["manifests"], json!([]));
    // And recorded in the package's attestation log, after which the
    // reference client still verifies the registry and downloads the
    // release.
    let log = http
        .send(Method::GET, "/v1/attestations/acme:oras", &[], Vec::new())
        .json();
    assert_eq!(log["records"][0]["referrer"], result["signature_digest"]);
    assert_eq!(log["records"][0]["subject"], digest);
    let reader = client(&server.url, &scratch.path().join("reader"), None);
    let name = PackageName::new("acme:oras").expect("name");
    assert_eq!(block_on(download_exact(&reader, &name, "0.1.0")), wasm);
    server.stop();
}
