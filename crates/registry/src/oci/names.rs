//! Repository names, tags and references, and how packages map to
//! repositories.

use cairn_protocol::{PackageName, Version};

use super::digest::{Digest, DigestError};
use super::error::{ErrorCode, OciError};

/// Checks a repository name against the distribution spec's grammar.
pub fn check_repository(name: &str) -> Result<(), OciError> {
    let bad = |why: &str| {
        Err(OciError::new(
            ErrorCode::NameInvalid,
            format!("invalid repository name `{name}`: {why}"),
        ))
    };
    if name.is_empty() || name.len() > 255 {
        return bad("it must be 1 to 255 characters");
    }
    for component in name.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return bad("each path component starts and ends with [a-z0-9]");
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if alnum(b) {
                i += 1;
                continue;
            }
            // Separators: `.`, `_`, `__`, or a run of `-`.
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return bad("components are [a-z0-9] separated by `.`, `_`, `__` or `-`");
            }
        }
    }
    Ok(())
}

/// Checks a tag against the distribution spec's grammar.
pub fn check_tag(tag: &str) -> Result<(), OciError> {
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(OciError::new(
            ErrorCode::ManifestInvalid,
            format!("invalid tag `{tag}`: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"),
        ))
    }
}

/// The package a repository shows, if it is of the form `<ns>/<name>`.
pub fn package_of(repository: &str) -> Option<PackageName> {
    let (ns, name) = repository.split_once('/')?;
    PackageName::new(format!("{ns}:{name}")).ok()
}

/// The repository of a package.
pub fn repository_of(name: &PackageName) -> String {
    format!("{}/{}", name.namespace(), name.name())
}

/// In a package's repository, version tags are its releases: a manifest
/// that is not a Wasm release may not take one (wkg would read it as a
/// version it cannot fetch).
pub(crate) fn refuse_version_tag(repository: &str, tag: &str) -> Result<(), OciError> {
    if package_of(repository).is_some() && tag.parse::<Version>().is_ok() {
        return Err(OciError::new(
            ErrorCode::ManifestInvalid,
            format!(
                "tag `{tag}` is a version, and versions of `{repository}` are Wasm releases \
                 (one `application/wasm` layer, config `application/vnd.wasm.config.v0+json`); \
                 push other artifacts by digest or to a tag that is not a version"
            ),
        ));
    }
    Ok(())
}

/// A manifest reference: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl Reference {
    /// Parses a reference from a URL path segment.
    pub fn parse(text: &str) -> Result<Reference, OciError> {
        if text.contains(':') {
            text.parse()
                .map(Reference::Digest)
                .map_err(|e: DigestError| OciError::new(ErrorCode::DigestInvalid, e.to_string()))
        } else {
            check_tag(text)?;
            Ok(Reference::Tag(text.to_owned()))
        }
    }

    /// The tag, if it is one.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Reference::Tag(tag) => Some(tag),
            Reference::Digest(_) => None,
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(tag) => f.write_str(tag),
            Reference::Digest(digest) => write!(f, "{digest}"),
        }
    }
}
