//! The OpenAPI description of the control API, generated from its types.
//!
//! Test-only: the daemon serves the committed `src/admin/openapi.json`
//! (`ext::OPENAPI`, by `include_str!`) and carries no generator. The test
//! below builds the description and fails when the committed file differs;
//! `OUTGUARD_WRITE_OPENAPI=1 cargo test --lib control::openapi` writes it.
//!
//! The schemas of the request and response types that derive
//! `utoipa::ToSchema` (and the per-user settings, from the table in
//! `users::spec`) are generated, and so are the paths of the handlers that
//! carry `#[utoipa::path]` (the admin face's own session and
//! openapi.json paths by functions here). `openapi_rest.json` holds the
//! rest, still written by hand: the info and security parts, `/metrics`
//! and the schemas `SettingsPatch`, `DkimDomain` and `DkimKey`, which
//! generated paths name through `rest_schema!`. The two must not both
//! define a schema or an operation.
//!
//! utoipa writes OpenAPI 3.1; the description stays 3.0.3 (what the
//! clients and the schema test read), so `to_oas30` turns a
//! `type: [T, "null"]` into `type: T, nullable: true`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{IntoResponses, OpenApi, PartialSchema, ToSchema};

use crate::control::routes::quarantine::QuarantineView;
use crate::control::routes::queue::QueueView;
use crate::control::routes::users::{EditUser, LockRequest, NewUser};
use crate::users::spec::{Kind, SettingSpec, USER_SETTINGS};
use crate::users::{EffectiveSettings, UserSettings};

/// The hand-written remainder.
const REST: &str = include_str!("openapi_rest.json");
/// The committed description, relative to the crate.
const PATH: &str = "src/admin/openapi.json";

#[derive(OpenApi)]
#[openapi(
    paths(
        crate::control::routes::queue::list_queue,
        crate::control::routes::queue::show_queue,
        crate::control::routes::queue::delete_queue,
        crate::control::routes::queue::retry_queue,
        crate::control::routes::queue::bounce_queue,
        crate::control::routes::quarantine::list_quarantine,
        crate::control::routes::quarantine::show_quarantine,
        crate::control::routes::quarantine::delete_quarantine,
        crate::control::routes::quarantine::release_quarantine,
        crate::control::routes::users::list_users,
        crate::control::routes::users::add_user,
        crate::control::routes::users::show_user,
        crate::control::routes::users::edit_user,
        crate::control::routes::users::delete_user,
        crate::control::routes::users::lock_user,
        crate::control::routes::users::unlock_user,
        crate::control::routes::incoming::list_domains,
        crate::control::routes::incoming::add_domain,
        crate::control::routes::incoming::delete_domain,
        crate::control::routes::incoming::list_incoming,
        crate::control::routes::incoming::add_incoming,
        crate::control::routes::incoming::delete_incoming,
        crate::control::routes::users::import_users,
        crate::control::routes::users::import_progress,
        crate::control::routes::users::export_users,
        crate::control::routes::incoming::import_incoming,
        crate::control::routes::incoming::import_incoming_csv,
        crate::control::ext::dashboard,
        crate::control::update::upload,
        crate::control::routes::health,
        crate::control::ext::set_admin_password,
        crate::control::appliance::set_ntp,
        crate::control::appliance::factory_reset,
        crate::control::routes::set_clock,
        crate::control::ext::audit,
        crate::control::ext::logs,
        crate::control::ext::show_cert,
        crate::control::ext::put_cert,
        crate::control::dkim::list,
        crate::control::dkim::show,
        crate::control::dkim::generate,
        crate::control::dkim::delete,
        crate::control::dkim::rotate,
        crate::control::dkim::activate,
        crate::control::appliance::status,
        crate::control::update::system,
        crate::control::routes::show_settings,
        crate::control::routes::edit_settings,
        login,
        show_session,
        logout,
        openapi_json,
    ),
    components(schemas(
        UserSettings,
        EffectiveSettings,
        NewUser,
        EditUser,
        LockRequest,
        ErrorDoc,
        crate::control::routes::users::ImportResult,
        crate::control::routes::users::ImportPreview,
        QueueView,
        QuarantineView,
        crate::import::LineError,
        crate::import::job::Progress,
        ImportStarted,
        crate::store::AuditEntry,
    ))
)]
struct Generated;

