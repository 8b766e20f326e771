//! The DKIM page: each sender domain's keys with the DNS TXT records to
//! publish, and the forms for generate, rotate, activate and delete.

use hyper::Method;
use maud::html;
use serde_json::{Value, json};

use super::{Ctx, cell, items, ok};
use crate::admin::html::{button, csrf_field, seg};
use crate::admin::server::Resp;

const ACTIVE: &str = "/dkim";

/// One page of the domains with keys, in domain order (`?after=` is the
/// API's cursor).
pub fn page(c: &Ctx) -> Resp {
    let a = c.get_page("/v1/dkim");
    if !ok(&a) {
        return c.failed("DKIM", ACTIVE, &a, "/dashboard");
    }
    let csrf = c.csrf();
    let roles = [
        ("active", "signing now"),
        ("next", "publish this record, then activate"),
        ("retired", "remove this record, then delete the key"),
    ];
    let row = |d: &Value| {
        let domain = cell(&d["domain"]);
        let base = format!("/dkim/{}", seg(&domain));
        let keys: Vec<_> = roles
            .iter()
            .filter(|(role, _)| !d[*role].is_null())
            .map(|(role, note)| (*role, *note, &d[*role]))
            .collect();
        html! {
            tr {
                td { (domain) }
                td {
                    @for (role, note, k) in &keys {
                        p {
                            strong { (role) }
                            " (" (cell(&k["selector"])) ", " (cell(&k["algorithm"])) "): " (note)
                        }
                        pre.dkim-record { (cell(&k["zone"])) }
                    }
                }
                td {
                    @for (role, _, k) in &keys {
                        @if *role != "active" {
                            (button(
                                &format!("{base}/delete?selector={}", seg(&cell(&k["selector"]))),
                                &format!("Delete {role} key"),
                                csrf,
                                "danger small",
                            ))
                        }
                    }
                    @if d["next"].is_null() {
                        (button(&format!("{base}/rotate"), "Rotate (generate next)", csrf, "small"))
                    } @else {
                        (button(&format!("{base}/activate"), "Activate next key", csrf, "small"))
                    }
                    (button(&format!("{base}/delete"), "Delete all keys", csrf, "danger small"))
                }
            }
        }
    };
    let body = html! {
        p { "Mail whose From: domain has a key is DKIM-signed (relaxed/relaxed) when it is delivered. Publish each record in the domain's DNS. To rotate: generate the next key, publish its record, wait for the DNS TTL, activate it; remove the retired record later." }
        form method="post" action="/dkim" .toolbar {
            (csrf_field(csrf))
            label { "Domain" input type="text" name="domain" #dkim-domain required; }
            " "
            label {
                "Algorithm"
                select name="algorithm" #dkim-algorithm {
                    option value="ed25519" { "Ed25519" }
                    option value="rsa" { "RSA-2048" }
                }
            }
            " "
            label { "Selector" input type="text" name="selector" #dkim-selector placeholder="outguard1"; }
            " "
            button type="submit" #dkim-generate { "Generate key" }
        }
        table #dkim {
            thead { tr { th { "Domain" } th { "DNS records" } th {} } }
            tbody {
                @for d in items(&a) {
                    (row(d))
                }
            }
        }
        (c.pager(ACTIVE, &a))
        p.hint { "Ed25519 (RFC 8463) keys are short; not every receiver checks them yet. RSA-2048 is understood everywhere; its record is split into 255-octet strings as DNS requires." }
    };
    c.render("DKIM signing keys", ACTIVE, body)
}

pub fn generate(c: &Ctx) -> Resp {
    let domain = c.field("domain").unwrap_or("").trim().to_string();
    let mut req = serde_json::Map::new();
    for k in ["algorithm", "selector"] {
        if let Some(v) = c.field(k).map(str::trim).filter(|v| !v.is_empty()) {
            req.insert(k.into(), json!(v));
        }
    }
    let a = c.send(
        Method::POST,
        &format!("/v1/dkim/{}", seg(&domain)),
        &Value::Object(req),
    );
    if !ok(&a) {
        return c.failed("DKIM", ACTIVE, &a, ACTIVE);
    }
    c.done(
        format!(
            "Key generated for {}; publish its record.",
            cell(&a.body["domain"])
        ),
        ACTIVE,
    )
}

/// rotate, activate, or delete (all keys, or `?selector=` one).
pub fn action(c: &Ctx, domain: &str, action: &str) -> Resp {
    let base = format!("/v1/dkim/{}", seg(domain));
    let a = match action {
        "rotate" => c.send(Method::POST, &format!("{base}/rotate"), &json!({})),
        "activate" => c.call(Method::POST, &format!("{base}/activate"), b""),
        _ => {
            let q = c.query();
            let uri = match q.text("selector") {
                Some(s) => format!("{base}?selector={}", seg(s)),
                None => base,
            };
            c.call(Method::DELETE, &uri, b"")
        }
    };
    if !ok(&a) {
        return c.failed("DKIM", ACTIVE, &a, ACTIVE);
    }
    let msg = match action {
        "rotate" => "Next key generated; publish its record, then activate it.",
        "activate" => "Next key activated; mail is signed with it from now on.",
        _ => "Deleted.",
    };
    c.done(msg, ACTIVE)
}
