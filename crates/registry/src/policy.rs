//! Publish policies per namespace: what a release must carry (an SPDX
//! license, a source URL) and the semver gate (a new version's WIT must
//! keep what the previous version of its series promised, unless the
//! break is intended). Both faces ask [`check_release`] before a release
//! record is submitted, so a release is refused the same way whichever
//! client made it. The decision is pure: bytes and state in, a verdict
//! out; the registry reads the bytes.

use std::collections::BTreeSet;

use cairn_index::compat;
use cairn_index::metadata;
use cairn_protocol::{PackageName, Version};
use serde::{Deserialize, Serialize};

/// What a namespace asks of every release published into it. The default
/// asks nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PublishPolicy {
    /// Every release must name its license as an SPDX expression.
    #[serde(default)]
    pub require_license: bool,
    /// Every release must name its source (a URL).
    #[serde(default)]
    pub require_source: bool,
    /// A new version whose WIT is not semver-compatible with the previous
    /// version of its series is refused, unless marked as intended.
    #[serde(default)]
    pub semver_gate: bool,
    /// Releases (`namespace:name@version`) the operator allows to break
    /// their series.
    #[serde(default)]
    pub allowed_breaks: BTreeSet<String>,
}

impl PublishPolicy {
    /// A tag of this policy's content (the HTTP `ETag` of its JSON, given
    /// back in `If-Match` to change it only if no edit came in between):
    /// a digest of its JSON, hex.
    pub fn tag(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&json);
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether the policy asks anything of a release.
    pub fn is_open(&self) -> bool {
        !self.require_license && !self.require_source && !self.semver_gate
    }

    /// Whether `name@version` may break its series.
    pub fn break_allowed(&self, name: &PackageName, version: &Version) -> bool {
        self.allowed_breaks.contains(&format!("{name}@{version}"))
    }
}

/// Why a release is refused by its namespace's policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    /// No license, or one that is not an SPDX expression.
    #[error(
        "namespace `{namespace}` requires an SPDX license on every release, and {name}@{version} \
         {problem}: add `licenses = \"<SPDX expression>\"` (e.g. \"Apache-2.0\") to the \
         `[metadata]` table of wkg.toml and build again, or run `wasm-tools metadata add \
         --licenses <SPDX>` on the component"
    )]
    License {
        /// The namespace.
        namespace: String,
        /// The package.
        name: PackageName,
        /// The version.
        version: Version,
        /// What is wrong, in words.
        problem: String,
    },
    /// No source URL.
    #[error(
        "namespace `{namespace}` requires a source URL on every release, and {name}@{version} \
         has no `source` metadata: add `source = \"https://...\"` (the repository) to the \
         `[metadata]` table of wkg.toml and build again, or run `wasm-tools metadata add \
         --source <URL>` on the component"
    )]
    Source {
        /// The namespace.
        namespace: String,
        /// The package.
        name: PackageName,
        /// The version.
        version: Version,
    },
    /// The WIT breaks the previous version of the series.
    #[error(
        "{name}@{version} is not semver-compatible with {name}@{previous}: {findings}. Publish \
         it as a new major version ({next}), or mark the break as intended"
    )]
    Semver {
        /// The namespace.
        namespace: String,
        /// The package.
        name: PackageName,
        /// The version refused.
        version: Version,
        /// The version it breaks.
        previous: Version,
        /// The breaks, in words.
        findings: String,
        /// The version that would start a new series.
        next: Version,
    },
    /// The WIT cannot be compared.
    #[error("{name}@{version} cannot be checked against {name}@{previous}: {problem}")]
    Uncomparable {
        /// The package.
        name: PackageName,
        /// The version refused.
        version: Version,
        /// The previous version.
        previous: Version,
        /// What went wrong.
        problem: String,
    },
    /// The release is too large to be read for the check.
    #[error(
        "{name}@{version} is {size} bytes; namespace `{namespace}`'s publish policy reads at most \
         {limit} bytes of a release"
    )]
    TooLarge {
        /// The namespace.
        namespace: String,
        /// The package.
        name: PackageName,
        /// The version.
        version: Version,
        /// Its size.
        size: u64,
        /// The most the check reads.
        limit: u64,
    },
}

impl PolicyRefusal {
    /// For a release refused by the semver gate: its namespace and
    /// `ns:name@version`, which the break can be allowed for.
    pub fn intended_break(&self) -> Option<(String, String)> {
        match self {
            PolicyRefusal::Semver {
                namespace,
                name,
                version,
                ..
            } => Some((namespace.clone(), format!("{name}@{version}"))),
            _ => None,
        }
    }
}

/// The OCI manifest annotation that marks an intended break.
pub const BREAK_ANNOTATION: &str = "dev.cairn.semver-break";

/// The most bytes of a release the policy reads (as the indexer).
pub const POLICY_READ_LIMIT: u64 = 64 << 20;

/// What is being released.
pub struct Candidate<'a> {
    /// The package.
    pub name: &'a PackageName,
    /// The version.
    pub version: &'a Version,
    /// Its content.
    pub bytes: &'a [u8],
    /// The publisher marked it as an intended break.
    pub marked_break: bool,
}

/// The version `version` is checked against: the greatest release below
/// it in the same series (same major; same minor below 1.0; same patch
/// below 0.1), if any.
pub fn previous_in_series<'a>(
    version: &Version,
    released: impl IntoIterator<Item = &'a Version>,
) -> Option<&'a Version> {
    released
        .into_iter()
        .filter(|v| *v < version && same_series(v, version))
        .max()
}

