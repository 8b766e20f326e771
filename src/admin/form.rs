//! Reading what browsers post: `application/x-www-form-urlencoded` and
//! `multipart/form-data` (for the CSV upload), into name/value pairs.

use crate::control::routes::unescape;

pub struct Form(pub Vec<(String, Vec<u8>)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A trimmed, non-empty text field.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|s| !s.is_empty())
    }

    pub fn parse(content_type: &str, body: &[u8]) -> Result<Form, String> {
        let ct = content_type.to_ascii_lowercase();
        if ct.starts_with("multipart/form-data") {
            let boundary = content_type
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
                .map(|(_, v)| v.trim_matches('"').to_string())
                .ok_or("multipart form without a boundary")?;
            multipart(body, &boundary)
        } else {
            Ok(urlencoded(body))
        }
    }
}

pub fn urlencoded(body: &[u8]) -> Form {
    let text = String::from_utf8_lossy(body);
    Form(
        text.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (unescape(k, true), unescape(v, true).into_bytes())
            })
            .collect(),
    )
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// RFC 7578: parts separated by `--boundary`, each with headers, a blank
/// line and the content.
fn multipart(body: &[u8], boundary: &str) -> Result<Form, String> {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut pos = find(body, delim.as_bytes(), 0).ok_or("multipart body without its boundary")?;
    loop {
        pos += delim.len();
        if body.get(pos..pos + 2) == Some(b"--") {
            break;
        }
        let head_start = pos + 2;
        let head_end =
            find(body, b"\r\n\r\n", head_start).ok_or("multipart part without headers")?;
        let headers = String::from_utf8_lossy(&body[head_start..head_end]);
        let next = find(body, format!("\r\n{delim}").as_bytes(), head_end)
            .ok_or("multipart part without an end")?;
        let name = headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .and_then(|l| {
                l.split(';').find_map(|p| {
                    let (k, v) = p.trim().split_once('=')?;
                    (k == "name").then(|| v.trim_matches('"').to_string())
                })
            })
            .ok_or("multipart part without a name")?;
        out.push((name, body[head_end + 4..next].to_vec()));
        pos = next + 2;
    }
    Ok(Form(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings() {
        let f = urlencoded(b"name=a%40b.c&limit_per_day=5&x=a+b");
        assert_eq!(f.get("name"), Some("a@b.c"));
        assert_eq!(f.get("x"), Some("a b"));
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"u.csv\"\r\n\
Content-Type: text/csv\r\n\r\na,b.c,secret12\r\nd,e.f,secret34\n\r\n--XyZ--\r\n";
        let f = Form::parse("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(f.get("csrf"), Some("tok"));
        assert_eq!(f.get("file"), Some("a,b.c,secret12\r\nd,e.f,secret34\n"));
        assert!(Form::parse("multipart/form-data; boundary=Q", body).is_err());
    }
}
