//! TLS for the listeners: rustls with the ring provider, TLS 1.2 and 1.3
//! only, rustls' default (AEAD, forward-secret) suites. Without a
//! configured certificate, a self-signed one is made on first start and
//! kept in the data directory so clients can pin it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use std::sync::RwLock;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Makes the certificate and key if neither exists yet.
pub fn ensure_self_signed(cert: &Path, key: &Path, hostname: &str) -> Result<bool, String> {
    if cert.exists() || key.exists() {
        return Ok(false);
    }
    let (cert_pem, key_pem) = generate(hostname)?;
    for p in [cert, key] {
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    write_private(key, key_pem.as_bytes())?;
    fs::write(cert, cert_pem).map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    Ok(true)
}

/// A self-signed certificate for `hostname` and localhost: (cert, key) PEM.
pub fn generate(hostname: &str) -> Result<(String, String), String> {
    let names = vec![hostname.to_string(), "localhost".to_string()];
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot generate certificate: {e}"))?;
    Ok((ck.cert.pem(), ck.signing_key.serialize_pem()))
}

/// Writes a secret readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The certificate in force, shared by every listener (SMTP and the admin
/// face). An uploaded certificate replaces it atomically: handshakes
/// already under way keep the old one, new ones get the new one, and no
/// listener needs restarting.
#[derive(Debug)]
pub struct Certs {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certs {
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM chain and key and checks that they belong together, so a
/// bad upload is refused before anything is replaced.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &*cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    if chain.is_empty() {
        return Err("certificate: no PEM certificate found".into());
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &*key_pem)
        .map_err(|e| format!("private key: {e}"))?
        .ok_or("private key: no PEM private key found")?;
    let ck = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| format!("certificate/key: {e}"))?;
    // from_der lets an undecidable match through; a certificate whose key
    // cannot be compared is not one an admin should upload blindly.
    ck.keys_match()
        .map_err(|e| format!("certificate and private key do not match: {e}"))?;
    Ok(ck)
}

/// Loads PEM files into a server configuration whose certificate can be
/// swapped later through the returned `Certs`.
pub fn server_config(cert: &Path, key: &Path) -> Result<(Arc<ServerConfig>, Arc<Certs>), String> {
    let read = |p: &Path| fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let ck = certified_key(&read(cert)?, &read(key)?)
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))?;
    server_config_with(ck)
}

/// `server_config` from PEM already read (`what` names them in errors).
pub fn server_config_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    what: &str,
) -> Result<(Arc<ServerConfig>, Arc<Certs>), String> {
    server_config_with(certified_key(cert_pem, key_pem).map_err(|e| format!("{what}: {e}"))?)
}

fn server_config_with(ck: CertifiedKey) -> Result<(Arc<ServerConfig>, Arc<Certs>), String> {
    let certs = Arc::new(Certs {
        current: RwLock::new(Arc::new(ck)),
    });
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    Ok((Arc::new(config), certs))
}

/// The certificate and key: generated in the data directory on first
/// start unless configured; read without following symlinks when they
/// lie in the data directory.
pub fn load(
    _root: &crate::privilege::Privileged,
    cfg: &crate::config::Config,
    data: &crate::datadir::DataDir,
    hostname: &str,
) -> Result<(Arc<ServerConfig>, Arc<Certs>), String> {
    let (cert, key) = (cfg.cert_path(), cfg.key_path());
    if cfg.tls.cert.is_none()
        && let (Some(c), Some(k)) = (data.relative(&cert), data.relative(&key))
    {
        // Both or neither: a lone file is an operator's to sort out.
        let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        if !exists(&cert) && !exists(&key) {
            let (cert_pem, key_pem) = generate(hostname)?;
            if data.create_new(&k, key_pem.as_bytes())?
                && data.create_new(&c, cert_pem.as_bytes())?
            {
                tracing::info!(cert = %cert.display(), "generated a self-signed certificate");
            }
        }
    }
    let read = |p: &Path| {
        data.read(p).unwrap_or_else(|| {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        })
    };
    let what = format!("{} / {}", cert.display(), key.display());
    server_config_pem(&read(&cert)?, &read(&key)?, &what)
}

/// Replaces the files of the certificate in force (the key first written
/// owner-only), for the next start to load what is served now.
pub fn save(cert: &Path, key: &Path, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), String> {
    let tmp_key = key.with_extension("pem.new");
    let _ = fs::remove_file(&tmp_key);
    write_private(&tmp_key, key_pem)?;
    let tmp_cert = cert.with_extension("pem.new");
    fs::write(&tmp_cert, cert_pem)
        .map_err(|e| format!("cannot write {}: {e}", tmp_cert.display()))?;
    fs::rename(&tmp_key, key).map_err(|e| format!("cannot replace {}: {e}", key.display()))?;
    fs::rename(&tmp_cert, cert).map_err(|e| format!("cannot replace {}: {e}", cert.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_loads() {
        let dir = std::env::temp_dir().join(format!("og-tls-{}", std::process::id()));
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        assert!(ensure_self_signed(&c, &k, "mail.example").unwrap());
        assert!(!ensure_self_signed(&c, &k, "mail.example").unwrap());
        let (_, certs) = server_config(&c, &k).unwrap();
        // A second certificate swaps in; a key of another one is refused.
        let other = rcgen::generate_simple_self_signed(vec!["b.example".into()]).unwrap();
        let (pem, key) = (other.cert.pem(), other.signing_key.serialize_pem());
        certs.replace(certified_key(pem.as_bytes(), key.as_bytes()).unwrap());
        let mine = fs::read(&k).unwrap();
        assert!(certified_key(pem.as_bytes(), &mine).is_err());
        assert!(certified_key(b"junk", key.as_bytes()).is_err());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
