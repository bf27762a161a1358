//! Pickup and return: one method per endpoint, plus fixtures that make
//! stored items directly with SQL (the deposit flow lands separately; the
//! full-exchange test will use it).

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::TestApp;

/// A locker point with `doors` lockers (doors 1..=doors, size M).
pub struct Spot {
    pub point_id: Uuid,
    pub lockers: Vec<Uuid>,
}

/// A sender: a user with a proven email and, when given, a proven phone.
pub struct Sender {
    pub id: Uuid,
    pub email: String,
}

/// Who an item is for.
pub struct Receiver<'a> {
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
}

impl TestApp {
    pub async fn pickup_request(&self, locker_id: Uuid, contact: &str) -> reqwest::Response {
        self.pickup_request_from(locker_id, contact, None).await
    }

    /// From client address `ip` (through a trusted proxy's `X-Forwarded-For`).
    pub async fn pickup_request_from(&self, locker_id: Uuid, contact: &str, ip: Option<&str>) -> reqwest::Response {
        let path = format!("/api/v1/lockers/{locker_id}/pickup/request");
        self.post_from(&path, None, ip, &json!({ "contact": contact })).await
    }

    pub async fn pickup_collect(&self, locker_id: Uuid, code: &str) -> reqwest::Response {
        self.pickup_collect_from(locker_id, code, None).await
    }

    pub async fn pickup_collect_from(&self, locker_id: Uuid, code: &str, ip: Option<&str>) -> reqwest::Response {
        let path = format!("/api/v1/lockers/{locker_id}/pickup/collect");
        self.post_from(&path, None, ip, &json!({ "code": code })).await
    }

    /// At a point's screen, with its kiosk token (none: no credential).
    pub async fn point_pickup_request(&self, point_id: Uuid, kiosk: Option<&str>, contact: &str) -> reqwest::Response {
        let path = format!("/api/v1/locker-points/{point_id}/pickup/request");
        self.post_from(&path, kiosk, None, &json!({ "contact": contact })).await
    }

    pub async fn point_pickup_collect(&self, point_id: Uuid, kiosk: Option<&str>, code: &str) -> reqwest::Response {
        let path = format!("/api/v1/locker-points/{point_id}/pickup/collect");
        self.post_from(&path, kiosk, None, &json!({ "code": code })).await
    }

    async fn post_from(&self, path: &str, token: Option<&str>, ip: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(ip) = ip {
            request = request.header("x-forwarded-for", ip);
        }
        request.send().await.expect("POST")
    }

    /// Enrols the point's screen (as a fresh admin) and returns its kiosk token.
    pub async fn kiosk_token(&self, point_id: Uuid) -> String {
        let (_, admin) = self.user_with_role("admin").await;
        let response = self.post_as(&format!("/api/v1/locker-points/{point_id}/kiosk-token"), &admin, &json!({})).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["kiosk_token"].as_str().unwrap().to_owned()
    }

    /// A state, a city and a point named `name` with `doors` available lockers.
    pub async fn spot(&self, name: &str, doors: i32) -> Spot {
        let (state, city, point_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        sqlx::query("INSERT INTO states (id, name) VALUES ($1, $2)")
            .bind(state)
            .bind(format!("State {name}"))
            .execute(&self.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO cities (id, state_id, name) VALUES ($1, $2, $3)")
            .bind(city)
            .bind(state)
            .bind(format!("City {name}"))
            .execute(&self.pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO locker_points (id, city_id, name, address, controller_token_hash)
             VALUES ($1, $2, $3, '1 Test Road', $4)",
        )
        .bind(point_id)
        .bind(city)
        .bind(name)
        .bind(Uuid::new_v4().as_bytes().to_vec())
        .execute(&self.pool)
        .await
        .unwrap();
        let mut lockers = Vec::new();
        for door in 1..=doors {
            let id = Uuid::now_v7();
            sqlx::query("INSERT INTO lockers (id, point_id, door_no, size) VALUES ($1, $2, $3, 'M')")
                .bind(id)
                .bind(point_id)
                .bind(door)
                .execute(&self.pool)
                .await
                .unwrap();
            lockers.push(id);
        }
        Spot { point_id, lockers }
    }

    pub async fn sender(&self, phone: Option<&str>) -> Sender {
        let id = Uuid::now_v7();
        // Letters only: the harness reads the first six-digit run of a mail as its code.
        let letters: String = id
            .simple()
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_digit() { (c as u8 - b'0' + b'g') as char } else { c })
            .collect();
        let email = format!("sender-{letters}@example.com");
        sqlx::query(
            "INSERT INTO users (id, name, email, phone, email_verified_at, phone_verified_at)
             VALUES ($1, 'Sender', $2, $3, now(), CASE WHEN $3::text IS NULL THEN NULL ELSE now() END)",
        )
        .bind(id)
        .bind(&email)
        .bind(phone)
        .execute(&self.pool)
        .await
        .unwrap();
        Sender { id, email }
    }

    /// An item `stored` in `locker_id` since `stored_at` (pickup window 72 h), the locker `occupied`.
    pub async fn stored_item(
        &self,
        sender: &Sender,
        locker_id: Uuid,
        to: Receiver<'_>,
        stored_at: DateTime<Utc>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO items (id, locker_id, size, sender_id, name, receiver_phone, receiver_email, status,
                                reserved_at, dropoff_by, stored_at, pickup_by)
             SELECT $1, $2, size, $3, 'Blue parcel', $4, $5, 'stored', $6 - interval '5 minutes',
                    $6 + interval '10 minutes', $6, $6 + interval '72 hours'
             FROM lockers WHERE id = $2",
        )
        .bind(id)
        .bind(locker_id)
        .bind(sender.id)
        .bind(to.phone)
        .bind(to.email)
        .bind(stored_at)
        .execute(&self.pool)
        .await
        .unwrap();
        sqlx::query("UPDATE lockers SET status = 'occupied' WHERE id = $1")
            .bind(locker_id)
            .execute(&self.pool)
            .await
            .unwrap();
        id
    }

    /// An item stored `ago` before now.
    pub async fn stored_item_since(&self, sender: &Sender, locker_id: Uuid, to: Receiver<'_>, ago: Duration) -> Uuid {
        self.stored_item(sender, locker_id, to, Utc::now() - ago).await
    }

    pub async fn item_status(&self, item_id: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM items WHERE id = $1").bind(item_id).fetch_one(&self.pool).await.unwrap()
    }

    pub async fn locker_status(&self, locker_id: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM lockers WHERE id = $1")
            .bind(locker_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// The settled bill of an item: (amount, hours).
    pub async fn bill(&self, item_id: Uuid) -> Option<(i64, i32)> {
        sqlx::query_as("SELECT amount_paise, hours FROM transactions WHERE item_id = $1")
            .bind(item_id)
            .fetch_optional(&self.pool)
            .await
            .unwrap()
    }

    /// The outbox rows to `recipient`: (kind, body), oldest first.
    pub async fn outbox_to(&self, recipient: &str) -> Vec<(String, String)> {
        sqlx::query_as("SELECT kind, body FROM notifications WHERE recipient = $1 ORDER BY id")
            .bind(recipient)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}
