//! The API description: valid OpenAPI 3.1 (checked by openapi-spec-validator
//! from PyPI), every route of the router documented with its error codes, and
//! its readers (`/docs`, `/reference`) served from the binary: headless
//! Chromium renders `/docs` with no request leaving 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::browser::Browser;
use crate::harness::TestApp;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The Python with openapi-spec-validator; the virtualenv is made on first use.
fn python() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    let python = Path::new(&home).join(".cache/lockers/openapi-venv/bin/python");
    static SET_UP: std::sync::Once = std::sync::Once::new();
    SET_UP.call_once(|| {
        if !python.exists() {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let status = std::process::Command::new("bash").arg(".ci/openapi-tools.sh").current_dir(&repo).status();
            eprintln!("`bash .ci/openapi-tools.sh`: {status:?}");
        }
    });
    assert!(python.exists(), "{} is missing: run `bash .ci/openapi-tools.sh` from the repository", python.display());
    python
}

async fn spec(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    response.json().await.unwrap()
}

/// Each path's documented methods, upper case.
fn documented(spec: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let paths = spec["paths"].as_object().expect("paths");
    paths
        .iter()
        .map(|(path, item)| {
            let methods = METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_uppercase()).collect();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn openapi_json_is_valid_openapi_3_1() {
    let app = TestApp::spawn().await;
    let spec = spec(&app).await;
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", spec["openapi"]);
    let file = std::env::temp_dir().join(format!("lockers-openapi-{}.json", app.database));
    std::fs::write(&file, serde_json::to_vec(&spec).unwrap()).unwrap();
    let output = std::process::Command::new(python())
        .args([
            "-c",
            "import sys; from openapi_spec_validator import validate; \
                      from openapi_spec_validator.readers import read_from_filename; \
                      from openapi_spec_validator import OpenAPIV31SpecValidator; \
                      d, _ = read_from_filename(sys.argv[1]); validate(d, cls=OpenAPIV31SpecValidator); print('valid')",
        ])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_file(&file).ok();
    assert!(
        output.status.success(),
        "openapi-spec-validator refused /openapi.json:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // What Swagger's Authorize needs: the password flow on our form route, and the other credentials.
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["oauth2"]["flows"]["password"]["tokenUrl"], "/api/v1/auth/token");
    for name in ["bearer", "controller_token", "kiosk_token"] {
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
    // Relative server URLs only, so the document works behind a TLS-terminating proxy.
    assert!(!spec.to_string().contains("http://127.0.0.1"), "absolute local URLs in the spec");
}

/// Every `.route(` (or nest) call in the intake's source, outside tests and
/// the controller simulator (a server of its own), as `file: .route(path`:
/// JSON routes must go through `routes!`, which demands `#[utoipa::path]`.
fn hand_routed_paths() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut paths = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("simulator.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            for (at, _) in code.match_indices(call) {
                let rest = code[at + call.len()..].trim_start();
                let literal = rest.strip_prefix('"').and_then(|r| r.split('"').next()).unwrap_or(rest);
                paths.push(format!("{}: {call}{literal}", file.file_name().unwrap().to_string_lossy()));
            }
        }
    }
    paths
}

