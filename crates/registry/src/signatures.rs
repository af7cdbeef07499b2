//! Signatures and attestations people already make, checked against the
//! keys an operator trusts: cosign's keyed signatures (a "simple signing"
//! JSON payload in a layer, its ECDSA signature in the layer's
//! `dev.cosignproject.cosign/signature` annotation) and in-toto statements
//! in DSSE envelopes (what `cosign attest` pushes). Pure: bytes in,
//! verdicts out; no IO.
//!
//! Keys are PEM `PUBLIC KEY` (SubjectPublicKeyInfo) texts, ECDSA P-256 (what
//! `cosign generate-key-pair` and `openssl` write) or Ed25519; a key's id is
//! `sha256:<hex>` of its DER SubjectPublicKeyInfo. Signing (for
//! `cairn attest`) takes a PKCS#8 or SEC1 P-256 private key in PEM.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::der::Decode;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// The media type of a cosign signature layer (its bytes are the payload).
pub const COSIGN_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding a cosign signature (base64).
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The artifact type of a cosign signature pushed as an OCI 1.1 referrer.
pub const COSIGN_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The media type of a DSSE envelope layer.
pub const DSSE_LAYER: &str = "application/vnd.dsse.envelope.v1+json";
/// The payload type of an in-toto statement in a DSSE envelope.
pub const IN_TOTO_PAYLOAD: &str = "application/vnd.in-toto+json";
/// The in-toto statement type `cairn attest` writes.
pub const IN_TOTO_STATEMENT: &str = "https://in-toto.io/Statement/v1";
/// The largest signature or envelope layer read, in bytes.
pub const MAX_LAYER_BYTES: u64 = 1024 * 1024;
/// The most signature layers one manifest may carry.
pub const MAX_LAYERS: usize = 64;

/// What kind of signed thing a layer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A cosign keyed signature over a simple signing payload.
    Cosign,
    /// A DSSE envelope around an in-toto statement.
    Dsse,
}

impl Kind {
    /// The kind of a layer of `media_type`, if it is one this module checks.
    pub fn of_layer(media_type: &str) -> Option<Kind> {
        match media_type {
            COSIGN_LAYER => Some(Kind::Cosign),
            DSSE_LAYER => Some(Kind::Dsse),
            _ => None,
        }
    }

    /// Its name in records: `cosign` or `dsse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cosign => "cosign",
            Kind::Dsse => "dsse",
        }
    }
}

/// The manifest digest named by cosign's classic tag scheme
/// (`sha256-<hex>.sig` for signatures, `.att` for attestations), as
/// `sha256:<hex>`.
pub fn tag_subject(tag: &str) -> Option<String> {
    let rest = tag.strip_prefix("sha256-")?;
    let hex = rest
        .strip_suffix(".sig")
        .or_else(|| rest.strip_suffix(".att"))?;
    let ok = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then(|| format!("sha256:{hex}"))
}

/// Why a key, signature or payload is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    /// Not a PEM public key of a supported algorithm.
    #[error("not a usable public key: {0} (give a PEM `PUBLIC KEY`, ECDSA P-256 or Ed25519, as `cosign generate-key-pair` or `openssl pkey -pubout` write)")]
    PublicKey(String),
    /// Not a PEM P-256 private key.
    #[error("not a usable private key: {0} (give an unencrypted PEM P-256 key, as `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes)")]
    PrivateKey(String),
    /// A layer is larger than [`MAX_LAYER_BYTES`].
    #[error("a signature layer is {0} bytes, more than the {MAX_LAYER_BYTES} accepted")]
    TooLarge(u64),
    /// Too many signature layers.
    #[error("more than {MAX_LAYERS} signature layers in one manifest")]
    TooMany,
    /// A cosign layer without its signature annotation, or with one that
    /// is not base64.
    #[error("the cosign layer's `{COSIGN_SIGNATURE_ANNOTATION}` annotation {0}")]
    Annotation(String),
    /// A payload or envelope that does not parse.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// Which document.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The signed payload names another manifest.
    #[error("the signed payload names {found}, not the manifest it is attached to ({subject})")]
    OtherSubject {
        /// What the payload names.
        found: String,
        /// The subject of the push.
        subject: String,
    },
}

fn malformed(what: &'static str, why: impl ToString) -> SignatureError {
    SignatureError::Malformed {
        what,
        why: why.to_string(),
    }
}

