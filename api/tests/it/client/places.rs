//! One method per endpoint of places, lockers and the audit log, so a test
//! reads as a story. Ids are the strings the API answered with; queries are
//! the text after `?` (empty for none).

use serde_json::{Value, json};

use crate::harness::TestApp;

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }
}

impl TestApp {
    pub async fn states(&self, query: &str) -> reqwest::Response {
        self.get(&with_query("/api/v1/states", query)).await
    }

    pub async fn create_state(&self, token: &str, name: &str) -> reqwest::Response {
        self.create_state_with(token, &json!({ "name": name })).await
    }

    /// Any body, for malformed ones.
    pub async fn create_state_with(&self, token: &str, body: &Value) -> reqwest::Response {
        self.post_as("/api/v1/states", token, body).await
    }

    pub async fn rename_state(&self, token: &str, id: &str, name: &str) -> reqwest::Response {
        self.patch_as(&format!("/api/v1/states/{id}"), token, &json!({ "name": name })).await
    }

    pub async fn delete_state(&self, token: &str, id: &str) -> reqwest::Response {
        self.delete_as(&format!("/api/v1/states/{id}"), token).await
    }

    pub async fn cities(&self, query: &str) -> reqwest::Response {
        self.get(&with_query("/api/v1/cities", query)).await
    }

    /// `{state_id, name}`.
    pub async fn create_city(&self, token: &str, body: &Value) -> reqwest::Response {
        self.post_as("/api/v1/cities", token, body).await
    }

    /// `{state_id?, name?}`.
    pub async fn update_city(&self, token: &str, id: &str, changes: &Value) -> reqwest::Response {
        self.patch_as(&format!("/api/v1/cities/{id}"), token, changes).await
    }

    pub async fn delete_city(&self, token: &str, id: &str) -> reqwest::Response {
        self.delete_as(&format!("/api/v1/cities/{id}"), token).await
    }

    pub async fn locker_points(&self, query: &str) -> reqwest::Response {
        self.get(&with_query("/api/v1/locker-points", query)).await
    }

    pub async fn locker_point(&self, id: &str) -> reqwest::Response {
        self.get(&format!("/api/v1/locker-points/{id}")).await
    }

    /// `{city_id, name, address, controller_url?}`.
    pub async fn create_point(&self, token: &str, body: &Value) -> reqwest::Response {
        self.post_as("/api/v1/locker-points", token, body).await
    }

    pub async fn update_point(&self, token: &str, id: &str, changes: &Value) -> reqwest::Response {
        self.patch_as(&format!("/api/v1/locker-points/{id}"), token, changes).await
    }

    pub async fn delete_point(&self, token: &str, id: &str) -> reqwest::Response {
        self.delete_as(&format!("/api/v1/locker-points/{id}"), token).await
    }

    pub async fn rotate_controller_token(&self, token: &str, point_id: &str) -> reqwest::Response {
        self.post_as(&format!("/api/v1/locker-points/{point_id}/controller-token"), token, &json!({})).await
    }

    /// The locker search.
    pub async fn lockers(&self, query: &str) -> reqwest::Response {
        self.get(&with_query("/api/v1/lockers", query)).await
    }

    pub async fn lockers_by_place(&self, query: &str) -> reqwest::Response {
        self.get(&with_query("/api/v1/lockers/by-place", query)).await
    }

    pub async fn locker(&self, id: &str) -> reqwest::Response {
        self.get(&format!("/api/v1/lockers/{id}")).await
    }

    /// `{point_id, door_no, size}`.
    pub async fn create_locker(&self, token: &str, body: &Value) -> reqwest::Response {
        self.post_as("/api/v1/admin/lockers", token, body).await
    }

    /// `{door_no?, size?, status?}`.
    pub async fn update_locker(&self, token: &str, id: &str, changes: &Value) -> reqwest::Response {
        self.patch_as(&format!("/api/v1/admin/lockers/{id}"), token, changes).await
    }

    pub async fn delete_locker(&self, token: &str, id: &str) -> reqwest::Response {
        self.delete_as(&format!("/api/v1/admin/lockers/{id}"), token).await
    }

    pub async fn audit_log(&self, token: &str, query: &str) -> reqwest::Response {
        self.get_as(&with_query("/api/v1/admin/audit", query), token).await
    }
}
