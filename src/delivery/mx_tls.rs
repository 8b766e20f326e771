//! Authenticated TLS to MX hosts when the recipient domain asks for it
//! (MTA-STS, DANE), and TLS-RPT-style counters (RFC 8460 result types) of
//! how those sessions went. Without a policy, MX delivery stays
//! opportunistic (client.rs).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

use super::dane::Tlsa;

/// The policy type a session ran under, as TLS-RPT names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    Sts,
    Dane,
}

impl PolicyType {
    pub fn name(self) -> &'static str {
        match self {
            PolicyType::Sts => "sts",
            PolicyType::Dane => "tlsa",
        }
    }
}

/// What a connection to one MX host must satisfy.
#[derive(Debug, Clone)]
pub struct Guard {
    pub kind: PolicyType,
    /// Defer rather than deliver when it is not met.
    pub enforce: bool,
    /// DANE: the host's TLSA records; otherwise the WebPKI check.
    pub tlsa: Vec<Tlsa>,
}

/// Counts of sessions per policy type and result ("success" or a failure
/// reason such as certificate-host-mismatch), since start.
#[derive(Debug, Default)]
pub struct Report(Mutex<BTreeMap<(&'static str, &'static str), u64>>);

impl Report {
    pub fn count(&self, kind: PolicyType, result: &'static str) {
        *self
            .0
            .lock()
            .expect("tls report")
            .entry((kind.name(), result))
            .or_default() += 1;
    }

    /// `{"sts": {"success": 3, "certificate-expired": 1}, ...}`
    pub fn snapshot(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for ((kind, result), n) in self.0.lock().expect("tls report").iter() {
            let entry = out
                .entry(kind.to_string())
                .or_insert_with(|| serde_json::json!({}));
            entry[*result] = (*n).into();
        }
        out.into()
    }
}

/// The system CA store plus `extra_pem` (delivery.ca_file).
pub fn roots(extra_pem: Option<&[u8]>) -> Result<Arc<rustls::RootCertStore>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = extra_pem {
        for c in rustls_pemfile::certs(&mut &pem[..]) {
            let c = c.map_err(|e| format!("CA file: {e}"))?;
            roots.add(c).map_err(|e| format!("CA file: {e}"))?;
        }
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A plain verifying connector (the MTA-STS policy fetch).
pub fn webpki_connector(roots: Arc<rustls::RootCertStore>) -> Result<TlsConnector, String> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A connector for one MX connection under `guard`, and the slot where its
/// verifier leaves the result (None: no certificate seen yet). In testing
/// mode the handshake goes on whatever the result.
pub fn guarded_connector(
    roots: Arc<rustls::RootCertStore>,
    guard: &Guard,
) -> Result<(TlsConnector, Verdict), String> {
    let provider = provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| format!("CA certificates: {e}"))?;
    let result = Arc::new(Mutex::new(None));
    let verifier = Checked {
        provider: provider.clone(),
        webpki,
        guard: guard.clone(),
        result: result.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((TlsConnector::from(Arc::new(config)), result))
}

/// Where a connection's verifier leaves its result: None before the
/// certificate is seen, then Ok or the TLS-RPT failure result type.
pub type Verdict = Arc<Mutex<Option<Result<(), &'static str>>>>;

/// RFC 8460 4.3 result type for a failed WebPKI check.
fn reason(e: &rustls::Error) -> &'static str {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => "certificate-expired",
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate-host-mismatch"
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "certificate-not-trusted"
            }
            _ => "validation-failure",
        },
        _ => "validation-failure",
    }
}

#[derive(Debug)]
struct Checked {
    provider: Arc<CryptoProvider>,
    webpki: Arc<WebPkiServerVerifier>,
    guard: Guard,
    result: Verdict,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let outcome = match self.guard.kind {
            PolicyType::Dane => super::dane::verify(
                &self.guard.tlsa,
                end_entity,
                intermediates,
                server_name,
                now,
            ),
            PolicyType::Sts => self
                .webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .map(|_| ())
                .map_err(|e| reason(&e)),
        };
        *self.result.lock().expect("tls result") = Some(outcome);
        match outcome {
            Err(r) if self.guard.enforce => Err(rustls::Error::General(r.to_string())),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
