//! OCI decoders: manifests and indexes as pushed (with any `Content-Type`),
//! and the names, tags, references and digests in OCI paths.

use cairn_protocol::Timestamp;
use cairn_registry::oci::{
    check_repository, check_tag, package_of, repository_of, rfc3339, Digest, Kind, Manifest,
    Reference, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, IMAGE_INDEX, IMAGE_MANIFEST,
};

use crate::input::Input;

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some(IMAGE_MANIFEST),
    Some(IMAGE_INDEX),
    Some(DOCKER_MANIFEST),
    Some(DOCKER_MANIFEST_LIST),
    Some("application/json"),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
    Some(""),
];

/// `oci_manifest`: the first byte picks the `Content-Type` the manifest
/// is pushed with, the rest is the body. What parses is a consistent
/// manifest of its kind and parses the same under its own media type.
pub fn manifest(data: &[u8]) {
    let mut input = Input::new(data);
    let content_type = *input.pick(&CONTENT_TYPES);
    let timestamp = Timestamp::new(input.u64() as i64, i32::from(input.u16()) * 20_000);
    let body = input.rest();
    match Manifest::parse(content_type, body) {
        Ok(manifest) => check_manifest(&manifest, body),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let text = rfc3339(&timestamp);
    assert!(text.ends_with('Z'), "{text}");
    names(body);
}

fn check_manifest(manifest: &Manifest, body: &[u8]) {
    let descriptors = manifest
        .config
        .iter()
        .chain(&manifest.layers)
        .chain(&manifest.manifests)
        .chain(&manifest.subject);
    for descriptor in descriptors {
        assert!(!descriptor.media_type.is_empty());
        let printed = descriptor.digest.to_string();
        let again: Digest = printed.parse().expect("a digest prints as a digest");
        assert_eq!(again, descriptor.digest);
        let _ = descriptor.digest.to_hash();
    }
    match manifest.kind {
        Kind::Image => {
            assert!(manifest.config.is_some(), "an image manifest has a config");
            assert!(manifest.manifests.is_empty());
        }
        Kind::Index => {
            assert!(manifest.config.is_none(), "an index has no config");
            assert!(manifest.layers.is_empty());
        }
    }
    let wasm_layer = manifest.wasm_layer();
    if wasm_layer.is_ok() {
        assert!(manifest.is_wasm(), "a Wasm layer makes a Wasm artifact");
    }
    let _ = manifest.effective_artifact_type();
    let again = Manifest::parse(Some(&manifest.media_type), body)
        .expect("a manifest parses under its own media type");
    assert_eq!(&again, manifest);
}

fn names(body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    if let Ok(reference) = Reference::parse(text) {
        let again = Reference::parse(&reference.to_string()).expect("a reference prints back");
        assert_eq!(again, reference);
        let _ = reference.tag();
    }
    let _ = check_repository(text).map_err(|e| e.to_string());
    let _ = check_tag(text);
    if let Some(name) = package_of(text) {
        let repository = repository_of(&name);
        assert_eq!(
            repository, text,
            "a package's repository is the one it came from"
        );
        if repository.len() <= 255 {
            check_repository(&repository).expect("a package's repository is a valid name");
        }
    }
    if let Ok(digest) = text.parse::<Digest>() {
        assert_eq!(digest.to_string(), text, "a digest has one text form");
        if let Some(hash) = digest.to_hash() {
            assert_eq!(Digest::from(&hash), digest);
        }
    }
}
