//! HTTP hardening: the body limit, 405 with `Allow`, CORS from configuration,
//! security headers, error messages without internal names, and the client
//! address and scheme behind a TLS-terminating proxy.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestApp;

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
    let message = body["error"]["message"].as_str().unwrap_or_default().to_owned();
    (status, code, message)
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_413_in_the_error_shape_with_or_without_a_length() {
    let app = TestApp::spawn().await;
    let big = format!(r#"{{"identifier": "a@example.com", "password": "{}"}}"#, "x".repeat(3 << 20));
    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));

    // Chunked, no Content-Length: cut off while reading.
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /api/v1/auth/signup HTTP/1.1\r\nhost: lockers\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    socket.write_all(head.as_bytes()).await.unwrap();
    for chunk in big.as_bytes().chunks(64 * 1024) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server may answer and close before the whole body is sent.
        if socket.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");

    // Under the limit, the same route answers as before.
    let response =
        app.post("/api/v1/auth/login", &json!({"identifier": "a@example.com", "password": "wrong one"})).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_known_route_with_another_method_answers_405_with_allow_and_the_error_shape() {
    let app = TestApp::spawn().await;
    let response = app.http.put(app.url("/api/v1/states")).send().await.unwrap();
    let allow = response.headers().get("allow").expect("Allow").to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
}

#[tokio::test]
async fn body_errors_describe_json_shapes_and_never_name_rust_types() {
    let app = TestApp::spawn().await;
    for (path, body) in [
        ("/api/v1/auth/login", json!([])),
        ("/api/v1/auth/signup", json!("text")),
        ("/api/v1/auth/refresh", json!({"refresh_token": 5})),
    ] {
        let (status, code, message) = error_of(app.post(path, &body).await).await;
        assert_eq!((status, code.as_str()), (400, "invalid_body"), "{path}: {message}");
        for internal in ["struct", "Body", "lockers", "::"] {
            assert!(!message.contains(internal), "{path}: {message:?} names {internal:?}");
        }
    }
    let (_, _, message) = error_of(app.post("/api/v1/auth/login", &json!([])).await).await;
    assert!(message.contains("expected a JSON object"), "{message}");
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let app = TestApp::spawn_with(&["--cors-allowed-origins", "https://app.example.com,http://localhost:3000"]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,authorization")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.com");
    let methods = allowed.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let simple = app.http.get(app.url("/health")).header("origin", "http://localhost:3000").send().await.unwrap();
    assert_eq!(simple.headers()["access-control-allow-origin"], "http://localhost:3000");
    let exposed = simple.headers()["access-control-expose-headers"].to_str().unwrap().to_owned();
    assert!(exposed.contains("x-request-id"), "{exposed}");

    // Nothing configured: no CORS headers at all, browsers keep to same-origin.
    let plain = TestApp::spawn().await;
    let answer = plain.http.get(plain.url("/health")).header("origin", "https://app.example.com").send().await.unwrap();
    assert!(answer.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn every_answer_carries_security_headers_and_pages_a_strict_csp() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/api/v1/states", "/api/v1/nothing-here", "/docs/", "/reference"] {
        let response = app.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(headers.get("strict-transport-security").is_none(), "{path}: no HSTS outside production");
    }
}

#[tokio::test]
async fn the_client_address_behind_a_trusted_proxy_is_its_forwarded_one() {
    // The proxy terminates TLS and forwards plain HTTP: the audit log keeps
    // the client it names, not the proxy.
    let app = TestApp::spawn_with(&["--trusted-proxies", "127.0.0.0/8"]).await;
    let (_, admin) = app.user_with_role("admin").await;
    let response = app
        .http
        .post(app.url("/api/v1/states"))
        .bearer_auth(&admin)
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .json(&json!({"name": "Goa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let audit: Value = app.get_as("/api/v1/admin/audit?action=state.create", &admin).await.json().await.unwrap();
    assert_eq!(audit["items"][0]["client_ip"], "203.0.113.7", "{audit}");
}
