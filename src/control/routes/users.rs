//! `/v1/users`: outgoing users, their locks, CSV imports (with preview)
//! and the CSV export.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Res, bad, flag, internal, json_body, not_found, out_of_range, refuse_invalid_lines};
use crate::auth::password;
use crate::bounds;
use crate::control::{Answer, Control, views};
use crate::import::{self, check_password};
use crate::users::spec::USER_SETTINGS;
use crate::users::{LockState, User, UserName, UserSettings, spec};

pub(crate) fn canonical(name: &str) -> Result<String, Answer> {
    UserName::parse(name).map(|n| n.to_string()).map_err(bad)
}

pub(crate) fn view(ctl: &Control, u: &User) -> Result<Value, Answer> {
    let now = ctl.app.clock.now();
    ctl.app
        .settings
        .read(|c| views::user(u, &ctl.app.store, c, now))
        .map_err(internal)
}

/// `GET /v1/users`: one page of users in name order (`paging`), those
/// whose name contains `filter` and whose lock state is `status`.
#[cfg_attr(test, utoipa::path(get, tag = "users", path = "/v1/users",
    summary = "List outgoing users",
    description = "One page, in name order; a filtered page may hold fewer than limit items (a page looks at no more than 10,000 rows): follow next until it is null.",
    params(
        ("filter" = Option<String>, Query, description = "Only names containing this", nullable = false),
        ("status" = inline(Option<crate::control::openapi::UserStatus>), Query, description = "Lock state: locked is either kind of lock", nullable = false),
        crate::control::openapi::Paging,
    ),
    responses(
        (status = 200, description = "Users", body = super::paging::Paged<crate::control::views::UserView>),
        crate::control::openapi::Reads,
    )))]
pub(crate) fn list_users(ctl: &Control, q: &[(String, String)]) -> Res {
    let want = super::paging::want(q)?;
    let filter = q
        .iter()
        .find(|(k, _)| k == "filter")
        .map(|(_, v)| v.to_ascii_lowercase());
    let status = q
        .iter()
        .find(|(k, _)| k == "status")
        .map(|(_, v)| v.as_str())
        .filter(|s| !s.is_empty());
    const STATUSES: [&str; 4] = ["active", "locked", "locked_until", "locked_until_admin"];
    if let Some(s) = status
        && !STATUSES.contains(&s)
    {
        return Err(bad(format!(
            "status must be one of {}, not '{s}'",
            STATUSES.join(", ")
        )));
    }
    let now = ctl.app.clock.now();
    let keep = |u: &User| {
        if filter
            .as_ref()
            .is_some_and(|f| !u.name.contains(f.as_str()))
        {
            return false;
        }
        let lock = u.lock.in_force(now);
        match status {
            None => true,
            Some("active") => lock.is_none(),
            Some("locked") => lock.is_some(),
            Some("locked_until") => matches!(lock, Some(LockState::LockedUntil { .. })),
            Some(_) => matches!(lock, Some(LockState::LockedByAdmin { .. })),
        }
    };
    let page = ctl
        .app
        .store
        .users_page(want.after.as_deref(), want.limit, keep)
        .map_err(internal)?;
    super::paging::named(page, |u| view(ctl, u))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) struct NewUser {
    /// user@domain, or an IP address or network
    name: String,
    /// At least 8 characters; blank or absent only for IP address users
    #[serde(default)]
    password: Option<String>,
    /// For IP address users: the domain they may send from
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    settings: UserSettings,
}

#[cfg_attr(test, utoipa::path(post, tag = "users", path = "/v1/users",
    summary = "Add an outgoing user ('Add outgoing user')",
    request_body = NewUser,
    responses(
        (status = 201, description = "Added", body = crate::control::views::UserView),
        crate::control::openapi::Writes, crate::control::openapi::Conflict, crate::control::openapi::OutOfRange,
    )))]
