//! The appliance routes of the control API (socket and HTTPS):
//! `GET /v1/appliance` (clock state, NTP servers, a pending reset),
//! `PUT /v1/appliance/ntp` and `POST /v1/appliance/factory-reset`.

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::routes::{bad, internal, json_body, out_of_range};
use super::{Answer, Control};
use crate::appliance::{clock, ntp, reset};

type Res = Result<Answer, Answer>;

#[cfg_attr(test, utoipa::path(get, tag = "appliance", path = "/v1/appliance",
    summary = "Clock synchronisation, NTP servers, a pending factory reset",
    responses(
        (status = 200, description = "State", body = Appliance),
        crate::control::openapi::LoggedIn,
    )))]
pub(super) fn status(ctl: &Control) -> Res {
    let data = &ctl.data;
    Ok(Answer::ok(json!(Appliance {
        hostname: &ctl.app.hostname,
        clock: clock::state(),
        ntp_servers: ntp::load(data).map_err(internal)?,
        factory_reset_pending: reset::pending(data),
    })))
}

/// The appliance's state (`GET /v1/appliance`).
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct Appliance<'a> {
    hostname: &'a str,
    /// The kernel's clock state (adjtimex); null where it cannot be read
    #[cfg_attr(test, schema(schema_with = crate::control::openapi::clock_state, required = true))]
    clock: Option<clock::ClockState>,
    /// Set on the admin page; empty: the provisioned servers apply
    ntp_servers: Vec<String>,
    factory_reset_pending: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct Ntp {
    #[cfg_attr(test, schema(schema_with = crate::control::openapi::ntp_servers))]
    servers: Vec<String>,
}

/// The NTP servers now set.
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct NtpServers {
    ntp_servers: Vec<String>,
}

/// A factory reset is requested.
#[derive(Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct ResetRequested {
    status: &'static str,
}

#[cfg_attr(test, utoipa::path(put, tag = "appliance", path = "/v1/appliance/ntp",
    summary = "Set the NTP servers (empty: the provisioned ones apply)",
    request_body(content = Ntp),
    responses(
        (status = 200, description = "Saved", body = NtpServers),
        crate::control::openapi::Writes,
        (status = 422, description = "A server is not a host name or address, or more than 8", body = crate::control::openapi::ErrorDoc),
    )))]
pub(super) fn set_ntp(ctl: &Control, body: &[u8]) -> Res {
    let req: Ntp = json_body(body)?;
    let servers: Vec<String> = req.servers.iter().map(|s| s.trim().to_string()).collect();
    ntp::check_all(&servers).map_err(out_of_range)?;
    ntp::save(&ctl.data, &servers).map_err(internal)?;
    tracing::info!(servers = %servers.join(" "), "NTP servers set");
    Ok(Answer::ok(json!(NtpServers {
        ntp_servers: servers
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct Reset {
    /// The appliance's hostname
    confirm: String,
}

#[cfg_attr(test, utoipa::path(post, tag = "appliance", path = "/v1/appliance/factory-reset",
    summary = "Factory reset: wipe all data and reboot (confirmed with the hostname)",
    request_body(content = Reset),
    responses(
        (status = 202, description = "Requested: the appliance's root side wipes /data and reboots", body = ResetRequested),
        (status = 400, description = "Bad input, or the confirmation is not the hostname (nothing was reset)", body = crate::control::openapi::ErrorDoc),
        (status = 401, description = "Not logged in (HTTPS face)", body = crate::control::openapi::ErrorDoc),
        (status = 403, description = "Missing or wrong X-CSRF-Token (HTTPS face), or forbidden", body = crate::control::openapi::ErrorDoc),
    )))]
pub(super) fn factory_reset(ctl: &Control, body: &[u8]) -> Res {
    let req: Reset = json_body(body)?;
    let host = &ctl.app.hostname;
    match reset::request(&ctl.data, host, &req.confirm, "control API") {
        Ok(Ok(())) => Ok(Answer {
            status: StatusCode::ACCEPTED,
            body: json!(ResetRequested {
                status: "factory reset requested: the appliance wipes its data and reboots"
            }),
        }),
        Ok(Err(reset::Refused::Unconfirmed)) => Err(bad(format!(
            "confirm must be this appliance's hostname ({host}); nothing was reset"
        ))),
        Err(e) => Err(internal(e)),
    }
}
