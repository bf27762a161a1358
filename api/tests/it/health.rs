use std::sync::Arc;

use serde_json::Value;
use sqlx::postgres::PgPoolOptions;

use crate::fakes::redis_proxy::RedisProxy;
use crate::harness::{TestApp, config};

#[tokio::test]
async fn health_answers_200_and_every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let id = response.headers().get("x-request-id").expect("x-request-id").to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
}

#[tokio::test]
async fn a_request_id_sent_by_the_client_is_kept() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/health")).header("x-request-id", "client-chosen-42").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
}

#[tokio::test]
async fn ready_answers_200_when_postgres_and_redis_answer() {
    let app = TestApp::spawn().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
}

#[tokio::test]
async fn ready_stays_200_and_reports_redis_degraded_when_redis_is_cut() {
    // Redis only backs rate limits, which the in-process limiter serves meanwhile:
    // a 503 here would take every replica out of the load balancer at once.
    let proxy = RedisProxy::start("127.0.0.1:6379").await;
    let app = TestApp::spawn_with(&[&format!("--redis-url={}", proxy.url())]).await;
    assert_eq!(app.get("/ready").await.json::<Value>().await.unwrap()["checks"]["redis"], "ok");
    proxy.cut();
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["redis"], "degraded");
    assert_eq!(body["checks"]["postgres"], "ok");
}

#[tokio::test]
async fn ready_answers_503_when_postgres_does_not_answer() {
    // Nothing listens on port 1: every connection attempt is refused.
    let pool = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nothing")
        .unwrap();
    let app = TestApp::serve(Arc::new(config("nothing", &[])), pool, String::new()).await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "down");
    assert!(response_has_request_id(&app).await);
    // Liveness does not depend on the database.
    assert_eq!(app.get("/health").await.status(), 200);
}

async fn response_has_request_id(app: &TestApp) -> bool {
    app.get("/ready").await.headers().contains_key("x-request-id")
}

#[tokio::test]
async fn unknown_routes_answer_404_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/nothing-here").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route_not_found");
    assert!(body["error"]["message"].is_string());
}
