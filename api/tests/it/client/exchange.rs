//! One method per endpoint of the deposit side of the exchange: items,
//! drop-off (app and point screen), cancel, force-clear, controller events
//! and kiosk enrolment. Ids are the strings the API answered with.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::TestApp;

impl TestApp {
    /// `{locker_id}` or `{point_id, size, allow_larger?}`, `name`, `receiver_phone?`, `receiver_email?`.
    pub async fn deposit(&self, token: &str, body: &Value) -> reqwest::Response {
        self.post_as("/api/v1/items", token, body).await
    }

    pub async fn item(&self, token: &str, id: &str) -> reqwest::Response {
        self.get_as(&format!("/api/v1/items/{id}"), token).await
    }

    /// `query` is the text after `?` (empty for none).
    pub async fn items(&self, token: &str, query: &str) -> reqwest::Response {
        let path = if query.is_empty() { "/api/v1/items".to_owned() } else { format!("/api/v1/items?{query}") };
        self.get_as(&path, token).await
    }

    pub async fn drop_off(&self, token: &str, item_id: &str) -> reqwest::Response {
        self.post_as(&format!("/api/v1/items/{item_id}/dropoff"), token, &json!({})).await
    }

    /// The drop-off code typed at `point_id`'s screen; `kiosk_token` none: no credential.
    pub async fn drop_off_at_point(&self, kiosk_token: Option<&str>, point_id: &str, code: &str) -> reqwest::Response {
        let request = self.http.post(self.url(&format!("/api/v1/locker-points/{point_id}/dropoff")));
        let request = match kiosk_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        request.json(&json!({ "code": code })).send().await.expect("POST")
    }

    pub async fn cancel_item(&self, token: &str, item_id: &str) -> reqwest::Response {
        self.post_as(&format!("/api/v1/items/{item_id}/cancel"), token, &json!({})).await
    }

    pub async fn force_clear(&self, token: &str, locker_id: &str, reason: &str) -> reqwest::Response {
        self.post_as(&format!("/api/v1/admin/lockers/{locker_id}/force-clear"), token, &json!({ "reason": reason }))
            .await
    }

    /// `{door_no, event, command_id?}` from a point's controller.
    pub async fn controller_event(&self, controller_token: &str, body: &Value) -> reqwest::Response {
        self.post_as("/api/v1/controller/events", controller_token, body).await
    }

    pub async fn enrol_kiosk(&self, admin: &str, point_id: &str) -> reqwest::Response {
        self.post_as(&format!("/api/v1/locker-points/{point_id}/kiosk-token"), admin, &json!({})).await
    }
}

// Fixtures shared by the exchange tests -------------------------------------------

/// The JSON body of `response`, after checking its status.
pub async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

/// The `id` field of an answer.
pub fn id(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

/// A locker point with one locker per size in `sizes` (doors 1, 2, ...).
pub struct Site {
    pub point: String,
    pub controller_token: String,
    pub lockers: Vec<String>,
}

pub async fn site(app: &TestApp, admin: &str, sizes: &[&str]) -> Site {
    let tag = Uuid::now_v7().simple().to_string();
    let state = json_of(app.create_state(admin, &format!("State {tag}")).await, 201).await;
    let city =
        json_of(app.create_city(admin, &json!({ "state_id": id(&state), "name": format!("City {tag}") })).await, 201)
            .await;
    let body = json!({ "city_id": id(&city), "name": format!("Hub {tag}"), "address": "80 Feet Road" });
    let point = json_of(app.create_point(admin, &body).await, 201).await;
    let mut lockers = Vec::new();
    for (door, size) in (1..).zip(sizes) {
        let body = json!({ "point_id": id(&point), "door_no": door, "size": size });
        lockers.push(id(&json_of(app.create_locker(admin, &body).await, 201).await));
    }
    Site { point: id(&point), controller_token: point["controller_token"].as_str().unwrap().to_owned(), lockers }
}