pub(crate) fn add_user(ctl: &Control, body: &[u8]) -> Res {
    let req: NewUser = json_body(body)?;
    let name = UserName::parse(&req.name).map_err(bad)?;
    let password = req.password.filter(|p| !p.is_empty());
    let domain = match (&name, req.domain.filter(|d| !d.is_empty())) {
        (UserName::Address { .. }, Some(_)) => {
            return Err(bad(
                "domain is only for IP address users; it is part of user@domain",
            ));
        }
        (_, Some(d)) => Some(crate::users::validate_domain(&d).map_err(bad)?),
        (_, None) => None,
    };
    match (&name, &password) {
        (UserName::Network(_), Some(_)) => {
            return Err(bad("an IP address user has no password (leave it blank)"));
        }
        (UserName::Address { .. }, None) => {
            return Err(bad(
                "password is required: only IP address users may have a blank password",
            ));
        }
        (_, Some(p)) => check_password(p).map_err(bad)?,
        _ => {}
    }
    req.settings.check_ranges().map_err(out_of_range)?;
    let now = ctl.app.clock.now();
    let mut user = User::new(&name, domain, now);
    user.password_hash = password.as_deref().map(password::hash);
    user.settings = req.settings;
    user.record(now, "created");
    if !ctl.app.store.add_user(&user).map_err(internal)? {
        return Err(Answer::error(
            StatusCode::CONFLICT,
            format!("user {name} already exists"),
        ));
    }
    tracing::info!(user = %name, "user added");
    Ok(Answer {
        status: StatusCode::CREATED,
        body: view(ctl, &user)?,
    })
}

#[cfg_attr(test, utoipa::path(get, tag = "users", path = "/v1/users/{name}",
    summary = "One user",
    params(("name" = String, Path, description = "user@domain or IP address/network, percent-encoded ('/' as %2F)")),
    responses(
        (status = 200, description = "User", body = crate::control::views::UserView),
        crate::control::openapi::Reads, crate::control::openapi::Missing,
    )))]
pub(crate) fn show_user(ctl: &Control, name: &str) -> Res {
    let name = canonical(name)?;
    let u = ctl
        .app
        .store
        .user(&name)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no user {name}")))?;
    Ok(Answer::ok(view(ctl, &u)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) struct EditUser {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    settings: UserSettings,
    /// Settings to reset to the system default
    #[serde(default)]
    #[cfg_attr(test, schema(schema_with = crate::control::openapi::clear))]
    clear: Vec<String>,
}

#[cfg_attr(test, utoipa::path(patch, tag = "users", path = "/v1/users/{name}",
    summary = "Change a user's password or settings",
    params(("name" = String, Path, description = "user@domain or IP address/network, percent-encoded ('/' as %2F)")),
    request_body = Option<EditUser>,
    responses(
        (status = 200, description = "Changed", body = crate::control::views::UserView),
        crate::control::openapi::Writes, crate::control::openapi::Missing, crate::control::openapi::OutOfRange,
    )))]
pub(crate) fn edit_user(ctl: &Control, name: &str, body: &[u8]) -> Res {
    let name = canonical(name)?;
    let req: EditUser = json_body(body)?;
    req.settings.check_ranges().map_err(out_of_range)?;
    let is_network = matches!(UserName::parse(&name), Ok(UserName::Network(_)));
    if let Some(p) = &req.password {
        if is_network {
            return Err(bad("an IP address user has no password"));
        }
        check_password(p).map_err(bad)?;
    }
    for field in &req.clear {
        if spec::find(field).is_none() {
            return Err(bad(format!(
                "unknown setting '{field}'; one of: {}",
                spec::names()
            )));
        }
    }
    let hash = req.password.as_deref().map(password::hash);
    let now = ctl.app.clock.now();
    let updated = ctl
        .app
        .store
        .update_user(&name, |u| {
            u.settings.merge(&req.settings);
            let mut s = serde_json::to_value(&u.settings).unwrap_or(Value::Null);
            for field in &req.clear {
                s[field.as_str()] = Value::Null;
            }
            if let Ok(s) = serde_json::from_value(s) {
                u.settings = s;
            }
            if let Some(h) = hash {
                u.password_hash = Some(h);
                u.record(now, "password changed");
            }
            u.record(now, "settings edited");
        })
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no user {name}")))?;
    Ok(Answer::ok(view(ctl, &updated)?))
}

