//! HTML building: every piece of data goes through `esc`, and pages share
//! one layout (navigation, flash message, logout form).

use std::fmt::Write as _;

/// Escapes text for HTML content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment or query value (user names hold '@',
/// '/' for networks and ':' for IPv6).
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

pub fn csrf_field(token: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(token)
    )
}

/// A one-button form posting to `action` (no JavaScript needed).
pub fn button(action: &str, label: &str, csrf: &str, class: &str) -> String {
    format!(
        r#"<form method="post" action="{}" class="inline">{}<button type="submit" class="{}">{}</button></form>"#,
        esc(action),
        csrf_field(csrf),
        esc(class),
        esc(label)
    )
}

const NAV: [(&str, &str); 12] = [
    ("/dashboard", "Dashboard"),
    ("/users", "Outgoing users"),
    ("/incoming", "Incoming"),
    ("/queue", "Queue"),
    ("/quarantine", "Quarantine"),
    ("/settings", "Settings"),
    ("/tls", "Certificate"),
    ("/dkim", "DKIM"),
    ("/appliance", "Appliance"),
    ("/update", "Update"),
    ("/audit", "Audit"),
    ("/logs", "Logs"),
];

pub struct Flash<'a> {
    pub text: &'a str,
    pub error: bool,
}

/// A whole page. `csrf` is `None` on the login page (no session).
pub fn layout(
    title: &str,
    active: &str,
    csrf: Option<&str>,
    flash: Option<Flash<'_>>,
    body: &str,
) -> String {
    let mut nav = String::new();
    if let Some(token) = csrf {
        nav.push_str("<nav><span class=\"brand\">Outguard</span>");
        for (href, label) in NAV {
            let cls = if href == active { " class=\"on\"" } else { "" };
            let _ = write!(nav, r#"<a href="{href}"{cls}>{label}</a>"#);
        }
        nav.push_str(&button("/logout", "Log out", token, "link"));
        nav.push_str("</nav>");
    }
    let flash = flash
        .map(|f| {
            format!(
                r#"<p class="flash{}" role="status">{}</p>"#,
                if f.error { " error" } else { "" },
                esc(f.text)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · Outguard</title>
<link rel="stylesheet" href="/style.css">
</head><body>{nav}<main><h1>{}</h1>{flash}{body}</main></body></html>
"#,
        esc(title),
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(
            esc(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(seg("10.0.0.0/24"), "10.0.0.0%2F24");
        assert_eq!(seg("a@b.c"), "a%40b.c");
        let page = layout("<t>", "/users", Some("\"tok"), None, "");
        assert!(page.contains("&lt;t&gt;"));
        assert!(page.contains("value=\"&quot;tok\""));
        assert!(!page.contains("<t>"));
    }
}
