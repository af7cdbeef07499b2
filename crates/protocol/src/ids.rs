//! Package names, log ids and record ids, computed exactly as Warg v1 does.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::encoding::PrefixEncoder;
use crate::Hash;

/// The hash algorithm a log links its records with. Warg v1 defines one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    /// SHA-256, written `sha256`.
    Sha256,
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256")
    }
}

/// A hash algorithm name other than `sha256`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("unsupported hash algorithm `{0}` (only `sha256` is supported)")]
pub struct UnsupportedHashAlgorithm(pub String);

impl FromStr for HashAlgorithm {
    type Err = UnsupportedHashAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(HashAlgorithm::Sha256),
            other => Err(UnsupportedHashAlgorithm(other.to_owned())),
        }
    }
}

/// Which rule a package name or namespace broke.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Longer than [`PackageName::MAX_LEN`].
    #[error(
        "a package name is at most {max} bytes (`namespace:name` must fit an OCI repository \
         name); this one has {0}",
        max = PackageName::MAX_LEN
    )]
    TooLong(usize),
    /// No `:` between namespace and name.
    #[error("`{0}` has no `:`; package names are `namespace:name`")]
    MissingColon(String),
    /// More than one `:`.
    #[error("`{0}` has more than one `:`; package names are `namespace:name`")]
    ExtraColon(String),
    /// A part was empty.
    #[error("the {part} of `{name}` is empty")]
    Empty {
        /// `namespace` or `name`.
        part: &'static str,
        /// The whole text.
        name: String,
    },
    /// A part starts, ends or doubles a `-`.
    #[error("the {part} `{text}` has an empty word: `-` may not start, end or repeat")]
    EmptyWord {
        /// `namespace` or `name`.
        part: &'static str,
        /// The offending part.
        text: String,
    },
    /// A word starts with something other than a letter.
    #[error("the {part} `{text}` has a word starting with `{found}`; each `-`-separated word must start with a letter a-z")]
    WordStart {
        /// `namespace` or `name`.
        part: &'static str,
        /// The offending part.
        text: String,
        /// The first character of the word.
        found: char,
    },
    /// An uppercase letter.
    #[error("the {part} `{text}` contains uppercase `{found}`; names are lowercase kebab-case")]
    Uppercase {
        /// `namespace` or `name`.
        part: &'static str,
        /// The offending part.
        text: String,
        /// The uppercase letter.
        found: char,
    },
    /// Any character other than a-z, 0-9 and `-`.
    #[error("the {part} `{text}` contains `{found}`; only a-z, 0-9 and `-` are allowed")]
    InvalidChar {
        /// `namespace` or `name`.
        part: &'static str,
        /// The offending part.
        text: String,
        /// The offending character.
        found: char,
    },
}

/// Checks one lowercase kebab-case part (`namespace` or `name`): words of
/// a-z and 0-9 separated by single `-`, each word starting with a letter.
/// This is the component model's kebab-case restricted to lowercase, which is
/// what the reference registry enforces.
pub fn check_kebab(part: &'static str, text: &str) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty {
            part,
            name: text.to_owned(),
        });
    }
    for word in text.split('-') {
        let Some(first) = word.chars().next() else {
            return Err(NameError::EmptyWord {
                part,
                text: text.to_owned(),
            });
        };
        for c in word.chars() {
            if c.is_ascii_uppercase() {
                return Err(NameError::Uppercase {
                    part,
                    text: text.to_owned(),
                    found: c,
                });
            }
            if !(c.is_ascii_lowercase() || c.is_ascii_digit()) {
                return Err(NameError::InvalidChar {
                    part,
                    text: text.to_owned(),
                    found: c,
                });
            }
        }
        if !first.is_ascii_lowercase() {
            return Err(NameError::WordStart {
                part,
                text: text.to_owned(),
                found: first,
            });
        }
    }
    Ok(())
}

/// A package name `namespace:name`, both parts lowercase kebab-case.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageName {
    text: String,
    colon: usize,
}

impl PackageName {
    /// The longest package name, in bytes: the OCI repository of
    /// `namespace:name` is `namespace/name`, and repository names stop at
    /// 255 characters. (Warg sets no bound; Cairn refuses longer names.)
    pub const MAX_LEN: usize = 255;

    /// Validates and builds a package name.
    pub fn new(text: impl Into<String>) -> Result<Self, NameError> {
        let text = text.into();
        if text.len() > PackageName::MAX_LEN {
            return Err(NameError::TooLong(text.len()));
        }
        let colon = text
            .find(':')
            .ok_or_else(|| NameError::MissingColon(text.clone()))?;
        if text[colon + 1..].contains(':') {
            return Err(NameError::ExtraColon(text));
        }
        let (namespace, name) = (&text[..colon], &text[colon + 1..]);
        if namespace.is_empty() {
            return Err(NameError::Empty {
                part: "namespace",
                name: text,
            });
        }
        if name.is_empty() {
            return Err(NameError::Empty {
                part: "name",
                name: text,
            });
        }
        check_kebab("namespace", namespace)?;
        check_kebab("name", name)?;
        Ok(PackageName { text, colon })
    }