/// A schema still written by hand in `openapi_rest.json`, for a path to
/// name: its generated schema is only the reference to itself, which
/// `generate` leaves out.
macro_rules! rest_schema {
    ($t:ident, $name:literal) => {
        pub(crate) struct $t;
        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                RefOr::Ref(Ref::from_schema_name($name))
            }
        }
        impl ToSchema for $t {
            fn name() -> Cow<'static, str> {
                $name.into()
            }
        }
    };
}

rest_schema!(SettingsPatchDoc, "SettingsPatch");
/// The error answer's schema, under the name the paths use.
pub(crate) type ErrorDoc = crate::control::ErrorBody<'static>;
rest_schema!(DkimDomainDoc, "DkimDomain");

/// The 202 answer of `POST /v1/users/import?background=true`: the job's
/// progress and the invalid lines skipped.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ImportStarted {
    #[serde(flatten)]
    progress: crate::import::job::Progress,
    /// The invalid lines skipped (`skip_invalid`)
    errors: Vec<crate::import::LineError>,
}

/// The body of `POST /v1/session`.
#[derive(ToSchema)]
#[schema(as = Login)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct LoginBody {
    password: String,
}

// The admin face's own paths, served by `admin::server` and
// `admin::login` rather than by a `control` handler: described here.

#[utoipa::path(post, tag = "session", path = "/v1/session",
    summary = "Log in (HTTPS face only); sets the og_session cookie",
    request_body = LoginBody,
    responses(
        (status = 201, description = "Logged in", body = crate::control::views::SessionView),
        LoginErrors,
    ),
    security(()))]
#[allow(dead_code)]
fn login() {}

#[utoipa::path(get, tag = "session", path = "/v1/session",
    summary = "The current session and its CSRF token",
    responses(
        (status = 200, description = "Session", body = crate::control::views::SessionView),
        LoggedIn,
    ))]
#[allow(dead_code)]
fn show_session() {}

#[utoipa::path(delete, tag = "session", path = "/v1/session",
    summary = "Log out",
    responses(
        (status = 200, description = "Logged out", body = AnyObject),
        LogoutErrors,
    ))]
#[allow(dead_code)]
fn logout() {}

#[utoipa::path(get, tag = "session", path = "/v1/openapi.json",
    summary = "This description (no login needed)",
    responses((status = 200, description = "OpenAPI 3 document", body = AnyObject)),
    security(()))]
#[allow(dead_code)]
fn openapi_json() {}

/// A binary body (an update bundle).
pub(crate) struct BinaryBody;
impl PartialSchema for BinaryBody {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}
impl ToSchema for BinaryBody {}

/// A JSON object, fields not described.
pub(crate) struct AnyObject;
impl PartialSchema for AnyObject {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::ObjectBuilder::new().into()
    }
}
impl ToSchema for AnyObject {}

/// The answer of `POST /v1/users/import` without `background`: the
/// import's result, or with `preview` what it would do.
pub(crate) struct ImportAnswerDoc;
impl PartialSchema for ImportAnswerDoc {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::OneOfBuilder::new()
            .item(Ref::from_schema_name(
                crate::control::routes::users::ImportResult::name(),
            ))
            .item(Ref::from_schema_name(
                crate::control::routes::users::ImportPreview::name(),
            ))
            .into()
    }
}
impl ToSchema for ImportAnswerDoc {}

/// A CSV body: any bytes.
pub(crate) struct CsvBody;
impl PartialSchema for CsvBody {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
            .into()
    }
}
impl ToSchema for CsvBody {}

