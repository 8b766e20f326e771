//! HTML building with maud: the `html!` templates escape every value they
//! insert (text and attributes alike) and are checked when compiled, and
//! pages share one layout (navigation, flash message, logout form).

use std::fmt::Write as _;

use maud::{DOCTYPE, Markup, html};

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

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A one-button form posting to `action` (no JavaScript needed).
pub fn button(action: &str, label: &str, csrf: &str, class: &str) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            (csrf_field(csrf))
            button type="submit" class=(class) { (label) }
        }
    }
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
pub fn page(
    title: &str,
    active: &str,
    csrf: Option<&str>,
    flash: Option<Flash<'_>>,
    body: Markup,
) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Outguard" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                @if let Some(token) = csrf {
                    nav {
                        span.brand { "Outguard" }
                        @for (href, label) in NAV {
                            a href=(href) class=[(href == active).then_some("on")] { (label) }
                        }
                        (button("/logout", "Log out", token, "link"))
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(f) = flash {
                        p.flash.error[f.error] role="status" { (f.text) }
                    }
                    (body)
                }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(seg("10.0.0.0/24"), "10.0.0.0%2F24");
        assert_eq!(seg("a@b.c"), "a%40b.c");
        let flash = Flash {
            text: "<script>alert(1)</script>",
            error: true,
        };
        let body = button("/x\"><script>", "<b>", "\"tok", "a\"b");
        let page = page("<t>", "/users", Some("\"tok"), Some(flash), body);
        assert!(page.contains("<title>&lt;t&gt; · Outguard</title>"));
        assert!(page.contains("<h1>&lt;t&gt;</h1>"));
        assert!(page.contains("value=\"&quot;tok\""));
        assert!(page.contains("action=\"/x&quot;&gt;&lt;script&gt;\""));
        assert!(page.contains("class=\"a&quot;b\">&lt;b&gt;</button>"));
        assert!(page.contains(
            "<p class=\"flash error\" role=\"status\">&lt;script&gt;alert(1)&lt;/script&gt;</p>"
        ));
        assert!(page.contains("<a href=\"/users\" class=\"on\">Outgoing users</a>"));
        assert!(!page.contains("<t>") && !page.contains("<script>"));
    }
}
