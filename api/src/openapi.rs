//! The API description. Handlers carry `#[utoipa::path]` annotations and are
//! routed through utoipa-axum's `routes!`, so the router and this document are
//! built from one table. [`finish`] adds what every operation shares (security
//! schemes, the generic errors); `/openapi.json` serves the result, Swagger UI
//! (`/docs`) and RapiDoc (`/reference`) read it, every asset inside the binary.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::openapi::{RefOr, Response as Answer, ResponseBuilder, content::ContentBuilder};

use crate::error::ErrorBody;

/// Security schemes, by the names the annotations use.
pub const BEARER: &str = "bearer";
pub const OAUTH2: &str = "oauth2";
pub const CONTROLLER: &str = "controller_token";
pub const KIOSK: &str = "kiosk_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lockers API",
        description = "Smart lockers for contactless item exchange. Errors are \
            `{\"error\": {\"code\", \"message\"}}` with a stable `code` per status (each operation lists its codes); \
            lists are `{items, page, per_page, total}`; every answer carries `x-request-id`. \
            To try signed-in routes here, press Authorize and sign in through the OAuth2 password form \
            (`/api/v1/auth/token`), or paste an access token from `/api/v1/auth/login` as bearer.",
    ),
    tags(
        (name = "auth", description = "Accounts: signup, verification, password and code login, tokens."),
        (name = "users", description = "Admins: accounts."),
        (name = "places", description = "States, cities and locker points: reads public, writes admin."),
        (name = "lockers", description = "Lockers: public search, admin writes, force-clear."),
        (name = "items", description = "The exchange: deposit, drop-off, listing, cancel."),
        (name = "pickup", description = "Collection at a locker or a point's screen."),
        (name = "controller", description = "Door controller protocol v1 and the points' screen credentials."),
        (name = "billing", description = "The billing ledger."),
        (name = "audit", description = "Admins: who did what, when."),
        (name = "operations", description = "Probes and this document, outside `/api/v1`."),
    ),
    components(schemas(ErrorBody)),
)]
struct ApiDoc;

/// The document the route table fills in.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The codes of the 400s any operation of this shape can answer.
fn bad_request_codes(op: &Operation) -> Vec<&'static str> {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |kind: utoipa::openapi::path::ParameterIn| params.iter().any(|p| p.parameter_in == kind);
    let mut codes = Vec::new();
    if op.request_body.is_some() {
        codes.extend(["malformed_json", "invalid_body", "unsupported_media_type"]);
    }
    if has(utoipa::openapi::path::ParameterIn::Path) {
        codes.push("invalid_path");
    }
    if has(utoipa::openapi::path::ParameterIn::Query) {
        codes.push("invalid_query");
    }
    codes
}

fn error_answer(description: String) -> RefOr<Answer> {
    let content = ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody"))).build();
    RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
}

fn listed(codes: &[&str]) -> String {
    codes.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
}