#[derive(Clone, Debug)]
enum Verifier {
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// A parsed public key.
#[derive(Clone, Debug)]
pub struct PublicKey {
    id: String,
    algorithm: &'static str,
    verifier: Verifier,
}

/// The OID of Ed25519 (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<PublicKey, SignatureError> {
        let bad = |e: &dyn std::fmt::Display| SignatureError::PublicKey(e.to_string());
        let (label, der) =
            p256::pkcs8::der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| bad(&e))?;
        if label != "PUBLIC KEY" {
            return Err(SignatureError::PublicKey(format!(
                "the PEM holds a `{label}`, not a `PUBLIC KEY`"
            )));
        }
        let spki =
            p256::pkcs8::spki::SubjectPublicKeyInfoRef::from_der(&der).map_err(|e| bad(&e))?;
        let id = format!("sha256:{}", hex::encode(Sha256::digest(&der)));
        if spki.algorithm.oid.to_string() == ED25519_OID {
            let raw = spki.subject_public_key.raw_bytes();
            if raw.len() != 32 {
                return Err(SignatureError::PublicKey(
                    "an Ed25519 key is 32 bytes".into(),
                ));
            }
            return Ok(PublicKey {
                id,
                algorithm: "ed25519",
                verifier: Verifier::Ed25519(raw.to_vec()),
            });
        }
        let key = p256::PublicKey::from_public_key_der(&der).map_err(|e| {
            SignatureError::PublicKey(format!(
                "{e}: only ECDSA P-256 and Ed25519 keys are supported"
            ))
        })?;
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        Ok(PublicKey {
            id,
            algorithm: "ecdsa-p256",
            verifier: Verifier::P256(key.to_encoded_point(false).as_bytes().to_vec()),
        })
    }

    /// Its id, `sha256:<hex of the DER SubjectPublicKeyInfo>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `ecdsa-p256` or `ed25519`.
    pub fn algorithm(&self) -> &'static str {
        self.algorithm
    }

    /// Whether `signature` (DER ECDSA, or raw Ed25519) signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let (algorithm, key): (&'static dyn ring::signature::VerificationAlgorithm, &[u8]) =
            match &self.verifier {
                Verifier::P256(point) => (&ring::signature::ECDSA_P256_SHA256_ASN1, point),
                Verifier::Ed25519(raw) => (&ring::signature::ED25519, raw),
            };
        ring::signature::UnparsedPublicKey::new(algorithm, key)
            .verify(message, signature)
            .is_ok()
    }
}

/// A key the operator trusts, with the label it was given.
#[derive(Clone, Debug)]
pub struct Trusted {
    /// The label (`--name`), or the key id.
    pub label: String,
    /// The key.
    pub key: PublicKey,
}

/// Whether `bytes` have the form of a signature: a DER ECDSA signature or
/// a 64-byte Ed25519 one.
fn well_formed(bytes: &[u8]) -> bool {
    bytes.len() == 64 || p256::ecdsa::DerSignature::try_from(bytes).is_ok()
}

/// Whether a signature checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by a trusted key.
    Verified,
    /// Well formed and about the right manifest, but no trusted key signed
    /// it (none is configured, or none matches).
    Unverified,
}

impl Verdict {
    /// `verified` or `unverified`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::Unverified => "unverified",
        }
    }
}

/// The outcome of checking a signature or attestation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// What was checked.
    pub kind: Kind,
    /// The verdict.
    pub verdict: Verdict,
    /// The trusted key that verified it: its id.
    pub key_id: Option<String>,
    /// And its label.
    pub key_label: Option<String>,
    /// An attestation's predicate type.
    pub predicate_type: Option<String>,
    /// Which digest the signed payload named: `manifest` (the subject) or
    /// `layer` (the Wasm layer, for in-toto statements).
    pub matched: &'static str,
}

impl Checked {
    /// The verdict of a signature of `kind` that the trusted key `by`
    /// verified (`None`: no trusted key did).
    fn by(
        kind: Kind,
        by: Option<&Trusted>,
        predicate_type: Option<String>,
        matched: &'static str,
    ) -> Checked {
        Checked {
            kind,
            verdict: if by.is_some() {
                Verdict::Verified
            } else {
                Verdict::Unverified
            },
            key_id: by.map(|k| k.key.id().to_owned()),
            key_label: by.map(|k| k.label.clone()),
            predicate_type,
            matched,
        }
    }
}

fn first_trusted<'a>(keys: &'a [Trusted], message: &[u8], signature: &[u8]) -> Option<&'a Trusted> {
    keys.iter().find(|k| k.key.verifies(message, signature))
}

