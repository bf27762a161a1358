//! Places and lockers: admin-only writes, uniqueness, delete protection,
//! search by place, audit entries, demo data.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{TestApp, eventually};

async fn created(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

async fn code_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

/// A state > city > point > lockers chain made through the API; returns (state, city, point) ids.
async fn network(
    app: &TestApp,
    admin: &str,
    state: &str,
    city: &str,
    point: &str,
    address: &str,
) -> (String, String, String) {
    let states: Value = app.states("").await.json().await.unwrap();
    let state_id = match states["items"].as_array().unwrap().iter().find(|s| s["name"] == state) {
        Some(s) => s["id"].as_str().unwrap().to_owned(),
        None => created(app.create_state(admin, state).await).await["id"].as_str().unwrap().to_owned(),
    };
    let cities: Value = app.cities(&format!("state_id={state_id}")).await.json().await.unwrap();
    let city_id = match cities["items"].as_array().unwrap().iter().find(|c| c["name"] == city) {
        Some(c) => c["id"].as_str().unwrap().to_owned(),
        None => created(app.create_city(admin, &json!({ "state_id": state_id, "name": city })).await).await["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    let body = json!({ "city_id": city_id, "name": point, "address": address });
    let point = created(app.create_point(admin, &body).await).await;
    (state_id, city_id, point["id"].as_str().unwrap().to_owned())
}

async fn add_locker(app: &TestApp, admin: &str, point_id: &str, door: i32, size: &str) -> String {
    let body = json!({ "point_id": point_id, "door_no": door, "size": size });
    created(app.create_locker(admin, &body).await).await["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn writes_need_an_admin_and_reads_are_public() {
    let app = TestApp::spawn().await;
    let (_, user) = app.user_with_role("user").await;
    let (_, admin) = app.user_with_role("admin").await;
    let body = json!({ "name": "Karnataka" });
    let anonymous = app.http.post(app.url("/api/v1/states")).json(&body).send().await.unwrap();
    assert_eq!(code_of(anonymous).await, (401, "unauthorized".into()));
    assert_eq!(code_of(app.create_state_with(&user, &body).await).await, (403, "forbidden".into()));
    let (state, city, point) = network(&app, &admin, "Karnataka", "Bengaluru", "Koramangala Hub", "80 Feet Road").await;
    let locker = add_locker(&app, &admin, &point, 1, "M").await;

    for (path, body) in [
        ("/api/v1/cities".to_owned(), json!({ "state_id": state, "name": "Mysuru" })),
        ("/api/v1/locker-points".to_owned(), json!({ "city_id": city, "name": "P2", "address": "A" })),
        ("/api/v1/admin/lockers".to_owned(), json!({ "point_id": point, "door_no": 2, "size": "S" })),
    ] {
        assert_eq!(app.post_as(&path, &user, &body).await.status(), 403, "{path}");
    }
    for path in [
        format!("/api/v1/states/{state}"),
        format!("/api/v1/cities/{city}"),
        format!("/api/v1/locker-points/{point}"),
        format!("/api/v1/admin/lockers/{locker}"),
    ] {
        assert_eq!(app.patch_as(&path, &user, &json!({ "name": "x" })).await.status(), 403, "{path}");
        assert_eq!(app.delete_as(&path, &user).await.status(), 403, "{path}");
        assert_eq!(app.http.delete(app.url(&path)).send().await.unwrap().status(), 401, "{path}");
    }
    for path in ["/api/v1/states", "/api/v1/cities", "/api/v1/locker-points", "/api/v1/lockers"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    assert_eq!(app.locker(&locker).await.status(), 200);
    assert_eq!(app.locker(&Uuid::new_v4().to_string()).await.status(), 404);
    assert_eq!(code_of(app.audit_log(&user, "").await).await, (403, "forbidden".into()));
}

#[tokio::test]
async fn names_are_unique_within_their_parent_whatever_the_case() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (state, city, _) = network(&app, &admin, "Karnataka", "Bengaluru", "Koramangala Hub", "80 Feet Road").await;
    let dup = app.create_state(&admin, " KARNATAKA ").await;
    assert_eq!(code_of(dup).await, (409, "name_taken".into()));
    let dup = app.create_city(&admin, &json!({ "state_id": state, "name": "bengaluru" })).await;
    assert_eq!(code_of(dup).await, (409, "name_taken".into()));
    let body = json!({ "city_id": city, "name": "koramangala hub", "address": "elsewhere" });
    assert_eq!(code_of(app.create_point(&admin, &body).await).await, (409, "name_taken".into()));
    // The same city name in another state is fine.
    let other = created(app.create_state(&admin, "Goa").await).await;
    created(app.create_city(&admin, &json!({ "state_id": other["id"], "name": "Bengaluru" })).await).await;

    let missing = json!({ "state_id": Uuid::new_v4(), "name": "Nowhere" });
    assert_eq!(code_of(app.create_city(&admin, &missing).await).await, (422, "parent_not_found".into()));
    let missing = json!({ "city_id": Uuid::new_v4(), "name": "P", "address": "A" });
    let got = code_of(app.create_point(&admin, &missing).await).await;
    assert_eq!(got, (422, "parent_not_found".into()));
    assert_eq!(code_of(app.create_state(&admin, "").await).await, (422, "invalid_name".into()));
    assert_eq!(
        code_of(app.create_state_with(&admin, &json!({ "nam": "x" })).await).await,
        (400, "invalid_body".into())
    );
    let renamed = app.rename_state(&admin, other["id"].as_str().unwrap(), "karnataka").await;
    assert_eq!(code_of(renamed).await, (409, "name_taken".into()));
}

#[tokio::test]
async fn places_and_lockers_in_use_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let (sender, admin) = app.user_with_role("admin").await;
    let (state, city, point) = network(&app, &admin, "Karnataka", "Bengaluru", "Koramangala Hub", "80 Feet Road").await;
    let locker = add_locker(&app, &admin, &point, 1, "M").await;
    let (app, admin) = (&app, admin.as_str());
    assert_eq!(code_of(app.delete_state(admin, &state).await).await, (409, "state_has_cities".into()));
    assert_eq!(code_of(app.delete_city(admin, &city).await).await, (409, "city_has_points".into()));
    assert_eq!(code_of(app.delete_point(admin, &point).await).await, (409, "point_has_lockers".into()));

    sqlx::query("UPDATE lockers SET status = 'reserved' WHERE id = $1::uuid")
        .bind(&locker)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(code_of(app.delete_locker(admin, &locker).await).await, (409, "locker_not_empty".into()));
    for change in [json!({ "status": "maintenance" }), json!({ "door_no": 9 }), json!({ "size": "S" })] {
        let response = app.update_locker(admin, &locker, &change).await;
        assert_eq!(code_of(response).await, (409, "locker_in_use".into()), "{change}");
    }

    // A locker with an exchange on record keeps its history.
    sqlx::query(
        "INSERT INTO items (id, locker_id, size, sender_id, name, receiver_email, status, dropoff_by)
         SELECT $1, $2::uuid, size, $3, 'Book', 'r@example.com', 'cancelled', now() FROM lockers WHERE id = $2::uuid",
    )
    .bind(Uuid::now_v7())
    .bind(&locker)
    .bind(sender)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE lockers SET status = 'available' WHERE id = $1::uuid")
        .bind(&locker)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(code_of(app.delete_locker(admin, &locker).await).await, (409, "locker_has_history".into()));

    let empty = add_locker(app, admin, &point, 2, "S").await;
    assert_eq!(app.delete_locker(admin, &empty).await.status(), 204);
    assert_eq!(app.delete_locker(admin, &empty).await.status(), 404);
}

#[tokio::test]
async fn lockers_have_unique_doors_sizes_and_a_maintenance_switch() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, city, point) = network(&app, &admin, "Karnataka", "Bengaluru", "Koramangala Hub", "80 Feet Road").await;
    let other =
        created(app.create_point(&admin, &json!({ "city_id": city, "name": "P2", "address": "A" })).await).await;
    let locker = add_locker(&app, &admin, &point, 7, "XL").await;
    add_locker(&app, &admin, other["id"].as_str().unwrap(), 7, "S").await;
    let body = json!({ "point_id": point, "door_no": 7, "size": "S" });
    assert_eq!(code_of(app.create_locker(&admin, &body).await).await, (409, "door_taken".into()));
    for (body, expected) in [
        (json!({ "point_id": point, "door_no": 8, "size": "XXL" }), (400, "invalid_body")),
        (json!({ "point_id": point, "door_no": 0, "size": "S" }), (422, "invalid_door_no")),
        (json!({ "point_id": Uuid::new_v4(), "door_no": 8, "size": "S" }), (422, "point_not_found")),
    ] {
        let got = code_of(app.create_locker(&admin, &body).await).await;
        assert_eq!(got, (expected.0, expected.1.to_owned()), "{body}");
    }
    let shown: Value = app.locker(&locker).await.json().await.unwrap();
    assert_eq!((shown["size"].as_str(), shown["status"].as_str()), (Some("XL"), Some("available")));
    assert_eq!(shown["inner_height_mm"], 600);
    assert_eq!(shown["online"], true, "simulated doors count as online");

    let on: Value = app.update_locker(&admin, &locker, &json!({ "status": "maintenance" })).await.json().await.unwrap();
    assert_eq!(on["status"], "maintenance");
    let off: Value =
        app.update_locker(&admin, &locker, &json!({ "status": "available", "size": "L" })).await.json().await.unwrap();
    assert_eq!((off["status"].as_str(), off["size"].as_str()), (Some("available"), Some("L")));
    assert_eq!(
        code_of(app.update_locker(&admin, &locker, &json!({ "status": "occupied" })).await).await,
        (422, "status_not_settable".into())
    );
}

#[tokio::test]
async fn a_point_shows_its_controller_token_once_and_stores_only_a_hash() {
    let app = TestApp::spawn_with(&["--door-driver=http"]).await;
    let (_, admin) = app.user_with_role("admin").await;
    let state = created(app.create_state(&admin, "Goa").await).await;
    let city = created(app.create_city(&admin, &json!({ "state_id": state["id"], "name": "Panaji" })).await).await;
    let body = json!({ "city_id": city["id"], "name": "Café Mercado", "address": "Rua de Ourém", "controller_url": "http://10.0.0.5:8080/" });
    let point = created(app.create_point(&admin, &body).await).await;
    let token = point["controller_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(point["controller_url"], "http://10.0.0.5:8080");
    let id = point["id"].as_str().unwrap().to_owned();

    let stored: Vec<u8> = sqlx::query_scalar("SELECT controller_token_hash FROM locker_points WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, lockers_core::places::ControllerToken::digest(&token));
    let read = app.locker_point(&id).await.text().await.unwrap();
    assert!(!read.contains(&token) && !read.contains("controller_token"));
    assert!(!read.contains("10.0.0.5"), "controller addresses are not public: {read}");
    let read: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read["online"], false, "no heartbeat yet");

    sqlx::query("UPDATE locker_points SET last_heartbeat_at = now() - interval '30 seconds' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.locker_point(&id).await.json::<Value>().await.unwrap()["online"], true);
    sqlx::query("UPDATE locker_points SET last_heartbeat_at = now() - interval '2 minutes' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.locker_point(&id).await.json::<Value>().await.unwrap()["online"], false);

    let rotated: Value = app.rotate_controller_token(&admin, &id).await.json().await.unwrap();
    let new_token = rotated["controller_token"].as_str().unwrap();
    assert_ne!(new_token, token);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT controller_token_hash FROM locker_points WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, lockers_core::places::ControllerToken::digest(new_token));

    let bad_url = json!({ "controller_url": "ftp://x" });
    assert_eq!(code_of(app.update_point(&admin, &id, &bad_url).await).await, (422, "invalid_controller_url".into()));
    let cleared: Value = app.update_point(&admin, &id, &json!({ "controller_url": null })).await.json().await.unwrap();
    assert_eq!(cleared["controller_url"], Value::Null);
}

async fn search(app: &TestApp, query: &str) -> Value {
    let response = app.lockers(query).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

fn point_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        list["items"].as_array().unwrap().iter().map(|l| l["point_name"].as_str().unwrap().to_owned()).collect();
    names.dedup();
    names
}

#[tokio::test]
async fn search_finds_lockers_by_partial_accent_free_text_across_point_address_city_and_state() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, _, kora) = network(&app, &admin, "Karnataka", "Bengaluru", "Koramangala Hub", "80 Feet Road").await;
    let (_, mysuru, devaraja) =
        network(&app, &admin, "Karnataka", "Mysuru", "Devaraja Market", "Sayyaji Rao Road").await;
    let (_, _, cafe) = network(&app, &admin, "Goa", "Panaji", "Café Mercado Lockers", "Rua de Ourém, Fontainhas").await;
    for (point, doors) in [(&kora, 3), (&devaraja, 2), (&cafe, 2)] {
        for door in 1..=doors {
            add_locker(&app, &admin, point, door, if door == 1 { "S" } else { "L" }).await;
        }
    }

    assert_eq!(point_names(&search(&app, "q=koram").await), ["Koramangala Hub"], "partial point name");
    assert_eq!(point_names(&search(&app, "q=sayyaji").await), ["Devaraja Market"], "address");
    assert_eq!(point_names(&search(&app, "q=MYSU").await), ["Devaraja Market"], "city, any case");
    assert_eq!(point_names(&search(&app, "q=cafe").await), ["Café Mercado Lockers"], "accent-free finds accented");
    assert_eq!(point_names(&search(&app, "q=Our%C3%A9m").await), ["Café Mercado Lockers"], "accented finds accented");
    assert_eq!(
        point_names(&search(&app, "q=ourem%20panaji").await),
        ["Café Mercado Lockers"],
        "every word, across fields"
    );
    let state = search(&app, "q=karnat").await;
    assert_eq!(state["total"], 5, "state name matches all its lockers");
    assert_eq!(search(&app, "q=zzzz").await["total"], 0);
    assert_eq!(search(&app, "q=%25").await["total"], 0, "`%` is literal, not a wildcard");
    assert_eq!(search(&app, "q=_").await["total"], 0, "`_` is literal, not a wildcard");
    assert_eq!(search(&app, "q=%00").await["total"], 7, "a NUL byte is no error: blank text, no filter");

    // Filters and pagination.
    assert_eq!(search(&app, "q=karnataka&size=S").await["total"], 2);
    assert_eq!(search(&app, &format!("city_id={mysuru}")).await["total"], 2);
    assert_eq!(search(&app, &format!("point_id={kora}&size=L")).await["total"], 2);
    let page: Value = search(&app, "per_page=3&page=3").await;
    assert_eq!((page["total"].as_i64(), page["items"].as_array().unwrap().len()), (Some(7), 1));
    // A change committed by another process (here: straight SQL) reaches search by NOTIFY.
    sqlx::query("UPDATE lockers SET status = 'maintenance' WHERE point_id = $1::uuid")
        .bind(&cafe)
        .execute(&app.pool)
        .await
        .unwrap();
    let followed =
        eventually(Duration::from_secs(5), || async { search(&app, "status=available").await["total"] == 5 }).await;
    assert!(followed, "search still shows the maintenance lockers as available");

    let by_place: Value = app.lockers_by_place("location=koramangala").await.json().await.unwrap();
    assert_eq!(point_names(&by_place), ["Koramangala Hub"]);
    assert_eq!(code_of(app.lockers_by_place("").await).await, (400, "invalid_query".into()));
    assert_eq!(code_of(app.lockers("size=XXL").await).await, (400, "invalid_query".into()));
    assert_eq!(code_of(app.lockers("city_id=nope").await).await, (400, "invalid_query".into()));

    // Points search too, and renaming a city re-indexes its points.
    let points: Value = app.locker_points("q=fontainhas").await.json().await.unwrap();
    assert_eq!(points["total"], 1);
    app.update_city(&admin, &mysuru, &json!({ "name": "Mysore" })).await;
    assert_eq!(point_names(&search(&app, "q=mysore").await), ["Devaraja Market"]);
    assert_eq!(search(&app, "q=mysuru").await["total"], 0);
    // Moving a city to another state re-indexes its points too.
    let goa: Value = app.states("").await.json().await.unwrap();
    let goa = goa["items"].as_array().unwrap().iter().find(|s| s["name"] == "Goa").unwrap()["id"].clone();
    app.update_city(&admin, &mysuru, &json!({ "state_id": goa })).await;
    assert_eq!(point_names(&search(&app, "q=mysore%20goa").await), ["Devaraja Market"]);
    assert_eq!(search(&app, "q=karnataka").await["total"], 3);
}

#[tokio::test]
async fn every_admin_action_is_audited_and_the_log_filters_newest_first() {
    let app = TestApp::spawn().await;
    let (admin_id, admin) = app.user_with_role("admin").await;
    let (state, city, point) = network(&app, &admin, "Karnataka", "Bengaluru", "Koramangala Hub", "80 Feet Road").await;
    let locker = add_locker(&app, &admin, &point, 1, "M").await;
    app.rename_state(&admin, &state, "Karnātaka").await;
    app.update_locker(&admin, &locker, &json!({ "status": "maintenance" })).await;
    app.update_locker(&admin, &locker, &json!({ "status": "available" })).await;
    app.rotate_controller_token(&admin, &point).await;
    app.delete_locker(&admin, &locker).await;
    app.update_city(&admin, &city, &json!({ "name": "Bangalore" })).await;

    let log: Value = app.audit_log(&admin, "per_page=100").await.json().await.unwrap();
    let actions: Vec<&str> = log["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "city.update",
            "locker.delete",
            "locker_point.rotate_token",
            "locker.maintenance_off",
            "locker.maintenance_on",
            "state.update",
            "locker.create",
            "locker_point.create",
            "city.create",
            "state.create"
        ]
    );
    let first = &log["items"][0];
    assert_eq!(first["actor_id"], admin_id.to_string());
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(
        (first["before"]["name"].as_str(), first["after"]["name"].as_str()),
        (Some("Bengaluru"), Some("Bangalore"))
    );
    assert!(first["request_id"].as_str().is_some_and(|r| r.len() == 36));

    let (app, admin) = (&app, admin.as_str());
    let only = |q: String| async move {
        let page: Value = app.audit_log(admin, &q).await.json().await.unwrap();
        page["total"].as_i64().unwrap()
    };
    assert_eq!(only(format!("actor_id={admin_id}")).await, 10);
    assert_eq!(only(format!("actor_id={}", Uuid::new_v4())).await, 0);
    assert_eq!(only("action=locker.create".into()).await, 1);
    assert_eq!(only(format!("target_type=locker&target_id={locker}")).await, 4);
    let now = chrono::Utc::now();
    let range = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        format!("from={}&to={}", urlencode(&from.to_rfc3339()), urlencode(&to.to_rfc3339()))
    };
    assert_eq!(only(range(now - chrono::Duration::minutes(5), now + chrono::Duration::minutes(1))).await, 10);
    assert_eq!(only(range(now + chrono::Duration::minutes(1), now + chrono::Duration::minutes(2))).await, 0);
    let paged: Value = app.audit_log(admin, "per_page=4&page=3").await.json().await.unwrap();
    assert_eq!(paged["items"].as_array().unwrap().len(), 2);
    assert_eq!(code_of(app.audit_log(admin, "from=yesterday").await).await, (400, "invalid_query".into()));
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn locker_points_are_paged_in_order_with_the_total_of_every_match() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, city, _) = network(&app, &admin, "Goa", "Panaji", "Point 0", "Market Road").await;
    for i in 1..7 {
        let road = if i % 2 == 0 { "Market Road" } else { "Beach Road" };
        let body = json!({ "city_id": city, "name": format!("Point {i}"), "address": road });
        created(app.create_point(&admin, &body).await).await;
    }
    let (_, _, elsewhere) = network(&app, &admin, "Goa", "Margao", "Station Point", "Market Road").await;

    let names = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
    };
    let mut seen = Vec::new();
    for n in 1..=3 {
        let page: Value = app.locker_points(&format!("city_id={city}&per_page=3&page={n}")).await.json().await.unwrap();
        assert_eq!(
            (page["total"].as_i64(), page["page"].as_u64(), page["per_page"].as_u64()),
            (Some(7), Some(n), Some(3))
        );
        seen.extend(names(&page));
    }
    let expected: Vec<String> = (0..7).map(|i| format!("Point {i}")).collect();
    assert_eq!(seen, expected, "three pages hold every point once, by name");
    let past_the_end: Value =
        app.locker_points(&format!("city_id={city}&per_page=3&page=4")).await.json().await.unwrap();
    assert_eq!((past_the_end["total"].as_i64(), names(&past_the_end).len()), (Some(7), 0));

    // The total counts matches of the search, across cities, not the page.
    let market: Value = app.locker_points("q=market&per_page=2").await.json().await.unwrap();
    assert_eq!((market["total"].as_i64(), names(&market).len()), (Some(5), 2), "{market}");
    let market_page_3: Value = app.locker_points("q=market&per_page=2&page=3").await.json().await.unwrap();
    assert_eq!(names(&market_page_3).len(), 1);
    let in_city: Value = app.locker_points(&format!("q=market%20road&city_id={city}")).await.json().await.unwrap();
    assert_eq!(in_city["total"], 4, "{in_city}");
    assert!(!names(&in_city).contains(&"Station Point".to_owned()), "{elsewhere} is in another city");
}

