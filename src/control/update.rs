//! A/B system updates (RAUC), the daemon's side. The daemon runs
//! unprivileged and jailed, so it never installs anything: it drops an
//! uploaded bundle into the spool `<data_dir>/update/` (written as
//! `incoming.raucb.part`, renamed to `incoming.raucb` once complete), and
//! the root-side agent of the appliance (`/usr/libexec/outguard/update-agent`)
//! has RAUC check the signature and install it into the other slot. The
//! agent reports in `/run/outguard/`: `update-status` (the last install)
//! and `update-slots` (booted slot and GRUB's slot state), both
//! `key=value` lines, read here for `GET /v1/system`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{Answer, Control};

/// Largest bundle accepted (a root slot is 64 MiB; today's bundles ~20).
pub const MAX_BUNDLE: usize = 64 * 1024 * 1024;
/// Where the appliance's update agent reports (root's directory).
const REPORT_DIR: &str = "/run/outguard";
const SPOOL: &str = "update";
const INCOMING: &str = "incoming.raucb";
/// Reports are a few lines; anything longer is not the agent's.
const MAX_REPORT: u64 = 16 * 1024;

/// True for the routes whose body may exceed the API's usual limit: the
/// API upload and the admin page's form.
pub fn is_upload(method: &Method, path: &str) -> bool {
    method == Method::POST && matches!(path.trim_end_matches('/'), "/v1/system/update" | "/update")
}

/// `GET /v1/system`: the slots, the version and the last update report.
#[cfg_attr(test, utoipa::path(get, tag = "system", path = "/v1/system",
    summary = "Running version, booted slot, slot states and the last update install",
    responses(
        (status = 200, description = "OK", body = System),
        crate::control::openapi::LoggedIn,
    )))]
pub(super) fn system(ctl: &Control) -> Answer {
    Answer::ok(status(&ctl.config.data_dir, Path::new(REPORT_DIR)))
}

/// A bundle is spooled for the update agent.
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct UpdateAccepted {
    accepted: bool,
    bytes: usize,
    message: &'static str,
}

/// `POST /v1/system/update`: spools the bundle for the update agent.
#[cfg_attr(test, utoipa::path(post, tag = "system", path = "/v1/system/update",
    summary = "Upload a signed RAUC bundle: the update agent checks its signature and installs it into the other slot (reboot to run it)",
    request_body(content = inline(crate::control::openapi::BinaryBody), content_type = "application/octet-stream"),
    responses(
        (status = 202, description = "Spooled for the update agent", body = UpdateAccepted),
        crate::control::openapi::Writes,
        (status = 409, description = "A bundle is already waiting for the update agent", body = crate::control::openapi::ErrorDoc),
        (status = 413, description = "Bundle over 64 MiB", body = crate::control::openapi::ErrorDoc),
        (status = 500, description = "The spool could not be written", body = crate::control::openapi::ErrorDoc),
    )))]
pub(super) fn upload(ctl: &Control, body: &[u8]) -> Result<Answer, Answer> {
    spool(&ctl.config.data_dir, body)?;
    Ok(Answer {
        status: StatusCode::ACCEPTED,
        body: json!(UpdateAccepted {
            accepted: true,
            bytes: body.len(),
            message: "the bundle is being checked and installed into the other slot; see GET /v1/system, then reboot",
        }),
    })
}

fn spool_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SPOOL)
}

/// Writes the bundle into the spool for the agent. Checks only what the
/// daemon can know (size, that it is a squashfs, as every RAUC bundle is);
/// the signature is RAUC's business, as root.
pub fn spool(data_dir: &Path, bundle: &[u8]) -> Result<(), Answer> {
    if bundle.is_empty() {
        return Err(Answer::error(
            StatusCode::BAD_REQUEST,
            "empty body: send the bundle file (application/octet-stream)",
        ));
    }
    if bundle.len() > MAX_BUNDLE {
        return Err(Answer::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("bundle over {MAX_BUNDLE} octets"),
        ));
    }
    if !bundle.starts_with(b"hsqs") {
        return Err(Answer::error(
            StatusCode::BAD_REQUEST,
            "not a RAUC bundle (no squashfs header)",
        ));
    }
    let dir = spool_dir(data_dir);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(internal(format!("{} is not a directory", dir.display()))),
        Err(_) => fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?,
    }
    let target = dir.join(INCOMING);
    if fs::symlink_metadata(&target).is_ok() {
        return Err(Answer::error(
            StatusCode::CONFLICT,
            "an uploaded bundle is waiting to be installed already; try again when GET /v1/system shows its outcome",
        ));
    }
    let part = dir.join(format!("{INCOMING}.part"));
    let _ = fs::remove_file(&part);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&part)
        .map_err(|e| internal(format!("cannot create {}: {e}", part.display())))?;
    f.write_all(bundle)
        .and_then(|()| f.sync_all())
        .map_err(|e| internal(format!("cannot write {}: {e}", part.display())))?;
    drop(f);
    fs::rename(&part, &target)
        .map_err(|e| internal(format!("cannot rename {}: {e}", part.display())))?;
    tracing::info!(
        bytes = bundle.len(),
        "update bundle received; the update agent installs it"
    );
    Ok(())
}