#[cfg_attr(test, utoipa::path(delete, tag = "users", path = "/v1/users/{name}",
    summary = "Delete a user and its counters",
    params(("name" = String, Path, description = "user@domain or IP address/network, percent-encoded ('/' as %2F)")),
    responses(
        (status = 200, description = "Deleted", body = super::Deleted),
        crate::control::openapi::Writes, crate::control::openapi::Missing,
    )))]
pub(crate) fn delete_user(ctl: &Control, name: &str) -> Res {
    let name = canonical(name)?;
    if !ctl.app.store.delete_user(&name).map_err(internal)? {
        return Err(not_found(format!("no user {name}")));
    }
    tracing::info!(user = %name, "user deleted");
    Ok(Answer::ok(json!(super::Deleted { deleted: name })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) struct LockRequest {
    /// Absent: locked until an admin unlocks
    #[cfg_attr(test, schema(schema_with = crate::control::openapi::lock_minutes))]
    minutes: Option<u32>,
    reason: Option<String>,
}

#[cfg_attr(test, utoipa::path(post, tag = "users", path = "/v1/users/{name}/lock",
    summary = "Lock a user",
    params(("name" = String, Path, description = "user@domain or IP address/network, percent-encoded ('/' as %2F)")),
    request_body = Option<LockRequest>,
    responses(
        (status = 200, description = "Locked", body = crate::control::views::UserView),
        crate::control::openapi::Writes, crate::control::openapi::Missing, crate::control::openapi::OutOfRange,
    )))]
pub(crate) fn lock_user(ctl: &Control, name: &str, body: &[u8]) -> Res {
    let name = canonical(name)?;
    let req: LockRequest = json_body(body)?;
    if let Some(m) = req.minutes {
        bounds::LOCK_MINUTES.check(m).map_err(out_of_range)?;
    }
    let now = ctl.app.clock.now();
    let reason = req.reason.unwrap_or_else(|| "locked by admin".into());
    let lock = match req.minutes {
        Some(m) => LockState::LockedUntil {
            until: bounds::later(now, bounds::minutes(m)),
            reason: reason.clone(),
        },
        None => LockState::LockedByAdmin {
            since: now,
            reason: reason.clone(),
        },
    };
    let updated = ctl
        .app
        .store
        .update_user(&name, |u| {
            u.lock = lock;
            u.record(now, format!("locked by admin: {reason}"));
        })
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no user {name}")))?;
    tracing::info!(user = %name, "user locked by admin");
    Ok(Answer::ok(view(ctl, &updated)?))
}

#[cfg_attr(test, utoipa::path(post, tag = "users", path = "/v1/users/{name}/unlock",
    summary = "Unlock a user (and reset its unlocks by timeout)",
    params(("name" = String, Path, description = "user@domain or IP address/network, percent-encoded ('/' as %2F)")),
    responses(
        (status = 200, description = "Unlocked", body = crate::control::views::UserView),
        crate::control::openapi::Writes, crate::control::openapi::Missing,
    )))]
pub(crate) fn unlock_user(ctl: &Control, name: &str) -> Res {
    let name = canonical(name)?;
    let now = ctl.app.clock.now();
    let updated = ctl
        .app
        .store
        .update_user(&name, |u| {
            u.lock = LockState::Active;
            u.unlocks_by_timeout = 0;
            u.record(now, "unlocked by admin");
        })
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no user {name}")))?;
    // The admin has looked: earlier holds no longer count towards a lock.
    ctl.app.store.clear_holds(&name, now).map_err(internal)?;
    tracing::info!(user = %name, "user unlocked by admin");
    Ok(Answer::ok(view(ctl, &updated)?))
}

pub(crate) fn importer(ctl: &Control) -> import::job::Importer {
    import::job::Importer {
        store: ctl.app.store.clone(),
        verifier: ctl.app.verifier.clone(),
        runtime: tokio::runtime::Handle::try_current().ok(),
        batch: import::job::BATCH,
        cost: password::FULL,
    }
}