#[tokio::test]
async fn a_page_deeper_than_ten_thousand_rows_answers_422_page_too_deep_on_every_list() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    for path in ["/api/v1/states", "/api/v1/cities", "/api/v1/locker-points", "/api/v1/lockers"] {
        assert_eq!(app.get(&format!("{path}?page=100&per_page=100")).await.status(), 200, "{path}: the last page");
        for query in ["page=101&per_page=100", "page=201", "page=4294967295&per_page=100"] {
            let answer = code_of(app.get(&format!("{path}?{query}")).await).await;
            assert_eq!(answer, (422, "page_too_deep".into()), "{path}?{query}");
        }
    }
    for path in ["/api/v1/users", "/api/v1/admin/audit"] {
        let answer = code_of(app.get_as(&format!("{path}?page=101&per_page=100"), &admin).await).await;
        assert_eq!(answer, (422, "page_too_deep".into()), "{path}");
    }
    let answer = code_of(app.states("page=0").await).await;
    assert_eq!(answer, (400, "invalid_query".into()), "page 0 is malformed, not deep");
}

/// The point names of a `/locker-points` answer, in order.
async fn found_points(app: &TestApp, query: &str) -> Vec<String> {
    let response = app.locker_points(query).await;
    assert_eq!(response.status(), 200, "{query}");
    let page: Value = response.json().await.unwrap();
    page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn misspelled_places_are_found_ranked_below_exact_matches() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    network(&app, &admin, "Karnataka", "Bengaluru", "Koramangala Hub", "80 Feet Road").await;
    network(&app, &admin, "Karnataka", "Bengaluru", "Indiranagar Metro", "100 Feet Road").await;
    network(&app, &admin, "Goa", "Panaji", "Café Mercado", "Rua de Ourém").await;

    // As a new user types it: a letter missing, in two places.
    assert_eq!(found_points(&app, "q=koramangla").await, ["Koramangala Hub"]);
    assert_eq!(found_points(&app, "q=kormangala").await, ["Koramangala Hub"]);
    assert_eq!(found_points(&app, "q=koramagnala%20bengaluru").await, ["Koramangala Hub"], "two letters swapped");
    assert_eq!(found_points(&app, "q=bengalooru").await, ["Indiranagar Metro", "Koramangala Hub"], "city, by name");
    assert_eq!(found_points(&app, "q=mercadoo%20ourm").await, ["Café Mercado"], "accents and typos together");
    assert!(found_points(&app, "q=kmgl").await.is_empty(), "too far from any word");

    // A place whose name is spelled the way the typo is ranks first for it;
    // the misspelled match still follows.
    network(&app, &admin, "Karnataka", "Bengaluru", "Koramangla Stores", "1st Cross").await;
    assert_eq!(found_points(&app, "q=koramangla").await, ["Koramangla Stores", "Koramangala Hub"]);
    assert_eq!(found_points(&app, "q=koramangala").await, ["Koramangala Hub", "Koramangla Stores"]);
    // A part of a word outranks a misspelling: "metro" is in a name, "retro" a typo of it.
    network(&app, &admin, "Karnataka", "Bengaluru", "Retro Arcade", "Church Street").await;
    assert_eq!(found_points(&app, "q=metro").await, ["Indiranagar Metro", "Retro Arcade"]);
    // Lockers are found through the same ranking.
    let hub_lockers: Value = app.lockers("q=kormangala%20hub").await.json().await.unwrap();
    assert_eq!(hub_lockers["total"], 0, "no lockers yet, but no error");
}

