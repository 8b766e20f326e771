//! The update page: running version, A/B slots, the last install, and the
//! upload of a signed RAUC bundle (handed to the update agent through
//! `POST /v1/system/update`, like the CLI and API clients).

use hyper::{Method, StatusCode};
use maud::html;
use serde_json::Value;

use super::{Ctx, cell, error_text, ok};
use crate::admin::html::csrf_field;
use crate::admin::server::Resp;

/// "Outguard 0.1.0 (image 0.1.0+gabc), slot B" for the dashboard.
pub fn summary(v: &Value) -> String {
    format!(
        "Outguard {} (image {}), running from slot {}",
        cell(&v["version"]),
        cell(&v["os_version"]),
        cell(&v["booted_slot"])
    )
}

pub fn page(c: &Ctx, error: Option<&str>) -> Resp {
    let a = c.get("/v1/system");
    if !ok(&a) {
        return c.failed("Update", "/update", &a, "/dashboard");
    }
    let v = &a.body;
    let slot = |s: &str| {
        let booted = v["slots"][s]["booted"].as_bool() == Some(true);
        html! {
            tr {
                th { "Slot " (s) }
                td id={ "slot-" (s.to_lowercase()) } {
                    (cell(&v["slots"][s]["state"]))
                    @if booted { " (booted)" }
                }
            }
        }
    };
    let last = match v["last_install"].as_object() {
        Some(li) => format!(
            "{} {} at {}: {}",
            cell(li.get("state").unwrap_or(&Value::Null)),
            cell(li.get("version").unwrap_or(&Value::Null)),
            cell(li.get("time").unwrap_or(&Value::Null)),
            cell(li.get("message").unwrap_or(&Value::Null))
        ),
        None => "none since this boot".into(),
    };
    let body = html! {
        p #version { (summary(v)) }
        table {
            tr { th { "Boot order" } td { (cell(&v["boot_order"])) } }
            (slot("A"))
            (slot("B"))
            tr { th { "Last install" } td #last-install { (last) } }
        }
        form method="post" action="/update" enctype="multipart/form-data" {
            (csrf_field(c.csrf()))
            fieldset {
                legend { "Install an update" }
                label {
                    "Signed bundle (.raucb)"
                    input type="file" name="bundle" accept=".raucb";
                }
                p.hint { "The appliance checks the bundle's signature and installs it into the slot not running now; reboot to run it. If the new version's daemon does not answer SMTP after the reboot, the appliance goes back to this one." }
            }
            p.actions { button type="submit" { "Upload and install" } }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    c.render_with(status, "Update", "/update", error, body)
}

pub fn upload(c: &Ctx) -> Resp {
    let bundle = c.form.and_then(|f| f.bytes("bundle")).unwrap_or_default();
    let a = c.call(Method::POST, "/v1/system/update", bundle);
    if !ok(&a) {
        return page(c, Some(&error_text(&a)));
    }
    c.done(
        "Bundle received: it is being checked and installed (this page shows the outcome).",
        "/update",
    )
}
