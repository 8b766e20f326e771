//! Trusting a private smarthost's certificate without a CA: a pin
//! (`[delivery] tls_pin`) names the key or the certificate by its SHA-256,
//! and a self-signed certificate listed in `ca_file` is trusted as it is
//! (webpki refuses such a certificate as its own root: CaUsedAsEndEntity).
//! Either way the handshake signature is still verified, so the session is
//! bound to the key the pin names.
//!
//! Pin forms, as the usual tools print them:
//! - `sha256//<base64>` (or `sha256/<base64>`): the key (SPKI), curl's
//!   `--pinnedpubkey` form: `openssl x509 -pubkey -noout -in c.pem |
//!   openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`;
//! - `sha256:<hex>` (colons allowed): the whole certificate, as
//!   `openssl x509 -fingerprint -sha256 -noout` prints it.

use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    Key([u8; 32]),
    Cert([u8; 32]),
}

impl Pin {
    pub fn parse(text: &str) -> Result<Pin, String> {
        let bad = || {
            format!(
                "delivery.tls_pin '{text}': expected sha256//<base64 of the key's SHA-256> or sha256:<hex certificate fingerprint>"
            )
        };
        let t = text.trim();
        if let Some(b64) = t
            .strip_prefix("sha256//")
            .or_else(|| t.strip_prefix("sha256/"))
        {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| bad())?;
            return bytes.try_into().map(Pin::Key).map_err(|_| bad());
        }
        let hex = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .ok_or_else(bad)?;
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
        }
        Ok(Pin::Cert(out))
    }

    fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        match self {
            Pin::Cert(h) => Sha256::digest(cert.as_ref()).as_slice() == h,
            Pin::Key(h) => webpki::EndEntityCert::try_from(cert).is_ok_and(|ee| {
                Sha256::digest(ee.subject_public_key_info().as_ref()).as_slice() == h
            }),
        }
    }
}

/// The smarthost's verifier: pins when any are set (they replace the CA
/// check); otherwise a certificate found verbatim in `ca_file`, else the
/// CA check (`inner`).
#[derive(Debug)]
pub struct Verifier {
    pub provider: Arc<CryptoProvider>,
    pub inner: Arc<dyn ServerCertVerifier>,
    pub pins: Vec<Pin>,
    /// The certificates of `ca_file`, trusted as end entities as they are.
    pub listed: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.pins.is_empty() {
            return if self.pins.iter().any(|p| p.matches(end_entity)) {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            };
        }
        if self
            .listed
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let k = Pin::parse("sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        assert_eq!(k, Pin::Key([0; 32]));
        assert_eq!(
            Pin::parse("sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap(),
            k
        );
        let hex = vec!["0A"; 32].join(":");
        assert_eq!(
            Pin::parse(&format!("sha256:{hex}")).unwrap(),
            Pin::Cert([10; 32])
        );
        for bad in [
            "",
            "sha256//short",
            "sha1:00",
            "sha256:0A",
            "sha256:zz",
            "md5/AAAA",
        ] {
            assert!(Pin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_key_and_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["relay.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let spki = Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key));
        assert!(Pin::Key(spki.into()).matches(&der));
        assert!(Pin::Cert(Sha256::digest(der.as_ref()).into()).matches(&der));
        assert!(!Pin::Key([0; 32]).matches(&der) && !Pin::Cert([0; 32]).matches(&der));
    }
}