#[tokio::test]
async fn points_answer_their_availability_per_size_and_filter_by_size() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, city, hub) = network(&app, &admin, "Karnataka", "Bengaluru", "Koramangala Hub", "80 Feet Road").await;
    let (_, _, metro) = network(&app, &admin, "Karnataka", "Bengaluru", "Indiranagar Metro", "100 Feet Road").await;
    let mut hub_lockers = Vec::new();
    for (door, size) in [(1, "S"), (2, "S"), (3, "M"), (4, "XL")] {
        hub_lockers.push(add_locker(&app, &admin, &hub, door, size).await);
    }
    add_locker(&app, &admin, &metro, 1, "L").await;

    let page: Value = app.locker_points("q=koramangala").await.json().await.unwrap();
    let point = &page["items"][0];
    assert_eq!(point["available"], json!({ "S": 2, "M": 1, "L": 0, "XL": 1 }), "{page}");
    assert_eq!((point["online"].as_bool(), point["city_name"].as_str()), (Some(true), Some("Bengaluru")));
    assert_eq!((point["state_name"].as_str(), point["city_id"].as_str()), (Some("Karnataka"), Some(city.as_str())));
    assert_eq!(found_points(&app, "size=L").await, ["Indiranagar Metro"]);
    assert_eq!(found_points(&app, "size=XL&q=feet").await, ["Koramangala Hub"]);

    // A reservation elsewhere (another process, straight SQL) is seen by NOTIFY.
    sqlx::query("UPDATE lockers SET status = 'reserved' WHERE id = $1::uuid")
        .bind(&hub_lockers[3])
        .execute(&app.pool)
        .await
        .unwrap();
    let followed = eventually(Duration::from_secs(5), || async {
        let page: Value = app.locker_points("q=koramangala").await.json().await.unwrap();
        page["items"][0]["available"]["XL"] == 0
    })
    .await;
    assert!(followed, "the reserved XL locker is still shown available");
    assert!(found_points(&app, "size=XL").await.is_empty());

    // One point's lockers, by door.
    let listed: Value = app.lockers(&format!("point_id={hub}")).await.json().await.unwrap();
    let doors: Vec<i64> = listed["items"].as_array().unwrap().iter().map(|l| l["door_no"].as_i64().unwrap()).collect();
    assert_eq!((listed["total"].as_i64(), doors), (Some(4), vec![1, 2, 3, 4]));
    assert_eq!(listed["items"][3]["status"], "reserved");
    let by_id: Value = app.locker(listed["items"][2]["id"].as_str().unwrap()).await.json().await.unwrap();
    for field in ["inner_width_mm", "inner_height_mm", "inner_depth_mm", "point_name", "city_name", "size", "status"] {
        assert_eq!(listed["items"][2][field], by_id[field], "search and the locker itself agree on {field}");
    }
    let available: Value = app.lockers(&format!("point_id={hub}&status=available&size=S")).await.json().await.unwrap();
    assert_eq!(available["total"], 2);
    let unknown: Value = app.lockers(&format!("point_id={}", Uuid::new_v4())).await.json().await.unwrap();
    assert_eq!(unknown["total"], 0);
}