fn error(description: &str) -> RefOr<Response> {
    let json = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ErrorDoc::name())))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json)
        .build()
        .into()
}

fn errors(codes: &[&str]) -> BTreeMap<String, RefOr<Response>> {
    codes
        .iter()
        .map(|code| {
            let what = match *code {
                "400" => "Bad input (the message says what)",
                "401" => "Not logged in (HTTPS face)",
                "403" => "Missing or wrong X-CSRF-Token (HTTPS face), or forbidden",
                "404" => "No such object",
                "409" => "Already exists",
                "415" => "Wrong content type",
                "429" => "Too many failed logins",
                _ => "A value out of its allowed range; the message names the field and the range",
            };
            (code.to_string(), error(what))
        })
        .collect()
}

/// The errors of a request that changes nothing: 400, 401.
pub(crate) struct Reads;
impl IntoResponses for Reads {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&["400", "401"])
    }
}

/// 401 only: a request that takes no input.
pub(crate) struct LoggedIn;
impl IntoResponses for LoggedIn {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&["401"])
    }
}

/// The errors of a request that changes something: 400, 401, 403.
pub(crate) struct Writes;
impl IntoResponses for Writes {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&["400", "401", "403"])
    }
}

/// 409.
pub(crate) struct Conflict;
impl IntoResponses for Conflict {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&["409"])
    }
}

/// 422: a value out of its range.
pub(crate) struct OutOfRange;
impl IntoResponses for OutOfRange {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&["422"])
    }
}

/// The errors of a login: 400, 401, 415, 429.
pub(crate) struct LoginErrors;
impl IntoResponses for LoginErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&["400", "401", "415", "429"])
    }
}

/// The errors of a logout: 401, 403.
pub(crate) struct LogoutErrors;
impl IntoResponses for LogoutErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&["401", "403"])
    }
}

/// 404.
pub(crate) struct Missing;
impl IntoResponses for Missing {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&["404"])
    }
}

// The `status` filter of `GET /v1/users`; empty is no filter, as absent
// (what the users page sends for "any").
pub(crate) struct UserStatus;
impl PartialSchema for UserStatus {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "string",
            "enum": ["", "active", "locked", "locked_until", "locked_until_admin"],
        }))
    }
}
impl ToSchema for UserStatus {}

/// The paging parameters of every list (`routes::paging::want`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct Paging {
    /// Items per page (default 100, at most 1000; outside 1 to 1000 is 400)
    #[param(minimum = 1, maximum = 1000, nullable = false)]
    limit: Option<u32>,
    /// The next cursor of the page before; absent or empty: the first page
    #[param(nullable = false)]
    after: Option<String>,
}

// A queued message's state (`store::RcptState`, `QueueEntry.state`, the
// `state` filter of `GET /v1/queue`).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum QueueState {
    Queued,
    Delivered,
    Failed,
    Expired,
}

fn schema(v: Value) -> RefOr<Schema> {
    serde_json::from_value(v).expect("a schema utoipa reads")
}

/// One per-user setting's schema, from the table.
fn setting(s: &SettingSpec, nullable: bool) -> Value {
    let mut v = match s.kind {
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::Number(r) => json!({ "type": "integer", "minimum": r.min, "maximum": r.max }),
        Kind::Choice(c) => json!({
            "type": "string",
            "enum": c.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        }),
    };
    if nullable {
        v["type"] = json!([v["type"], "null"]);
    }
    v
}

fn settings(nullable: bool) -> serde_json::Map<String, Value> {
    USER_SETTINGS
        .iter()
        .map(|s| (s.name.to_string(), setting(s, nullable)))
        .collect()
}

impl PartialSchema for UserSettings {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "additionalProperties": false,
            "description": "Per-user settings; null or absent means the system default applies. \
                            Limits of 0 mean unlimited.",
            "properties": settings(true),
        }))
    }
}