fn same_series(a: &Version, b: &Version) -> bool {
    if a.major != b.major {
        return false;
    }
    if a.major > 0 {
        return true;
    }
    if a.minor != b.minor {
        return false;
    }
    a.minor > 0 || a.patch == b.patch
}

/// The version that would start a new series after `version`.
fn next_series(version: &Version) -> Version {
    if version.major > 0 {
        Version::new(version.major + 1, 0, 0)
    } else if version.minor > 0 {
        Version::new(0, version.minor + 1, 0)
    } else {
        Version::new(0, 0, version.patch + 1)
    }
}

/// Decides whether `candidate` may be released under `policy`;
/// `previous` is the previous version of its series and its bytes.
pub fn check_release(
    policy: &PublishPolicy,
    candidate: &Candidate<'_>,
    previous: Option<(&Version, &[u8])>,
) -> Result<(), Box<PolicyRefusal>> {
    let namespace = candidate.name.namespace().to_owned();
    if policy.require_license || policy.require_source {
        // The decoders are not the validator: a panic in one is this
        // release's problem (no metadata read), never the server's.
        let info = std::panic::catch_unwind(|| metadata::extract(candidate.bytes))
            .ok()
            .and_then(Result::ok);
        if policy.require_license {
            let license = info.as_ref().and_then(|i| i.license());
            let problem = match license {
                None => Some("has no `licenses` metadata".to_owned()),
                Some(text) => spdx::Expression::parse(text)
                    .err()
                    .map(|e| format!("names `{text}`, which is not an SPDX expression ({e})")),
            };
            if let Some(problem) = problem {
                return Err(Box::new(PolicyRefusal::License {
                    namespace,
                    name: candidate.name.clone(),
                    version: candidate.version.clone(),
                    problem,
                }));
            }
        }
        if policy.require_source
            && info
                .as_ref()
                .and_then(|i| i.source_url())
                .is_none_or(|s| s.trim().is_empty())
        {
            return Err(Box::new(PolicyRefusal::Source {
                namespace,
                name: candidate.name.clone(),
                version: candidate.version.clone(),
            }));
        }
    }
    if !policy.semver_gate
        || candidate.marked_break
        || policy.break_allowed(candidate.name, candidate.version)
    {
        return Ok(());
    }
    let Some((previous, earlier)) = previous else {
        return Ok(());
    };
    let uncomparable = |problem: String| PolicyRefusal::Uncomparable {
        name: candidate.name.clone(),
        version: candidate.version.clone(),
        previous: previous.clone(),
        problem,
    };
    let found = std::panic::catch_unwind(|| compat::breaks(earlier, candidate.bytes))
        .map_err(|_| uncomparable("the WIT decoder failed on it".into()))?
        .map_err(|e| uncomparable(e.to_string()))?;
    if found.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 5;
    let mut findings: Vec<String> = found.iter().take(SHOWN).map(ToString::to_string).collect();
    if found.len() > SHOWN {
        findings.push(format!("and {} more", found.len() - SHOWN));
    }
    Err(Box::new(PolicyRefusal::Semver {
        namespace,
        name: candidate.name.clone(),
        version: candidate.version.clone(),
        previous: previous.clone(),
        findings: findings.join("; "),
        next: next_series(previous),
    }))
}

/// Checks that `release` is `namespace:name@version` of `namespace`.
pub fn check_allowed_break(namespace: &str, release: &str) -> Result<(), String> {
    let (package, version) = release.rsplit_once('@').ok_or_else(|| {
        format!("`{release}` is not a release: write `{namespace}:<name>@<version>`")
    })?;
    let name: PackageName = package
        .parse()
        .map_err(|e| format!("`{release}`: `{package}` is not a package name: {e}"))?;
    if name.namespace() != namespace {
        return Err(format!(
            "`{release}` is not in namespace `{namespace}`: a policy allows breaks of its own \
             packages only"
        ));
    }
    version
        .parse::<Version>()
        .map_err(|e| format!("`{release}`: `{version}` is not a semantic version: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn the_previous_version_is_the_greatest_below_in_the_series() {
        let released = [v("1.0.0"), v("1.2.0"), v("1.3.0"), v("2.0.0"), v("0.3.1")];
        assert_eq!(
            previous_in_series(&v("1.2.5"), &released),
            Some(&v("1.2.0"))
        );
        assert_eq!(
            previous_in_series(&v("1.4.0"), &released),
            Some(&v("1.3.0"))
        );
        assert_eq!(previous_in_series(&v("3.0.0"), &released), None);
        assert_eq!(previous_in_series(&v("2.0.0-rc.1"), &released), None);
        assert_eq!(
            previous_in_series(&v("0.3.2"), &released),
            Some(&v("0.3.1"))
        );
        assert_eq!(previous_in_series(&v("0.4.0"), &released), None);
        assert_eq!(next_series(&v("0.3.1")), v("0.4.0"));
        assert_eq!(next_series(&v("1.3.0")), v("2.0.0"));
    }

    #[test]
    fn an_open_policy_asks_nothing() {
        let name: PackageName = "acme:tool".parse().unwrap();
        let candidate = Candidate {
            name: &name,
            version: &v("1.0.0"),
            bytes: b"\0asm\x01\0\0\0",
            marked_break: false,
        };
        assert!(PublishPolicy::default().is_open());
        assert!(check_release(&PublishPolicy::default(), &candidate, None).is_ok());
        let strict = PublishPolicy {
            require_license: true,
            ..PublishPolicy::default()
        };
        let refusal = check_release(&strict, &candidate, None).unwrap_err();
        assert!(refusal.to_string().contains("wkg.toml"), "{refusal}");
    }
}
