//! DANE for SMTP (RFC 7672): TLSA records at `_25._tcp.<mx host>`, when
//! DNSSEC-validated, say which certificate the MX host must present.
//! Only the usages RFC 7672 3.1 keeps for SMTP are used: DANE-EE (3), the
//! host's own certificate or key, with no name or date check; and DANE-TA
//! (2), a CA in the presented chain that the host's certificate must chain
//! to, for the MX name. PKIX-TA/PKIX-EE (0, 1) are unusable for SMTP.

use std::sync::Arc;

use base64::Engine;
use hickory_resolver::TokioResolver;
use hickory_resolver::proto::dnssec::{Algorithm, Proof, PublicKeyBuf, TrustAnchors};
use hickory_resolver::proto::rr::RData;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256, Sha512};

use super::config::DeliveryConfig;

/// What the TLSA lookup for one MX host found.
#[derive(Debug)]
pub enum Found {
    /// No DNSSEC-secure TLSA records: no DANE for this host.
    None,
    /// Secure, usable records: the host must match them.
    Records(Vec<Tlsa>),
    /// Records that fail validation (RFC 7672 2.2): do not use this host.
    Bogus,
}

/// TLSA lookups through a DNSSEC-validating resolver (hickory's own
/// validation, from the root keys or the configured trust anchors).
pub struct Dane {
    resolver: TokioResolver,
    port: u16,
}

impl Dane {
    /// `anchors`: the text of `delivery.dnssec_trust_anchor` (DNSKEY
    /// records, one per line), None for the root's keys.
    pub fn new(cfg: &DeliveryConfig, anchors: Option<&str>) -> Result<Dane, String> {
        let mut builder = super::route::resolver_builder(cfg, true)?;
        if let Some(text) = anchors {
            builder = builder.with_trust_anchor(Arc::new(parse_anchors(text)?));
        }
        Ok(Dane {
            resolver: builder.build(),
            port: cfg.mx_port,
        })
    }

    /// The TLSA records at `_<port>._tcp.<host>` (RFC 7672 2.2).
    pub async fn lookup(&self, host: &str) -> Found {
        let name = format!("_{}._tcp.{}.", self.port, host.trim_end_matches('.'));
        let answer = match self.resolver.tlsa_lookup(name.as_str()).await {
            Ok(a) => a,
            Err(e) => {
                // No records, or a failure to get any: no DANE for the
                // host (unsigned zones are the common case).
                tracing::debug!(%name, error = %e, "no TLSA records");
                return Found::None;
            }
        };
        let mut records = Vec::new();
        for proven in answer.as_lookup().dnssec_iter() {
            match proven.proof() {
                Proof::Secure => {}
                Proof::Bogus => return Found::Bogus,
                _ => return Found::None,
            }
            if let Ok(RData::TLSA(t)) = proven.require_as_ref(Proof::Secure) {
                records.push(Tlsa {
                    usage: t.cert_usage().into(),
                    selector: t.selector().into(),
                    matching: t.matching().into(),
                    data: t.cert_data().to_vec(),
                });
            }
        }
        // RFC 7672 2.2: with only unusable records the host is still
        // authenticated-TLS-only; `verify` fails them as tlsa-invalid.
        if records.is_empty() {
            Found::None
        } else {
            Found::Records(records)
        }
    }
}

/// DNSKEY records in presentation form (`name [ttl] [IN] DNSKEY flags 3
/// alg base64...`), `;` comments allowed.
pub fn parse_anchors(text: &str) -> Result<TrustAnchors, String> {
    let mut anchors = TrustAnchors::empty();
    for (n, line) in text.lines().enumerate() {
        let line = line.split(';').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: &str| format!("trust anchor line {}: {what}", n + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields
            .iter()
            .position(|f| f.eq_ignore_ascii_case("DNSKEY"))
            .ok_or_else(|| bad("not a DNSKEY record"))?;
        let rest = &fields[at + 1..];
        if rest.len() < 4 {
            return Err(bad("expected flags, protocol, algorithm and key"));
        }
        let alg: u8 = rest[2].parse().map_err(|_| bad("bad algorithm"))?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(rest[3..].concat())
            .map_err(|_| bad("bad base64 key"))?;
        anchors.insert(&PublicKeyBuf::new(key, Algorithm::from_u8(alg)));
    }
    if anchors.is_empty() {
        return Err("trust anchor file holds no DNSKEY record".into());
    }
    Ok(anchors)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// RFC 7672 3.1: DANE-TA or DANE-EE, full certificate or SPKI, and a
    /// matching type we know (exact, SHA-256, SHA-512).
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }

    fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected: Vec<u8> = match self.selector {
            0 => cert.as_ref().to_vec(),
            _ => match webpki::EndEntityCert::try_from(cert) {
                Ok(c) => c.subject_public_key_info().as_ref().to_vec(),
                Err(_) => return false,
            },
        };
        match self.matching {
            0 => selected == self.data,
            1 => Sha256::digest(&selected).as_slice() == self.data,
            2 => Sha512::digest(&selected).as_slice() == self.data,
            _ => false,
        }
    }
}