/// Validates the whole file, then imports it in batches (`import::job`):
/// at once, answering with every name, or with `background=true` as a job
/// whose progress `GET /v1/users/import/{id}` reports (202). With
/// `fast_hash=true` plaintext passwords get `password::IMPORT`'s cost.
#[cfg_attr(test, utoipa::path(post, tag = "users", path = "/v1/users/import",
    summary = "Import users from CSV lines user,domainname,password",
    params(
        ("skip_invalid" = Option<bool>, Query, nullable = false, description = "Import the valid lines even if some are invalid"),
        ("preview" = Option<bool>, Query, nullable = false, description = "Only say what would happen"),
        ("background" = Option<bool>, Query, nullable = false, description = "Import as a background job (202 with its progress); follow it with GET /v1/users/import/{id}. The CLI and the page use this for files of more than one batch (1,000 users)."),
        ("fast_hash" = Option<bool>, Query, nullable = false, description = "Hash plaintext passwords at the lighter import cost (argon2id 7 MiB, 1 pass instead of 5); each user's first successful login re-hashes the password at the full cost"),
    ),
    request_body(content = inline(Option<crate::control::openapi::CsvBody>), content_type = "text/csv",
        description = "CSV text (any bytes: unreadable lines are reported with their numbers); an empty body imports nothing"),
    responses(
        (status = 200, description = "Imported, or with preview=true what would be imported", body = inline(crate::control::openapi::ImportAnswerDoc)),
        (status = 202, description = "Background import started (the whole file was validated first); invalid lines skipped are listed in errors", body = crate::control::openapi::ImportStarted),
        crate::control::openapi::Writes,
        (status = 409, description = "Another import is still running", body = crate::control::openapi::ErrorDoc),
        (status = 422, description = "Invalid CSV lines; nothing imported", body = crate::control::openapi::ErrorDoc),
        (status = 500, description = "The store failed during the import; the batches committed before stay", body = crate::control::openapi::ErrorDoc),
    )))]
pub(crate) fn import_users(ctl: &Control, q: &[(String, String)], body: &[u8]) -> Res {
    let (lines, errors) = import::parse(body);
    refuse_invalid_lines(&errors, flag(q, "skip_invalid"))?;
    let now = ctl.app.clock.now();
    let mut importer = importer(ctl);
    if flag(q, "fast_hash") {
        // The lighter argon2id cost until each user's first login.
        importer.cost = password::IMPORT;
    }
    if flag(q, "background") {
        return match ctl.imports.start(importer, lines, errors.len(), now) {
            Ok(progress) => {
                tracing::info!(
                    job = progress.id,
                    total = progress.total,
                    "user import started"
                );
                let mut body = json!(progress);
                body["errors"] = json!(errors);
                Ok(Answer {
                    status: StatusCode::ACCEPTED,
                    body,
                })
            }
            Err(running) => Err(Answer::error(
                StatusCode::CONFLICT,
                format!("import {running} is still running; wait for it to finish"),
            )),
        };
    }
    let (mut added, mut existing) = (Vec::new(), Vec::new());
    let result = importer.run(&lines, now, |batch| {
        added.extend_from_slice(&batch.added);
        existing.extend_from_slice(&batch.existing);
    });
    tracing::info!(
        added = added.len(),
        existing = existing.len(),
        skipped = errors.len(),
        "users imported"
    );
    if let Err(e) = result {
        return Err(Answer {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: json!({
                "error": format!("import stopped: {e}; the {} user(s) of the batches before stay (import the file again to resume)", added.len()),
                "added": added,
                "existing": existing,
            }),
        });
    }
    Ok(Answer::ok(json!(ImportResult {
        added,
        existing,
        errors
    })))
}

/// What `POST /v1/users/import` imported.
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) struct ImportResult {
    added: Vec<String>,
    existing: Vec<String>,
    /// The lines skipped (with skip_invalid).
    #[cfg_attr(test, schema(value_type = Vec<crate::import::LineError>))]
    errors: Vec<import::LineError>,
}

/// What `POST /v1/users/import?preview=true` would do.
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) struct ImportPreview {
    add: Vec<PreviewLine>,
    existing: Vec<PreviewLine>,
    #[cfg_attr(test, schema(value_type = Vec<crate::import::LineError>))]
    errors: Vec<import::LineError>,
}