/// The cosign "simple signing" payload, the part that matters.
#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Checks one cosign signature layer: `payload` (the layer's bytes) must
/// name `subject` (`sha256:<hex>`), `signature` is the annotation's value.
pub fn check_cosign(
    payload: &[u8],
    signature: Option<&str>,
    subject: &str,
    keys: &[Trusted],
) -> Result<Checked, SignatureError> {
    let signature = signature.ok_or_else(|| SignatureError::Annotation("is missing".into()))?;
    let signature = STANDARD
        .decode(signature.trim())
        .map_err(|e| SignatureError::Annotation(format!("is not base64: {e}")))?;
    if !well_formed(&signature) {
        return Err(SignatureError::Annotation(
            "is not a signature (DER ECDSA or Ed25519)".into(),
        ));
    }
    let parsed: SimpleSigning =
        serde_json::from_slice(payload).map_err(|e| malformed("cosign payload", e))?;
    if parsed.critical.kind != "cosign container image signature" {
        return Err(malformed(
            "cosign payload",
            format!(
                "`critical.type` is `{}`, not `cosign container image signature`",
                parsed.critical.kind
            ),
        ));
    }
    if parsed.critical.image.digest != subject {
        return Err(SignatureError::OtherSubject {
            found: parsed.critical.image.digest,
            subject: subject.to_owned(),
        });
    }
    let by = first_trusted(keys, payload, &signature);
    Ok(Checked::by(Kind::Cosign, by, None, "manifest"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<StatementSubject>,
    predicate_type: String,
}

#[derive(Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE's pre-authentication encoding of a payload.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Checks a DSSE envelope (a layer's bytes) holding an in-toto statement
/// whose subjects must include `subject` (the manifest) or `layer` (the
/// release's Wasm layer), both `sha256:<hex>`.
pub fn check_dsse(
    envelope: &[u8],
    subject: &str,
    layer: Option<&str>,
    keys: &[Trusted],
) -> Result<Checked, SignatureError> {
    let envelope: Envelope =
        serde_json::from_slice(envelope).map_err(|e| malformed("DSSE envelope", e))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD {
        return Err(malformed(
            "DSSE envelope",
            format!(
                "payloadType is `{}`, not `{IN_TOTO_PAYLOAD}`",
                envelope.payload_type
            ),
        ));
    }
    if envelope.signatures.is_empty() {
        return Err(malformed("DSSE envelope", "it has no signatures"));
    }
    let payload = STANDARD
        .decode(envelope.payload.as_bytes())
        .map_err(|e| malformed("DSSE envelope", format!("payload is not base64: {e}")))?;
    let statement: Statement =
        serde_json::from_slice(&payload).map_err(|e| malformed("in-toto statement", e))?;
    if !statement.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(malformed(
            "in-toto statement",
            format!("`_type` is `{}`", statement.kind),
        ));
    }
    let named: Vec<String> = statement
        .subject
        .iter()
        .filter_map(|s| s.digest.get("sha256"))
        .map(|hex| format!("sha256:{hex}"))
        .collect();
    let matched = if named.iter().any(|d| d == subject) {
        "manifest"
    } else if layer.is_some_and(|l| named.iter().any(|d| d == l)) {
        "layer"
    } else {
        return Err(SignatureError::OtherSubject {
            found: if named.is_empty() {
                "no sha256 digest".into()
            } else {
                named.join(", ")
            },
            subject: subject.to_owned(),
        });
    };
    let message = pae(&envelope.payload_type, &payload);
    let mut by = None;
    for signature in &envelope.signatures {
        let sig = STANDARD
            .decode(signature.sig.as_bytes())
            .map_err(|e| malformed("DSSE envelope", format!("a signature is not base64: {e}")))?;
        if !well_formed(&sig) {
            return Err(malformed(
                "DSSE envelope",
                "a signature is not a signature (DER ECDSA or Ed25519)",
            ));
        }
        if by.is_none() {
            by = first_trusted(keys, &message, &sig);
        }
    }
    Ok(Checked::by(
        Kind::Dsse,
        by,
        Some(statement.predicate_type),
        matched,
    ))
}

/// A P-256 private key for signing.
pub struct SigningKey(p256::ecdsa::SigningKey);

impl SigningKey {
    /// Reads a PEM `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1).
    pub fn from_pem(pem: &str) -> Result<SigningKey, SignatureError> {
        let pem = pem.trim();
        let secret = if pem.contains("BEGIN EC PRIVATE KEY") {
            p256::SecretKey::from_sec1_pem(pem)
                .map_err(|e| SignatureError::PrivateKey(e.to_string()))?
        } else if pem.contains("ENCRYPTED") {
            return Err(SignatureError::PrivateKey(
                "the key is encrypted (decrypt it first, e.g. `openssl pkey -in KEY -out PLAIN`)"
                    .into(),
            ));
        } else {
            p256::SecretKey::from_pkcs8_pem(pem)
                .map_err(|e| SignatureError::PrivateKey(e.to_string()))?
        };
        Ok(SigningKey(secret.into()))
    }

    /// A new random key.
    pub fn generate() -> SigningKey {
        SigningKey(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    /// The public key's PEM (`PUBLIC KEY`).
    pub fn public_key_pem(&self) -> String {
        use p256::pkcs8::EncodePublicKey;
        p256::PublicKey::from(self.0.verifying_key())
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap_or_default()
    }

    /// A DER ECDSA-P256-SHA256 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::Signature = self.0.sign(message);
        signature.to_der().as_bytes().to_vec()
    }
}

/// Cosign's simple signing payload for the manifest `digest` of
/// `reference` (a repository, e.g. `registry.example/acme/app`).
pub fn simple_signing_payload(reference: &str, digest: &str) -> Vec<u8> {
    let value = json!({
        "critical": {
            "identity": { "docker-reference": reference },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    value.to_string().into_bytes()
}

/// An in-toto statement about the manifest `digest` named `name`.
pub fn in_toto_statement(
    name: &str,
    digest: &str,
    predicate_type: &str,
    predicate: Value,
) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    json!({
        "_type": IN_TOTO_STATEMENT,
        "subject": [{ "name": name, "digest": { "sha256": hex } }],
        "predicateType": predicate_type,
        "predicate": predicate,
    })
    .to_string()
    .into_bytes()
}

/// A DSSE envelope of `payload` (an in-toto statement) signed by `key`.
pub fn dsse_envelope(payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let signature = key.sign(&pae(IN_TOTO_PAYLOAD, payload));
    json!({
        "payloadType": IN_TOTO_PAYLOAD,
        "payload": STANDARD.encode(payload),
        "signatures": [{ "keyid": "", "sig": STANDARD.encode(signature) }],
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        SigningKey(secret.into())
    }

    fn trusted(k: &SigningKey) -> Trusted {
        Trusted {
            label: "ci".into(),
            key: PublicKey::from_pem(&k.public_key_pem()).unwrap(),
        }
    }

    const SUBJECT: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn cosign_verdicts() {
        let k = key();
        let payload = simple_signing_payload("r/acme/app", SUBJECT);
        let sig = STANDARD.encode(k.sign(&payload));
        let ok = check_cosign(&payload, Some(&sig), SUBJECT, &[trusted(&k)]).unwrap();
        assert_eq!(ok.verdict, Verdict::Verified);
        assert_eq!(ok.key_label.as_deref(), Some("ci"));
        let other = key();
        let un = check_cosign(&payload, Some(&sig), SUBJECT, &[trusted(&other)]).unwrap();
        assert_eq!(un.verdict, Verdict::Unverified);
        assert_eq!(un.key_id, None);
        let elsewhere = SUBJECT.replace('1', "2");
        assert!(matches!(
            check_cosign(&payload, Some(&sig), &elsewhere, &[trusted(&k)]),
            Err(SignatureError::OtherSubject { .. })
        ));
        assert!(check_cosign(b"{}", Some(&sig), SUBJECT, &[]).is_err());
        assert!(check_cosign(&payload, None, SUBJECT, &[]).is_err());
        assert!(check_cosign(&payload, Some("!!"), SUBJECT, &[]).is_err());
        assert!(check_cosign(&payload, Some("AAAA"), SUBJECT, &[]).is_err());
    }

    #[test]
    fn dsse_verdicts() {
        let k = key();
        let statement = in_toto_statement(
            "acme:app",
            SUBJECT,
            "https://slsa.dev/provenance/v1",
            json!({}),
        );
        let envelope = dsse_envelope(&statement, &k);
        let ok = check_dsse(&envelope, SUBJECT, None, &[trusted(&k)]).unwrap();
        assert_eq!(ok.verdict, Verdict::Verified);
        assert_eq!(ok.matched, "manifest");
        assert_eq!(
            ok.predicate_type.as_deref(),
            Some("https://slsa.dev/provenance/v1")
        );
        let other = SUBJECT.replace('1', "3");
        let by_layer = check_dsse(&envelope, &other, Some(SUBJECT), &[]).unwrap();
        assert_eq!(by_layer.matched, "layer");
        assert_eq!(by_layer.verdict, Verdict::Unverified);
        assert!(check_dsse(&envelope, &other, None, &[]).is_err());
        assert!(check_dsse(b"{\"payloadType\":1}", SUBJECT, None, &[]).is_err());
    }

    #[test]
    fn tags_and_keys() {
        let hex = "ab".repeat(32);
        assert_eq!(
            tag_subject(&format!("sha256-{hex}.sig")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            tag_subject(&format!("sha256-{hex}.att")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(tag_subject(&format!("sha256-{hex}.sbom")), None);
        assert_eq!(tag_subject("1.0.0"), None);
        assert!(PublicKey::from_pem("nope").is_err());
        // An Ed25519 key (RFC 8410's example).
        let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert_eq!(PublicKey::from_pem(ed).unwrap().algorithm(), "ed25519");
    }
}