    /// The namespace part.
    pub fn namespace(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The name part.
    pub fn name(&self) -> &str {
        &self.text[self.colon + 1..]
    }

    /// The whole `namespace:name`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for PackageName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PackageName::new(s)
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackageName({})", self.text)
    }
}

/// Checks a namespace on its own (lowercase kebab-case).
pub fn validate_namespace(namespace: &str) -> Result<(), NameError> {
    check_kebab("namespace", namespace)
}

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Hash);

        impl $name {
            /// The underlying digest.
            pub fn digest(&self) -> &Hash {
                &self.0
            }
        }

        impl From<Hash> for $name {
            fn from(hash: Hash) -> Self {
                $name(hash)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = crate::HashParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

hash_id!(
    /// The id of a log: the operator log, or one package's log.
    LogId
);
hash_id!(
    /// The id of a record: a hash of its exact content bytes.
    RecordId
);

impl LogId {
    /// The operator log's id.
    pub fn operator() -> Self {
        LogId(Hash::of(b"WARG-OPERATOR-LOG-ID-V0"))
    }

    /// The id of a package's log.
    pub fn package(name: &PackageName) -> Self {
        let mut bytes = b"WARG-PACKAGE-LOG-ID-V0:".to_vec();
        bytes.extend(
            PrefixEncoder::new("WARG-PACKAGE-ID-V0")
                .str(name.as_str())
                .finish(),
        );
        LogId(Hash::of(&bytes))
    }

    /// The id of a package's attestation log (Cairn's own, not Warg's):
    /// where the registry records the artifacts that refer to the
    /// package's manifests.
    pub fn attestations(name: &PackageName) -> Self {
        let mut bytes = b"CAIRN-ATTESTATION-LOG-ID-V0:".to_vec();
        bytes.extend_from_slice(name.as_str().as_bytes());
        LogId(Hash::of(&bytes))
    }
}

impl RecordId {
    /// The id of a package record with these content bytes.
    pub fn package_record(content_bytes: &[u8]) -> Self {
        RecordId(prefixed_hash(b"WARG-PACKAGE-LOG-RECORD-V0:", content_bytes))
    }

    /// The id of an operator record with these content bytes.
    pub fn operator_record(content_bytes: &[u8]) -> Self {
        RecordId(prefixed_hash(
            b"WARG-OPERATOR-LOG-RECORD-V0:",
            content_bytes,
        ))
    }
}

pub(crate) fn prefixed_hash(prefix: &[u8], bytes: &[u8]) -> Hash {
    let mut joined = Vec::with_capacity(prefix.len() + bytes.len());
    joined.extend_from_slice(prefix);
    joined.extend_from_slice(bytes);
    Hash::of(&joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for name in ["a:b", "wasi:http", "my-ns:my-pkg2", "a1-b2:c3-d4-e"] {
            let parsed = PackageName::new(name).unwrap();
            assert_eq!(parsed.as_str(), name);
        }
        let parsed = PackageName::new("acme:cli-tool").unwrap();
        assert_eq!((parsed.namespace(), parsed.name()), ("acme", "cli-tool"));
    }

    #[test]
    fn names_fit_an_oci_repository() {
        let longest = format!("a:{}", "b".repeat(PackageName::MAX_LEN - 2));
        assert!(PackageName::new(longest.as_str()).is_ok());
        let too_long = format!("{longest}c");
        let e = PackageName::new(too_long).unwrap_err();
        assert_eq!(e, NameError::TooLong(256));
        assert!(e.to_string().contains("at most 255 bytes"));
    }

    #[test]
    fn invalid_names_name_the_rule() {
        type Check = fn(&NameError) -> bool;
        let cases: [(&str, Check); 10] = [
            ("wasi", |e| matches!(e, NameError::MissingColon(_))),
            ("a:b:c", |e| matches!(e, NameError::ExtraColon(_))),
            (":b", |e| {
                matches!(
                    e,
                    NameError::Empty {
                        part: "namespace",
                        ..
                    }
                )
            }),
            ("a:", |e| matches!(e, NameError::Empty { part: "name", .. })),
            ("a-:b", |e| {
                matches!(
                    e,
                    NameError::EmptyWord {
                        part: "namespace",
                        ..
                    }
                )
            }),
            ("a:b--c", |e| {
                matches!(e, NameError::EmptyWord { part: "name", .. })
            }),
            ("a:1b", |e| {
                matches!(e, NameError::WordStart { found: '1', .. })
            }),
            ("Wasi:http", |e| {
                matches!(e, NameError::Uppercase { found: 'W', .. })
            }),
            ("wasi:HTTP", |e| {
                matches!(e, NameError::Uppercase { part: "name", .. })
            }),
            ("wasi:h_t", |e| {
                matches!(e, NameError::InvalidChar { found: '_', .. })
            }),
        ];
        for (name, check) in cases {
            let err = PackageName::new(name).unwrap_err();
            assert!(check(&err), "{name}: {err}");
        }
    }
}