#[tokio::test]
async fn search_follows_places_written_by_another_process_and_bounds_its_input() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, city, _) = network(&app, &admin, "Goa", "Panaji", "Café Mercado", "Rua de Ourém").await;
    assert_eq!(found_points(&app, "q=fontainhas").await, Vec::<String>::new());
    // Another intake (here: straight SQL) adds a point and a locker.
    let point = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO locker_points (id, city_id, name, address, controller_token_hash)
         VALUES ($1, $2::uuid, 'Fontainhas Gate', 'Rua 31 de Janeiro', '\\x00')",
    )
    .bind(point)
    .bind(&city)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO lockers (id, point_id, door_no, size) VALUES ($1, $2, 1, 'M')")
        .bind(Uuid::now_v7())
        .bind(point)
        .execute(&app.pool)
        .await
        .unwrap();
    let found = eventually(Duration::from_secs(5), || async {
        let page: Value = app.locker_points("q=fontainhas").await.json().await.unwrap();
        page["total"] == 1 && page["items"][0]["available"]["M"] == 1
    })
    .await;
    assert!(found, "a point added elsewhere never reached search");

    // Input bounds: long text is refused, many words are cut, odd text matches nothing.
    let long = "a".repeat(201);
    assert_eq!(code_of(app.locker_points(&format!("q={long}")).await).await, (400, "invalid_query".into()));
    assert_eq!(code_of(app.lockers(&format!("q={long}")).await).await, (400, "invalid_query".into()));
    assert_eq!(app.locker_points(&format!("q={}", "a".repeat(200))).await.status(), 200);
    let many = (0..50).map(|i| format!("w{i}")).collect::<Vec<_>>().join("%20");
    assert_eq!(app.locker_points(&format!("q={many}")).await.status(), 200);
    assert!(found_points(&app, "q=%25%25").await.is_empty());
    assert_eq!(code_of(app.locker_points("size=XXL").await).await, (400, "invalid_query".into()));
    assert_eq!(code_of(app.locker_points("per_page=101").await).await, (400, "invalid_query".into()));
}