/// Adds a status to an operation, or the given codes to the one it documents.
fn add_codes(op: &mut Operation, status: &str, what: &str, codes: &[&str]) {
    if codes.is_empty() {
        return;
    }
    match op.responses.responses.get_mut(status) {
        Some(RefOr::T(answer)) => {
            let missing: Vec<&str> =
                codes.iter().copied().filter(|c| !answer.description.contains(&format!("`{c}`"))).collect();
            if !missing.is_empty() {
                answer.description = format!("{}; {}", answer.description, listed(&missing));
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            op.responses.responses.insert(status.to_owned(), error_answer(format!("{what}: {}", listed(codes))));
        }
    }
}

/// The codes a caller without valid credentials of this scheme gets.
fn unauthorized_codes(op: &Operation) -> Vec<&'static str> {
    let schemes: Vec<&str> = op
        .security
        .iter()
        .flatten()
        .filter_map(|req| serde_json::to_value(req).ok())
        .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .flatten()
        .map(|name| match name.as_str() {
            BEARER | OAUTH2 => BEARER,
            CONTROLLER => CONTROLLER,
            KIOSK => KIOSK,
            _ => "",
        })
        .collect();
    let mut codes = Vec::new();
    if !schemes.is_empty() {
        codes.push("unauthorized");
    }
    for (scheme, code) in
        [(BEARER, "invalid_token"), (CONTROLLER, "invalid_controller_token"), (KIOSK, "invalid_kiosk_token")]
    {
        if schemes.contains(&scheme) && !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// Operation ids are the handlers' names; where two modules share one
/// (`list`, `create`), both get their tag in front (`items_list`).
fn unique_operation_ids(spec: &mut utoipa::openapi::OpenApi) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for item in spec.paths.paths.values() {
        for op in [&item.get, &item.post, &item.patch, &item.put, &item.delete].into_iter().flatten() {
            if let Some(id) = &op.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for item in spec.paths.paths.values_mut() {
        for op in
            [&mut item.get, &mut item.post, &mut item.patch, &mut item.put, &mut item.delete].into_iter().flatten()
        {
            let Some(id) = op.operation_id.clone() else { continue };
            if seen.get(&id).copied().unwrap_or_default() > 1 {
                let tag = op.tags.as_ref().and_then(|t| t.first()).cloned().unwrap_or_default();
                op.operation_id = Some(format!("{tag}_{id}"));
            }
        }
    }
}

/// Security schemes and the errors every operation shares, added to each
/// operation the route table produced.
pub fn finish(mut spec: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = spec.components.get_or_insert_with(Default::default);
    let bearer = || HttpBuilder::new().scheme(HttpAuthScheme::Bearer);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(bearer().bearer_format("JWT").description(Some("An access token.")).build()),
    );
    components.add_security_scheme(
        OAUTH2,
        SecurityScheme::OAuth2(OAuth2::with_description(
            [Flow::Password(Password::new("/api/v1/auth/token", Scopes::new()))],
            "Sign in with email (or phone) and password; the access token is then sent as bearer.",
        )),
    );
    components.add_security_scheme(
        CONTROLLER,
        SecurityScheme::Http(bearer().description(Some("A locker point's controller token.")).build()),
    );
    components.add_security_scheme(
        KIOSK,
        SecurityScheme::Http(bearer().description(Some("A locker point's screen (kiosk) token.")).build()),
    );
    unique_operation_ids(&mut spec);
    for (path, item) in spec.paths.paths.iter_mut() {
        let in_api = path.starts_with("/api/v1/");
        for op in
            [&mut item.get, &mut item.post, &mut item.patch, &mut item.put, &mut item.delete].into_iter().flatten()
        {
            let bad = bad_request_codes(op);
            add_codes(op, "400", "Bad request", &bad);
            let unauthorized = unauthorized_codes(op);
            add_codes(op, "401", "Not signed in", &unauthorized);
            add_codes(op, "408", "Too slow", &["request_timeout"]);
            if op.request_body.is_some() {
                add_codes(op, "413", "Body too large", &["payload_too_large"]);
            }
            add_codes(op, "500", "Unexpected", &["internal"]);
            if in_api {
                add_codes(op, "503", "Database unreachable (with Retry-After)", &["database_unavailable"]);
            }
        }
    }
    spec
}

/// The finished document as served, shared by every request.
#[derive(Clone)]
pub struct SpecJson(pub Arc<String>);

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The API description (OpenAPI 3.1)", content_type = "application/json", body = Object)))]
pub async fn spec(Extension(SpecJson(json)): Extension<SpecJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json.as_str().to_owned()).into_response()
}

/// RapiDoc 9.3.8 (MIT, npm package `rapidoc`), its one-file build.
const RAPIDOC_JS: &[u8] = include_bytes!("../assets/rapidoc-min.js");

/// `/reference`: RapiDoc over `/openapi.json`, script served from the binary.
pub async fn reference() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Lockers API reference</title>",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<script type=\"module\" src=\"/reference/rapidoc-min.js\"></script></head>",
        "<body><rapi-doc spec-url=\"/openapi.json\" render-style=\"read\" show-header=\"false\" ",
        "allow-server-selection=\"false\" regular-font=\"system-ui, sans-serif\" mono-font=\"monospace\" ",
        "load-fonts=\"false\"></rapi-doc></body></html>",
    ))
}

pub async fn reference_script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript"), (header::CACHE_CONTROL, "public, max-age=86400")], RAPIDOC_JS)
        .into_response()
}