impl ToSchema for UserSettings {
    fn name() -> Cow<'static, str> {
        "UserSettings".into()
    }
}

impl PartialSchema for EffectiveSettings {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "required": USER_SETTINGS.iter().map(|s| s.name).collect::<Vec<_>>(),
            "properties": settings(false),
        }))
    }
}

impl ToSchema for EffectiveSettings {
    fn name() -> Cow<'static, str> {
        "EffectiveSettings".into()
    }
}

/// `EditUser.clear`: names from the table.
pub(crate) fn clear() -> RefOr<Schema> {
    schema(json!({
        "type": "array",
        "description": "Settings to reset to the system default",
        "items": {
            "type": "string",
            "enum": USER_SETTINGS.iter().map(|s| s.name).collect::<Vec<_>>(),
        },
    }))
}

/// `LockRequest.minutes`: `bounds::LOCK_MINUTES`.
pub(crate) fn lock_minutes() -> RefOr<Schema> {
    let r = crate::bounds::LOCK_MINUTES;
    schema(json!({
        "type": ["integer", "null"],
        "minimum": r.min,
        "maximum": r.max,
        "description": "Absent: locked until an admin unlocks",
    }))
}

/// `QueueEntry.recipients` (`store::Recipient`, of which the API
/// promises these fields).
pub(crate) fn recipients() -> RefOr<Schema> {
    schema(json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["address", "state"],
            "properties": {
                "address": { "type": "string" },
                "state": { "type": "string" },
                "attempts": { "type": "integer" },
                "last_reply": { "type": ["string", "null"] },
            },
        },
    }))
}

/// `User.lock` (`users::LockState`, of which the API promises the state).
pub(crate) fn lock_state() -> RefOr<Schema> {
    schema(json!({
        "type": "object",
        "required": ["state"],
        "properties": {
            "state": { "type": "string", "enum": ["active", "locked_until", "locked_by_admin"] },
        },
    }))
}

/// `User.history` (`users::HistoryEvent`).
pub(crate) fn history() -> RefOr<Schema> {
    schema(json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["at", "event"],
            "properties": {
                "at": { "type": "string" },
                "event": { "type": "string" },
            },
        },
    }))
}

/// `System.last_install`: the update agent's last report, or null.
pub(crate) fn last_install() -> RefOr<Schema> {
    schema(json!({
        "type": ["object", "null"],
        "additionalProperties": { "type": "string" },
        "description": "state (installing, installed, failed), version, message, time",
    }))
}

/// `NewDkimKey.algorithm`: a name of `dkim::Algorithm`, or null.
pub(crate) fn dkim_algorithm() -> RefOr<Schema> {
    schema(json!({
        "type": ["string", "null"],
        "enum": ["ed25519", "rsa", null],
        "description": "Default ed25519, or for rotate the active key's (null: the default)",
    }))
}

/// `Appliance.clock` (`appliance::clock::ClockState`, or null).
pub(crate) fn clock_state() -> RefOr<Schema> {
    use utoipa::openapi::schema::Type;
    let state = schema(json!({
        "type": "object",
        "required": ["synchronised", "max_error_us", "est_error_us"],
        "properties": {
            "synchronised": { "type": "boolean" },
            "max_error_us": { "type": "integer" },
            "est_error_us": { "type": "integer" },
        },
    }));
    utoipa::openapi::OneOfBuilder::new()
        .item(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Null))
        .item(state)
        .description(Some(
            "The kernel's clock state (adjtimex); null where it cannot be read",
        ))
        .into()
}

/// A count by name (`Dashboard.queue_by_state`).
pub(crate) fn counts_by_name() -> RefOr<Schema> {
    schema(json!({ "type": "object", "additionalProperties": { "type": "integer" } }))
}

