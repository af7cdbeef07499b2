//! A development TLS identity for `cairn serve --tls-dev`: a local CA and a
//! server certificate it signs, kept in `<data-dir>/tls/` and reused.
//! Clients trust the CA (`CAIRN_CA_FILE`, wkg's and skopeo's settings, or
//! the system store); it signs nothing else.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Where a development identity lives.
pub struct DevTls {
    /// The CA certificate clients trust (PEM).
    pub ca: PathBuf,
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's key (PEM, mode 0600).
    pub key: PathBuf,
    /// Whether it was made now.
    pub created: bool,
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The development identity in `dir`, made for `hosts` (names or
/// addresses; `localhost`, 127.0.0.1 and ::1 are always in) if missing.
pub fn dev_identity(dir: &Path, hosts: &[String]) -> Result<DevTls> {
    let tls = DevTls {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        created: false,
    };
    if tls.ca.exists() && tls.cert.exists() && tls.key.exists() {
        return Ok(tls);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_key = KeyPair::generate().context("cannot make a CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(
        DnType::CommonName,
        "Cairn development CA (this machine only)",
    );
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).context("cannot sign the CA")?;

    let mut names: Vec<String> = vec!["localhost".into()];
    names.extend(
        hosts
            .iter()
            .filter(|h| h.parse::<std::net::IpAddr>().is_err())
            .cloned(),
    );
    let mut leaf = CertificateParams::new(names).context("certificate parameters")?;
    let mut addresses: Vec<std::net::IpAddr> = vec![
        std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ];
    addresses.extend(
        hosts
            .iter()
            .filter_map(|h| h.parse::<std::net::IpAddr>().ok()),
    );
    addresses.sort();
    addresses.dedup();
    for address in addresses.into_iter().filter(|a| !a.is_unspecified()) {
        leaf.subject_alt_names.push(SanType::IpAddress(address));
    }
    leaf.distinguished_name
        .push(DnType::CommonName, "Cairn development server");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().context("cannot make a server key")?;
    let cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .context("cannot sign the server certificate")?;
    // Not `*.key`: skopeo and docker take such a file in --cert-dir for a
    // client key.
    write_private(&dir.join("ca-key.pem"), &ca_key.serialize_pem())?;
    write_private(&tls.key, &key.serialize_pem())?;
    std::fs::write(&tls.cert, format!("{}{}", cert.pem(), ca_cert.pem()))
        .with_context(|| format!("cannot write {}", tls.cert.display()))?;
    std::fs::write(&tls.ca, ca_cert.pem())
        .with_context(|| format!("cannot write {}", tls.ca.display()))?;
    // The same CA under the name docker and skopeo look for in --cert-dir.
    std::fs::write(dir.join("ca.crt"), ca_cert.pem())
        .with_context(|| format!("cannot write {}", dir.join("ca.crt").display()))?;
    Ok(DevTls {
        created: true,
        ..tls
    })
}