fn internal(msg: String) -> Answer {
    tracing::error!(error = %msg, "update spool failure");
    Answer::error(StatusCode::INTERNAL_SERVER_ERROR, msg)
}

/// `key=value` lines of a small report file (never following a symlink).
fn report(path: &Path) -> Option<Map<String, Value>> {
    use std::io::Read;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut text = String::new();
    f.take(MAX_REPORT).read_to_string(&mut text).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), Value::String(v.trim().to_string())))
            .collect(),
    )
}

/// Running version, booted slot, each slot's state and the last install.
pub fn status(data_dir: &Path, report_dir: &Path) -> Value {
    let slots = report(&report_dir.join("update-slots")).unwrap_or_default();
    let get = |k: &str| slots.get(k).and_then(Value::as_str).map(str::to_string);
    let booted = get("booted");
    let slot = |name: &str| {
        let ok = get(&format!("{name}_OK"));
        let tried = get(&format!("{name}_TRY"));
        let state = match (ok.as_deref(), tried.as_deref()) {
            (None, _) => SlotState::Unknown,
            (Some("1"), Some("1")) => SlotState::OnTrial,
            (Some("1"), _) => SlotState::Good,
            _ => SlotState::BadOrEmpty,
        };
        Slot {
            state,
            booted: booted.as_deref() == Some(name),
        }
    };
    let order = get("ORDER");
    json!(System {
        version: env!("CARGO_PKG_VERSION"),
        os_version: os_version(),
        slots: Slots {
            a: slot("A"),
            b: slot("B"),
        },
        booted_slot: booted,
        boot_order: order,
        last_install: report(&report_dir.join("update-status")),
        update_waiting: fs::symlink_metadata(spool_dir(data_dir).join(INCOMING)).is_ok(),
    })
}

/// Running version and the A/B slots (RAUC); slot state and the last
/// install come from the appliance's update agent (null or unknown
/// elsewhere).
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct System {
    /// The daemon's version
    version: &'static str,
    /// VERSION_ID of /etc/os-release (the image)
    #[cfg_attr(test, schema(required = true))]
    os_version: Option<String>,
    /// A or B
    #[cfg_attr(test, schema(required = true))]
    booted_slot: Option<String>,
    /// GRUB's ORDER, e.g. "B A"
    #[cfg_attr(test, schema(required = true))]
    boot_order: Option<String>,
    slots: Slots,
    #[cfg_attr(test, schema(required = true, schema_with = crate::control::openapi::last_install))]
    last_install: Option<serde_json::Map<String, Value>>,
    /// An uploaded bundle waits for the update agent
    update_waiting: bool,
}

#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct Slots {
    #[serde(rename = "A")]
    a: Slot,
    #[serde(rename = "B")]
    b: Slot,
}

#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
struct Slot {
    state: SlotState,
    booted: bool,
}

#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
enum SlotState {
    #[serde(rename = "good")]
    Good,
    #[serde(rename = "on trial")]
    OnTrial,
    #[serde(rename = "bad or empty")]
    BadOrEmpty,
    #[serde(rename = "unknown")]
    Unknown,
}

/// VERSION_ID of /etc/os-release (the image's version, with its git commit).
fn os_version() -> Option<String> {
    let text = fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .map(|v| v.trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private directory removed afterwards.
    struct Tmp(PathBuf);
    impl Tmp {
        fn new() -> Tmp {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "outguard-update-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir(&p).unwrap();
            Tmp(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn spool_accepts_a_bundle_once_and_refuses_other_files() {
        let dir = Tmp::new();
        let e = spool(dir.path(), b"").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = spool(dir.path(), b"#!/bin/sh\n").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(spool(dir.path(), b"hsqs bundle").is_ok());
        let stored = fs::read(dir.path().join("update/incoming.raucb")).unwrap();
        assert_eq!(stored, b"hsqs bundle");
        let e = spool(dir.path(), b"hsqs another").unwrap_err();
        assert_eq!(e.status, StatusCode::CONFLICT);
    }

    #[test]
    fn spool_does_not_follow_a_symlinked_part_file() {
        let dir = Tmp::new();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        fs::create_dir(dir.path().join("update")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("update/incoming.raucb.part")).unwrap();
        assert!(spool(dir.path(), b"hsqs bundle").is_ok());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn status_reads_the_agent_reports() {
        let data = Tmp::new();
        let run = Tmp::new();
        let v = status(data.path(), run.path());
        assert_eq!(v["slots"]["A"]["state"], "unknown");
        assert!(v["last_install"].is_null());
        fs::write(
            run.path().join("update-slots"),
            "booted=B\nORDER=B A\nA_OK=0\nA_TRY=0\nB_OK=1\nB_TRY=0\n",
        )
        .unwrap();
        fs::write(
            run.path().join("update-status"),
            "state=installed\nversion=1.2.3\nmessage=ok\n",
        )
        .unwrap();
        let v = status(data.path(), run.path());
        assert_eq!(v["booted_slot"], "B");
        assert_eq!(v["slots"]["B"]["state"], "good");
        assert_eq!(v["slots"]["B"]["booted"], true);
        assert_eq!(v["slots"]["A"]["state"], "bad or empty");
        assert_eq!(v["last_install"]["version"], "1.2.3");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    }
}