/// `delivery::Stats::snapshot`.
pub(crate) fn delivery_counters() -> RefOr<Schema> {
    schema(json!({
        "type": "object",
        "description": "Delivery counters since start; tls_policy counts MX sessions under \
                        MTA-STS (sts) or DANE (tlsa) by result.",
        "properties": {
            "tls_policy": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": { "type": "integer" },
                },
            },
        },
        "additionalProperties": { "type": "integer" },
    }))
}

/// `PUT /v1/appliance/ntp`'s servers (`appliance::ntp`).
pub(crate) fn ntp_servers() -> RefOr<Schema> {
    schema(json!({
        "type": "array",
        "maxItems": crate::appliance::ntp::MAX_SERVERS,
        "items": { "type": "string", "minLength": 1, "maxLength": 253 },
    }))
}

/// OpenAPI 3.1's nullable types, as 3.0.3 spells them.
fn to_oas30(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Array(types)) = o.get("type") {
                let null = json!("null");
                if types.contains(&null) {
                    let rest: Vec<Value> = types.iter().filter(|t| **t != null).cloned().collect();
                    assert_eq!(rest.len(), 1, "one type besides null: {types:?}");
                    o.insert("type".into(), rest[0].clone());
                    o.insert("nullable".into(), json!(true));
                }
            }
            o.values_mut().for_each(to_oas30);
        }
        Value::Array(a) => a.iter_mut().for_each(to_oas30),
        _ => {}
    }
}

/// utoipa makes an `Option<T>` body not required and its schema "T or
/// null"; the body is optional, never `null`.
fn optional_body(op: &mut Value) {
    let Some(content) = op
        .pointer_mut("/requestBody/content")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut optional = false;
    for media in content.values_mut() {
        if let Some(Value::Array(one_of)) = media["schema"].get("oneOf") {
            let null = json!({ "type": "null" });
            let rest: Vec<&Value> = one_of.iter().filter(|s| **s != null).collect();
            if rest.len() == 1 && rest.len() < one_of.len() {
                media["schema"] = rest[0].clone();
                optional = true;
            }
        }
    }
    if optional {
        op["requestBody"]["required"] = json!(false);
    }
}

/// The whole description, as committed.
pub(crate) fn generate() -> String {
    let mut doc: Value = serde_json::from_str(REST).expect("openapi_rest.json is JSON");
    let generated = serde_json::to_value(Generated::openapi()).expect("serializable");
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("openapi_rest.json has components.schemas");
    for (name, s) in generated["components"]["schemas"]
        .as_object()
        .expect("generated schemas")
    {
        if s["$ref"] == format!("#/components/schemas/{name}") {
            continue; // rest_schema!
        }
        let mut s = s.clone();
        to_oas30(&mut s);
        assert!(
            schemas.insert(name.clone(), s).is_none(),
            "{name} is generated and also in openapi_rest.json"
        );
    }
    let paths = doc["paths"]
        .as_object_mut()
        .expect("openapi_rest.json has paths");
    for (path, item) in generated["paths"].as_object().expect("generated paths") {
        let mut item = item.clone();
        for op in item.as_object_mut().expect("a path item").values_mut() {
            optional_body(op);
            // `security(())` (no login needed): utoipa writes one empty
            // requirement, the description no requirement at all.
            if op.get("security") == Some(&json!([{}])) {
                op["security"] = json!([]);
            }
        }
        to_oas30(&mut item);
        let have = paths.entry(path.clone()).or_insert_with(|| json!({}));
        for (method, op) in item.as_object().expect("a path item") {
            assert!(
                have.get(method).is_none(),
                "{method} {path} is generated and also in openapi_rest.json"
            );
            have[method] = op.clone();
        }
    }
    serde_json::to_string_pretty(&doc).expect("serializable") + "\n"
}

#[test]
fn the_committed_description_is_the_generated_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PATH);
    let want = generate();
    if std::env::var_os("OUTGUARD_WRITE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "{PATH} is not the generated description: \
         OUTGUARD_WRITE_OPENAPI=1 cargo test --lib control::openapi writes it"
    );
}
