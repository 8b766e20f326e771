//! TLS for the listeners: rustls with the ring provider, TLS 1.2 and 1.3
//! only, rustls' default (AEAD, forward-secret) suites. Without a
//! configured certificate, a self-signed one is made on first start and
//! kept in the data directory so clients can pin it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Makes the certificate and key if neither exists yet.
pub fn ensure_self_signed(cert: &Path, key: &Path, hostname: &str) -> Result<bool, String> {
    if cert.exists() || key.exists() {
        return Ok(false);
    }
    let names = vec![hostname.to_string(), "localhost".to_string()];
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot generate certificate: {e}"))?;
    for p in [cert, key] {
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    write_private(key, ck.signing_key.serialize_pem().as_bytes())?;
    fs::write(cert, ck.cert.pem()).map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    Ok(true)
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

/// Loads PEM files into a server configuration.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let read = |p: &Path| fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key found", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate/key: {e}"))?;
    Ok(Arc::new(config))
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
        server_config(&c, &k).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
