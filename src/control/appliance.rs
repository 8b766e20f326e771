//! The appliance routes of the control API (socket and HTTPS):
//! `GET /v1/appliance` (clock state, NTP servers, a pending reset),
//! `PUT /v1/appliance/ntp` and `POST /v1/appliance/factory-reset`.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::routes::{bad, internal, json_body, out_of_range};
use super::{Answer, Control};
use crate::appliance::{clock, ntp, reset};

type Res = Result<Answer, Answer>;

pub(super) fn status(ctl: &Control) -> Res {
    let data = &ctl.data;
    Ok(Answer::ok(json!({
        "hostname": ctl.app.hostname,
        "clock": clock::state(),
        "ntp_servers": ntp::load(data).map_err(internal)?,
        "factory_reset_pending": reset::pending(data),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ntp {
    servers: Vec<String>,
}

pub(super) fn set_ntp(ctl: &Control, body: &[u8]) -> Res {
    let req: Ntp = json_body(body)?;
    let servers: Vec<String> = req.servers.iter().map(|s| s.trim().to_string()).collect();
    ntp::check_all(&servers).map_err(out_of_range)?;
    ntp::save(&ctl.data, &servers).map_err(internal)?;
    tracing::info!(servers = %servers.join(" "), "NTP servers set");
    Ok(Answer::ok(json!({ "ntp_servers": servers })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    /// The appliance's hostname, typed to confirm.
    confirm: String,
}

pub(super) fn factory_reset(ctl: &Control, body: &[u8]) -> Res {
    let req: Reset = json_body(body)?;
    let host = &ctl.app.hostname;
    match reset::request(&ctl.data, host, &req.confirm, "control API") {
        Ok(Ok(())) => Ok(Answer {
            status: StatusCode::ACCEPTED,
            body: json!({
                "status": "factory reset requested: the appliance wipes its data and reboots"
            }),
        }),
        Ok(Err(reset::Refused::Unconfirmed)) => Err(bad(format!(
            "confirm must be this appliance's hostname ({host}); nothing was reset"
        ))),
        Err(e) => Err(internal(e)),
    }
}