#[tokio::test]
async fn every_route_is_documented_with_its_methods_and_error_codes() {
    let app = TestApp::spawn().await;
    let spec = spec(&app).await;
    let documented = documented(&spec);

    // Routes outside the table: only HTML pages (the API readers and the
    // console's surfaces, which are not part of the document) and the nest
    // that puts the table under /api/v1.
    let html = ["/reference", "/kiosk", "/app", "/admin", "/assets"];
    let stray: Vec<String> = hand_routed_paths()
        .into_iter()
        .filter(|p| {
            let path = p.split_once('(').map_or("", |(_, path)| path);
            !(html.iter().any(|h| path == *h || path.starts_with(&format!("{h}/"))) || p.ends_with(".nest(/api/v1"))
        })
        .collect();
    assert!(stray.is_empty(), "routes added outside `routes!` (so without documentation): {stray:?}");

    // The router serves exactly the documented methods on each documented path.
    let sample_id = "0195f0a4-7c1e-7a51-9d1e-3f5b7c2a9e10";
    for (path, methods) in &documented {
        let concrete = path.replace("{id}", sample_id);
        let response =
            app.http.request(reqwest::Method::TRACE, app.url(&concrete)).send().await.expect("TRACE answered");
        assert_eq!(response.status(), 405, "{path}: TRACE should be 405");
        let allow: BTreeSet<String> = response.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(&allow, methods, "{path}: the router allows {allow:?}, the document has {methods:?}");
    }
    assert!(documented.contains_key("/api/v1/auth/token") && documented.contains_key("/health"));
    assert!(documented.len() >= 40, "only {} paths documented", documented.len());

    // Every operation names its error codes, in the error shape.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let responses = op["responses"].as_object().unwrap();
            let errors: Vec<(&String, &Value)> =
                responses.iter().filter(|(status, _)| status.starts_with('4') || status.starts_with('5')).collect();
            assert!(errors.iter().any(|(s, _)| s.starts_with('4')), "{method} {path}: no 4xx documented");
            for (status, answer) in errors {
                let description = answer["description"].as_str().unwrap_or_default();
                assert!(
                    description.matches('`').count() >= 2,
                    "{method} {path} {status}: no error code named in {description:?}"
                );
                let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                let readiness = path == "/ready" && status == "503";
                assert!(
                    readiness || schema == "#/components/schemas/ErrorBody",
                    "{method} {path} {status}: not the error shape ({schema})"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_readers_are_served_from_the_binary_with_no_outside_address() {
    let app = TestApp::spawn().await;
    let docs = app.get("/docs").await;
    assert!(docs.status().is_redirection());
    let location = docs.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with('/'), "a relative redirect, whatever the scheme in front: {location}");
    for path in [
        "/docs/",
        "/docs/swagger-initializer.js",
        "/docs/swagger-ui-bundle.js",
        "/reference",
        "/reference/rapidoc-min.js",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.len() > 100, "{path}");
        if path == "/docs/" || path == "/reference" || path.ends_with("initializer.js") {
            for scheme in ["http://", "https://", "//cdn", "//unpkg", "//fonts."] {
                assert!(!body.contains(scheme), "{path} names an outside address ({scheme}):\n{body}");
            }
        }
    }
    let page = app.get("/docs/").await;
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
}

#[tokio::test]
async fn docs_render_in_headless_chromium_with_no_request_leaving_loopback() {
    let app = TestApp::spawn().await;
    let browser = Browser::start().await;
    let local = format!("http://{}/", app.addr);

    // The check can fail: a page naming an outside script shows in the log.
    browser.open("data:text/html,<p>control</p><script src=\"https://cdn.example.com/swagger-ui.js\"></script>").await;
    browser.text_when("control").await;
    let control = browser.requested().await;
    assert!(control.iter().any(|u| u.contains("cdn.example.com")), "the control's outside script: {control:?}");

    browser.open(&app.url("/docs/")).await;
    let text = browser.text_when("/api/v1/auth/signup").await;
    assert!(text.contains("Lockers API"), "the document's title is not rendered:\n{text}");
    assert!(text.contains("/api/v1/auth/signup"), "the operations are not rendered:\n{text}");
    assert!(text.contains("Authorize"), "no Authorize button:\n{text}");
    let requested = browser.requested().await;
    assert!(requested.iter().any(|u| u.ends_with("/openapi.json")), "{requested:?}");
    let outside: Vec<&String> =
        requested.iter().filter(|u| !u.starts_with(&local) && !u.starts_with("data:")).collect();
    assert!(outside.is_empty(), "requests left 127.0.0.1: {outside:?}");

    // The second reader too.
    browser.open(&app.url("/reference")).await;
    browser.text_when("Lockers API").await;
    let outside = browser.outside_requests(&local).await;
    assert!(outside.is_empty(), "/reference: requests left 127.0.0.1: {outside:?}");
    browser.quit().await;
}

#[tokio::test]
async fn swagger_authorize_signs_in_through_the_password_form_and_its_token_opens_signed_in_routes() {
    let stack = crate::harness::Stack::spawn(&[]).await;
    let (email, password) = ("swagger@example.com", "a long swagger passphrase");
    assert_eq!(stack.signup("Swagger User", email, None, password).await.status(), 201);
    let code = stack.email_code(email, 1).await;
    assert_eq!(stack.verify_keeping_password(email, &code, password).await.status(), 200);

    // What Swagger UI's password flow posts to the document's tokenUrl.
    let app = &stack.app;
    let token_url = spec(app).await["components"]["securitySchemes"]["oauth2"]["flows"]["password"]["tokenUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let form =
        [("grant_type", "password"), ("username", email), ("password", password), ("scope", ""), ("client_id", "")];
    let response = app.http.post(app.url(&token_url)).form(&form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "bearer");
    let me = app.get_as("/api/v1/auth/me", tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["email"], email);

    let wrong = [("grant_type", "password"), ("username", email), ("password", "not the passphrase")];
    let response = app.http.post(app.url(&token_url)).form(&wrong).send().await.unwrap();
    assert_eq!(response.status(), 401);
}