/// Checks the presented chain against the usable `records`; Err holds the
/// TLS-RPT result type.
pub fn verify(
    records: &[Tlsa],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), &'static str> {
    let usable: Vec<&Tlsa> = records.iter().filter(|r| r.usable()).collect();
    if usable.is_empty() {
        return Err("tlsa-invalid");
    }
    if usable.iter().any(|r| r.usage == 3 && r.matches(end_entity)) {
        return Ok(());
    }
    let Ok(ee) = webpki::EndEntityCert::try_from(end_entity) else {
        return Err("validation-failure");
    };
    let algs = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    for ta in intermediates {
        if !usable.iter().any(|r| r.usage == 2 && r.matches(ta)) {
            continue;
        }
        let Ok(anchor) = webpki::anchor_from_trusted_cert(ta) else {
            continue;
        };
        let anchors = [anchor];
        let chained = ee.verify_for_usage(
            algs,
            &anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        );
        if chained.is_ok() {
            return ee
                .verify_is_valid_for_subject_name(server_name)
                .map_err(|_| "certificate-host-mismatch");
        }
    }
    Err("validation-failure")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_and_leaf(name: &str) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![name.into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca.der().clone(), leaf.der().clone())
    }

    fn spki_sha256(cert: &CertificateDer<'_>) -> Vec<u8> {
        let ee = webpki::EndEntityCert::try_from(cert).unwrap();
        Sha256::digest(ee.subject_public_key_info().as_ref()).to_vec()
    }

    #[test]
    fn dane_ee_and_ta() {
        let (ca, leaf) = ca_and_leaf("mx.remote.test");
        let name = ServerName::try_from("mx.remote.test").unwrap();
        let now = UnixTime::now();
        let ee311 = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: spki_sha256(&leaf),
        };
        assert_eq!(
            verify(std::slice::from_ref(&ee311), &leaf, &[], &name, now),
            Ok(())
        );
        // DANE-EE ignores the name.
        let other = ServerName::try_from("other.test").unwrap();
        assert_eq!(verify(&[ee311], &leaf, &[], &other, now), Ok(()));
        let ee301 = Tlsa {
            usage: 3,
            selector: 0,
            matching: 1,
            data: Sha256::digest(leaf.as_ref()).to_vec(),
        };
        assert_eq!(verify(&[ee301], &leaf, &[], &name, now), Ok(()));
        let wrong = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: vec![0; 32],
        };
        assert_eq!(
            verify(&[wrong], &leaf, &[], &name, now),
            Err("validation-failure")
        );

        let ta = Tlsa {
            usage: 2,
            selector: 0,
            matching: 0,
            data: ca.as_ref().to_vec(),
        };
        assert_eq!(
            verify(
                std::slice::from_ref(&ta),
                &leaf,
                std::slice::from_ref(&ca),
                &name,
                now
            ),
            Ok(())
        );
        // DANE-TA checks the name, and needs the TA in the chain.
        assert_eq!(
            verify(
                std::slice::from_ref(&ta),
                &leaf,
                std::slice::from_ref(&ca),
                &other,
                now
            ),
            Err("certificate-host-mismatch")
        );
        assert_eq!(
            verify(&[ta], &leaf, &[], &name, now),
            Err("validation-failure")
        );
        let (other_ca, _) = ca_and_leaf("x.test");
        let ta_other = Tlsa {
            usage: 2,
            selector: 0,
            matching: 0,
            data: other_ca.as_ref().to_vec(),
        };
        assert_eq!(
            verify(&[ta_other], &leaf, &[other_ca], &name, now),
            Err("validation-failure")
        );
        let pkix = Tlsa {
            usage: 1,
            selector: 1,
            matching: 1,
            data: spki_sha256(&leaf),
        };
        assert_eq!(verify(&[pkix], &leaf, &[], &name, now), Err("tlsa-invalid"));
    }
}
