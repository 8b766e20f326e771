//! Decoding of the SASL exchanges offered in SMTP AUTH: PLAIN (RFC 4616)
//! and LOGIN (draft-murchison-sasl-login). Only decoding lives here; the
//! session drives the challenge/response turns.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A client's response to a challenge, as sent on its own line.
#[derive(Debug, PartialEq, Eq)]
pub enum Response {
    /// `*`: the client gave up (RFC 4954: answer 501).
    Cancel,
    Data(Vec<u8>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum SaslError {
    /// Not valid base64.
    Base64,
    /// Decoded, but not the shape the mechanism requires.
    Malformed(&'static str),
}

/// Decodes one response line (`=` is an empty initial response).
pub fn decode(line: &[u8]) -> Result<Response, SaslError> {
    let line = line.trim_ascii();
    if line == b"*" {
        return Ok(Response::Cancel);
    }
    if line == b"=" {
        return Ok(Response::Data(Vec::new()));
    }
    STANDARD
        .decode(line)
        .map(Response::Data)
        .map_err(|_| SaslError::Base64)
}

/// Credentials from `authzid NUL authcid NUL passwd`. An authorisation
/// identity other than the authentication identity is refused: users may
/// not act for each other.
pub fn plain(msg: &[u8]) -> Result<(String, String), SaslError> {
    let mut parts = msg.split(|&b| b == 0);
    let (Some(authz), Some(authc), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed(
            "PLAIN needs authzid NUL authcid NUL password",
        ));
    };
    let text =
        |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Malformed("not UTF-8"));
    let (authz, authc, pass) = (text(authz)?, text(authc)?, text(pass)?);
    if authc.is_empty() {
        return Err(SaslError::Malformed("empty user name"));
    }
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(&authc) {
        return Err(SaslError::Malformed("authorisation identity differs"));
    }
    Ok((authc, pass))
}

/// A LOGIN step (user name or password): UTF-8 without NUL.
pub fn login_field(msg: &[u8]) -> Result<String, SaslError> {
    if msg.contains(&0) {
        return Err(SaslError::Malformed("NUL in LOGIN field"));
    }
    String::from_utf8(msg.to_vec()).map_err(|_| SaslError::Malformed("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_forms() {
        let Response::Data(d) = decode(b"AGFAYi5jAHB3").unwrap() else {
            panic!()
        };
        assert_eq!(plain(&d).unwrap(), ("a@b.c".into(), "pw".into()));
        assert_eq!(decode(b"*").unwrap(), Response::Cancel);
        assert_eq!(decode(b"!!!"), Err(SaslError::Base64));
        assert!(plain(b"x\0a@b.c\0pw").is_err());
        assert!(plain(b"\0a@b.c").is_err());
        assert!(plain(b"\0\0pw").is_err());
    }
}
