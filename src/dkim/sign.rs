//! Signing at delivery time: the worker passes each message body here
//! just before sending it, so the signature covers exactly what the next
//! hop receives and always uses the domain's active key, even for mail
//! queued before a rotation. The signing domain (`d=`) is that of the
//! first From: address, the one DMARC aligns with. The Received header we
//! prepend at acceptance is not in `h=`: later hops add their own above
//! it, and nothing is gained by signing trace headers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};

use super::{Algorithm, Key};

/// RFC 6376 5.4.1's list; `h=` names those present in the message (a
/// name listed but absent would forbid a later hop from adding it, which
/// breaks mailing lists adding List-Id).
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// Returns the message with a DKIM-Signature header first when its From
/// domain has a key and is aligned with the envelope sender (`sender`;
/// empty for the null sender, whose mail is ours: bounces and notices
/// from `hostname`); `keys` looks up a domain's keys (the store's). Otherwise
/// (no key, no From, not aligned, a lookup or key error, the last two logged) the message unchanged: signing never
/// holds mail back.
pub fn sign_for_delivery<E: std::fmt::Display>(
    keys: impl FnOnce(&str) -> Result<Option<super::DomainKeys>, E>,
    id: u64,
    sender: &str,
    hostname: &str,
    message: Vec<u8>,
) -> Vec<u8> {
    let Some(head) = Head::parse(&message) else {
        return message;
    };
    let keys = match keys(&head.domain) {
        Ok(Some(k)) => k,
        Ok(None) => return message,
        Err(e) => {
            tracing::warn!(id, domain = %head.domain, error = %e,
                "DKIM key lookup failed; sending unsigned");
            return message;
        }
    };
    if !aligned(&head.domain, sender, hostname) {
        tracing::info!(id, domain = %head.domain, sender,
            "From: domain not aligned with the envelope sender; sending unsigned");
        return message;
    }
    match signature(&keys.active, &head, &message) {
        Ok(header) => {
            let mut out = Vec::with_capacity(header.len() + message.len());
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&message);
            out
        }
        Err(e) => {
            tracing::warn!(id, domain = %head.domain, selector = %keys.active.selector,
                error = %e, "DKIM signing failed; sending unsigned");
            message
        }
    }
}

/// Whether the From: domain is the envelope's (the sender's domain, or
/// our host name for the null sender), a parent of it or a subdomain:
/// the sender check ties the envelope to the authenticated user, so a
/// user cannot have mail signed for a domain they merely write in From:.
fn aligned(from: &str, sender: &str, hostname: &str) -> bool {
    let env = match sender {
        "" => hostname,
        s => s.rsplit_once('@').map_or("", |(_, d)| d),
    };
    let env = env.trim_end_matches('.').to_ascii_lowercase();
    let under = |a: &str, b: &str| a.strip_suffix(b).is_some_and(|p| p.ends_with('.'));
    !env.is_empty() && (env == from || under(&env, from) || under(from, &env))
}

/// What signing needs from the header section, read in one parse.
pub struct Head {
    /// The lower-case domain of the first From: address.
    pub domain: String,
    /// The names of `SIGNED_HEADERS` that occur.
    pub present: Vec<&'static str>,
}

impl Head {
    /// `None` when there is no From: address with a domain.
    pub fn parse(message: &[u8]) -> Option<Head> {
        let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
        let addr = parsed.from()?.first()?.address()?;
        let (_, domain) = addr.rsplit_once('@')?;
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            return None;
        }
        let names = parsed.headers();
        let present = SIGNED_HEADERS
            .iter()
            .copied()
            .filter(|n| names.iter().any(|h| h.name().eq_ignore_ascii_case(n)))
            .collect();
        Some(Head { domain, present })
    }
}

/// The `DKIM-Signature: ...\r\n` header for `message`, relaxed/relaxed,
/// `d=` the From: domain.
pub fn signature(key: &Key, head: &Head, message: &[u8]) -> Result<String, String> {
    let der = B64.decode(&key.private).map_err(|e| e.to_string())?;
    match key.algorithm {
        Algorithm::Ed25519 => {
            let k = Ed25519Key::from_pkcs8_der(&der).map_err(|e| e.to_string())?;
            sign_with(k, &key.selector, head, message)
        }
        Algorithm::Rsa => {
            let k = RsaKey::<Sha256>::from_der(&der).map_err(|e| e.to_string())?;
            sign_with(k, &key.selector, head, message)
        }
    }
}

fn sign_with<K: SigningKey>(
    key: K,
    selector: &str,
    head: &Head,
    message: &[u8],
) -> Result<String, String> {
    let sig = DkimSigner::from_key(key)
        .domain(head.domain.as_str())
        .selector(selector)
        .headers(head.present.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(message)
        .map_err(|e| e.to_string())?;
    Ok(sig.to_header())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_domain_takes_the_first_address() {
        let m = b"Subject: x\r\nFrom: \"A\" <a@Mail.Example.COM.>, b@other.example\r\n\r\nbody\r\n";
        let h = Head::parse(m).unwrap();
        assert_eq!(h.domain, "mail.example.com");
        assert_eq!(h.present, ["From", "Subject"]);
        assert!(Head::parse(b"Subject: no from\r\n\r\nbody\r\n").is_none());
        assert!(Head::parse(b"From: nobody\r\n\r\n").is_none());
    }

    #[test]
    fn signature_names_selector_domain_and_relaxed() {
        let k = Key::generate("sel", Algorithm::Ed25519, jiff::Timestamp::UNIX_EPOCH).unwrap();
        let m = b"Received: from x\r\nFrom: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n";
        let h = signature(&k, &Head::parse(m).unwrap(), m).unwrap();
        assert!(
            h.starts_with(
                "DKIM-Signature: v=1; a=ed25519-sha256; s=sel; d=example.com; c=relaxed/relaxed;"
            ),
            "{h}"
        );
        assert!(h.ends_with("\r\n"));
        let hl = h.to_ascii_lowercase();
        let h_tag: String = hl
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(h_tag, "subject:to:from");
    }

    #[test]
    fn alignment_is_same_parent_or_subdomain() {
        assert!(aligned("example.com", "a@Example.COM", "h.test"));
        assert!(aligned("example.com", "bounce@mail.example.com", "h.test"));
        assert!(aligned("mail.example.com", "a@example.com", "h.test"));
        assert!(aligned("h.test", "", "h.test"));
        assert!(!aligned("example.com", "a@badexample.com", "h.test"));
        assert!(!aligned("example.com", "a@other.example", "example.com"));
        assert!(!aligned("example.com", "", "h.test"));
        assert!(!aligned("example.com", "no-at-sign", "h.test"));
    }

    /// Every prefix of a message, and odd header shapes, sign or are
    /// skipped without a panic (release builds abort on one).
    #[test]
    fn truncated_and_odd_messages_do_not_panic() {
        let k = Key::generate("sel", Algorithm::Ed25519, jiff::Timestamp::UNIX_EPOCH).unwrap();
        let m: &[u8] = b"From: =?utf-8?b?w6k=?= <a@example.com>\r\nTo: b@x\r\n\tfolded\r\nSubject:\r\n\r\n.\r\nbody \t \r\n\r\n";
        let odd: [&[u8]; 5] = [
            b"From: a@b\n\nbare LF\n",
            b"From:a@b",
            b"From: a@b\r\n",
            b"\r\n\r\n",
            b"From: <@>\r\n\r\n",
        ];
        for msg in (0..=m.len()).map(|n| &m[..n]).chain(odd) {
            if let Some(h) = Head::parse(msg) {
                let _ = signature(&k, &h, msg);
            }
        }
    }
}