/// One valid line of an import preview.
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) struct PreviewLine {
    line: u64,
    name: String,
    #[cfg_attr(test, schema(inline))]
    kind: PreviewKind,
}

/// A user address or an IP address user.
#[derive(serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) enum PreviewKind {
    Address,
    Ip,
}

#[cfg_attr(test, utoipa::path(get, tag = "users", path = "/v1/users/import/{id}",
    summary = "Progress of a background user import",
    params(("id" = String, Path, description = "The job id from the 202 answer")),
    responses(
        (status = 200, description = "The job's progress", body = crate::import::job::Progress),
        (status = 400, description = "The id is not a number", body = crate::control::openapi::ErrorDoc),
        crate::control::openapi::LoggedIn,
        (status = 404, description = "No such import (the last 16 are kept)", body = crate::control::openapi::ErrorDoc),
    )))]
pub(crate) fn import_progress(ctl: &Control, id: &str) -> Res {
    let id: u64 = id
        .parse()
        .map_err(|_| bad(format!("import id must be a number, not '{id}'")))?;
    let progress = ctl
        .imports
        .get(id)
        .ok_or_else(|| not_found(format!("no import {id} (only the last 16 are kept)")))?;
    Ok(Answer::ok(json!(progress)))
}

/// The CSV columns about the user; then one column per setting of
/// `users::spec::USER_SETTINGS`, named as the setting (blank: the system
/// default applies).
const EXPORT_HEADER: [&str; 5] = ["user", "domain", "kind", "has_password", "status"];

/// The CSV of every outgoing user with its settings, never a password hash.
pub fn export_csv(ctl: &Control) -> Result<(String, usize), Answer> {
    let now = ctl.app.clock.now();
    let users = ctl.app.store.users().map_err(internal)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = EXPORT_HEADER.to_vec();
    header.extend(USER_SETTINGS.iter().map(|s| s.name));
    w.write_record(&header).map_err(internal)?;
    for u in &users {
        let s = serde_json::to_value(&u.settings).map_err(internal)?;
        let mut row = vec![
            u.name.clone(),
            u.domain.clone().unwrap_or_default(),
            if u.is_network() { "ip" } else { "address" }.to_string(),
            u.password_hash.is_some().to_string(),
            match u.lock.in_force(now) {
                None => "active".into(),
                Some(crate::users::LockState::LockedByAdmin { .. }) => "locked_until_admin".into(),
                Some(_) => "locked_until".into(),
            },
        ];
        for spec in USER_SETTINGS {
            row.push(match &s[spec.name] {
                Value::Null => String::new(),
                Value::String(t) => t.clone(),
                v => v.to_string(),
            });
        }
        w.write_record(&row).map_err(internal)?;
    }
    let bytes = w.into_inner().map_err(internal)?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), users.len()))
}

/// The CSV export (`GET /v1/users/export`).
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(crate) struct Export {
    /// How many users.
    count: usize,
    csv: String,
}

#[cfg_attr(test, utoipa::path(get, tag = "users", path = "/v1/users/export",
    summary = "Outgoing users as CSV (never password hashes)",
    responses(
        (status = 200, description = "CSV", body = Export),
        crate::control::openapi::LoggedIn,
    )))]
pub(crate) fn export_users(ctl: &Control) -> Res {
    let (csv, count) = export_csv(ctl)?;
    Ok(Answer::ok(json!(Export { count, csv })))
}

/// What an import would do, without doing it.
pub(crate) fn preview_import(ctl: &Control, body: &[u8]) -> Res {
    let (lines, errors) = import::parse(body);
    let (mut add, mut existing) = (Vec::new(), Vec::new());
    for l in &lines {
        let name = l.name.to_string();
        let entry = PreviewLine {
            line: l.line,
            kind: if l.name.network().is_some() {
                PreviewKind::Ip
            } else {
                PreviewKind::Address
            },
            name: name.clone(),
        };
        if ctl.app.store.user(&name).map_err(internal)?.is_some() {
            existing.push(entry);
        } else {
            add.push(entry);
        }
    }
    Ok(Answer::ok(json!(ImportPreview {
        add,
        existing,
        errors
    })))
}
