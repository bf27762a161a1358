//! Accounts and authentication through real HTTP, with codes read from the
//! fake SMTP server and the fake Twilio endpoint.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Stack, eventually};

const PASSWORD: &str = "violet kettle 42";
const EMAIL: &str = "asha@example.com";
const PHONE: &str = "+919876543210";

async fn signup(stack: &Stack, email: &str, phone: Option<&str>) -> Value {
    let response = stack.signup("Asha Rao", email, phone, PASSWORD).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn login(stack: &Stack, identifier: &str, password: &str) -> reqwest::Response {
    stack.login(identifier, password).await
}

/// Proves `email` with the code of its `n`th message, giving the password so it is kept.
async fn prove_email(stack: &Stack, email: &str, n: usize) -> Value {
    let code = stack.email_code(email, n).await;
    let response = stack.verify_keeping_password(email, &code, PASSWORD).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Signs up and proves the email (and the phone, when given, by its first SMS,
/// signed in: a phone is proven only with its account's session), as the owner would.
async fn verified(stack: &Stack, email: &str, phone: Option<&str>) -> Value {
    let user = signup(stack, email, phone).await;
    prove_email(stack, email, 1).await;
    if let Some(phone) = phone {
        let code = stack.sms_code(phone, 1).await;
        let access = access_token(stack, email, PASSWORD).await;
        let response = stack.verify_as(&access, phone, &code).await;
        assert_eq!(response.status(), 200);
    }
    user
}

/// Signs up, proves the email and logs in; returns (user id, access token, refresh token).
async fn logged_in(stack: &Stack, email: &str) -> (String, String, String) {
    let user = verified(stack, email, None).await;
    let tokens: Value = login(stack, email, PASSWORD).await.json().await.unwrap();
    (
        user["id"].as_str().unwrap().to_owned(),
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn make_admin(stack: &Stack, email: &str) -> String {
    let (id, _, _) = logged_in(stack, email).await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1::uuid").bind(&id).execute(&stack.pool).await.unwrap();
    let tokens: Value = login(stack, email, PASSWORD).await.json().await.unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// The (unverified) claims of a JWT, as a client could read them.
fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

async fn audit_count(stack: &Stack, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
        .bind(action)
        .fetch_one(&stack.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn signup_sends_codes_by_email_and_sms_and_each_verifies_its_contact() {
    let stack = Stack::spawn(&[]).await;
    let user = signup(&stack, "Asha@Example.com", Some(PHONE)).await;
    assert_eq!(user["email"], EMAIL);
    assert_eq!(user["role"], "user");
    assert_eq!((user["email_verified"].as_bool(), user["phone_verified"].as_bool()), (Some(false), Some(false)));
    assert!(user.get("password_hash").is_none());

    let email_code = stack.email_code(EMAIL, 1).await;
    let sms_code = stack.sms_code(PHONE, 1).await;
    let mail = &stack.smtp.mails_to(EMAIL)[0];
    let (text, html) = (mail.text_part().unwrap(), mail.html_part().unwrap());
    assert!(text.contains(&email_code) && text.contains("confirm your contact details"), "{text}");
    assert!(html.contains(&email_code) && html.contains("confirm your contact details"), "{html}");
    assert_eq!(mail.from, "no-reply@lockers.test");

    // The client that signed up gives the password along, so it (and the phone) stay.
    let verified = stack.verify_keeping_password(EMAIL, &email_code, PASSWORD).await;
    assert_eq!(verified.status(), 200);
    assert_eq!(verified.json::<Value>().await.unwrap()["email_verified"], true);
    // The phone's code is the account's: redeemed with its session.
    let access = access_token(&stack, EMAIL, PASSWORD).await;
    let verified: Value = stack.verify_as(&access, PHONE, &sms_code).await.json().await.unwrap();
    assert_eq!((verified["email_verified"].as_bool(), verified["phone_verified"].as_bool()), (Some(true), Some(true)));

    // A code works once.
    let again = stack.verify(EMAIL, &email_code).await;
    assert_eq!(error_code(again).await, (401, "invalid_code".into()));
    // No code or secret is left readable in the outbox.
    let bodies: Vec<String> =
        sqlx::query_scalar("SELECT body FROM notifications").fetch_all(&stack.pool).await.unwrap();
    assert!(bodies.iter().all(|b| !b.contains(&email_code) && !b.contains(&sms_code)));
}

#[tokio::test]
async fn signup_refuses_bad_input_with_stable_codes_and_writes_nothing() {
    let stack = Stack::spawn(&[]).await;
    let cases = [
        (json!({ "name": "", "email": EMAIL, "password": PASSWORD }), 422, "invalid_name"),
        (json!({ "name": "x".repeat(101), "email": EMAIL, "password": PASSWORD }), 422, "invalid_name"),
        (json!({ "name": "A", "email": "not-an-email", "password": PASSWORD }), 422, "invalid_email"),
        (json!({ "name": "A", "email": EMAIL, "phone": "98765", "password": PASSWORD }), 422, "invalid_phone"),
        (json!({ "name": "A", "email": EMAIL, "password": "short" }), 422, "password_too_short"),
        (json!({ "name": "A", "email": EMAIL, "password": "p".repeat(129) }), 422, "password_too_long"),
        (json!({ "name": "A", "email": EMAIL, "password": "password123" }), 422, "password_too_common"),
        (json!({ "name": "A", "email": EMAIL }), 400, "invalid_body"),
        (json!({ "name": 5, "email": EMAIL, "password": PASSWORD }), 400, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let response = stack.signup_with(&body).await;
        assert_eq!(error_code(response).await, (status, code.to_owned()), "{body}");
    }
    let malformed = stack
        .http
        .post(stack.url("/api/v1/auth/signup"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(malformed).await, (400, "malformed_json".into()));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&stack.pool).await.unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn a_duplicate_email_or_verified_phone_is_a_409_with_its_own_code() {
    let stack = Stack::spawn(&[]).await;
    // A phone is taken once proven (an unverified one blocks nobody: see the squatting test).
    verified(&stack, EMAIL, Some(PHONE)).await;
    let same_email = json!({ "name": "B", "email": "ASHA@example.com", "password": PASSWORD });
    assert_eq!(error_code(stack.signup_with(&same_email).await).await, (409, "email_taken".into()));
    let same_phone = json!({ "name": "B", "email": "b@example.com", "phone": PHONE, "password": PASSWORD });
    assert_eq!(error_code(stack.signup_with(&same_phone).await).await, (409, "phone_taken".into()));
}

#[tokio::test]
async fn five_wrong_tries_kill_a_code() {
    let stack = Stack::spawn(&[]).await;
    signup(&stack, EMAIL, None).await;
    let code = stack.email_code(EMAIL, 1).await;
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    for _ in 0..5 {
        let response = stack.verify(EMAIL, &wrong).await;
        assert_eq!(error_code(response).await, (401, "invalid_code".into()));
    }
    let right = stack.verify(EMAIL, &code).await;
    assert_eq!(error_code(right).await, (401, "invalid_code".into()), "dead after 5 wrong tries");
}

#[tokio::test]
async fn code_requests_answer_the_same_for_known_and_unknown_contacts() {
    let stack = Stack::spawn(&[]).await;
    signup(&stack, EMAIL, Some(PHONE)).await;
    stack.email_code(EMAIL, 1).await;
    for path in ["/api/v1/auth/verify/request", "/api/v1/auth/otp/request", "/api/v1/auth/password/forgot"] {
        let mut answers = Vec::new();
        // Phone verification needs a session (see the phone tests below): asked anonymously,
        // it answers 401 for known and unknown phones alike.
        let phones = if path.contains("verify") { &[][..] } else { &[PHONE, "+919000000001"][..] };
        for identifier in [EMAIL, "nobody@example.com"].iter().chain(phones) {
            let response = stack.post(path, &json!({ "identifier": identifier })).await;
            answers.push((response.status().as_u16(), response.text().await.unwrap()));
        }
        assert!(answers.iter().all(|a| *a == answers[0]), "{path}: {answers:?}");
        assert_eq!(answers[0].0, 202);
    }
    for phone in [PHONE, "+919000000001"] {
        let response = stack.request_verification(phone).await;
        assert_eq!(error_code(response).await, (401, "unauthorized".into()), "{phone}");
    }
    // Known contacts got their codes (email: signup + 3), unknown ones nothing. A phone not
    // yet proven names no account (several may hold it), so it only got its signup code.
    assert!(
        eventually(Duration::from_secs(10), || async { stack.sent_to(EMAIL) == 4 && stack.sent_to(PHONE) == 1 }).await
    );
    assert_eq!(stack.sent_to("nobody@example.com") + stack.sent_to("+919000000001"), 0);
    assert_eq!(error_code(stack.request_login_code("bob").await).await, (422, "invalid_identifier".into()));
}

#[tokio::test]
async fn at_most_five_codes_per_contact_and_address_per_ten_minutes_known_or_not() {
    let stack = Stack::spawn(&[]).await;
    signup(&stack, EMAIL, None).await; // one code sent at signup, counted too
    for (identifier, allowed) in [(EMAIL, 4), ("nobody@example.com", 5)] {
        let mut statuses = Vec::new();
        for _ in 0..=allowed {
            let response = stack.request_login_code(identifier).await;
            let retry_after =
                response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            statuses.push((response.status().as_u16(), retry_after.is_some_and(|s| (1..=600).contains(&s))));
        }
        assert!(statuses[..allowed].iter().all(|s| *s == (202, false)), "{identifier}: {statuses:?}");
        assert_eq!(statuses[allowed], (429, true), "{identifier}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.sent_to(EMAIL), 5, "signup code + 4 login codes");
}

#[tokio::test]
async fn login_returns_a_token_pair_that_opens_me() {
    let stack = Stack::spawn(&[]).await;
    verified(&stack, EMAIL, Some(PHONE)).await;
    for identifier in [EMAIL, PHONE] {
        let response = login(&stack, identifier, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.unwrap();
        assert_eq!(tokens["token_type"], "bearer");
        assert_eq!(tokens["expires_in"], 900);
        let me = stack.me(Some(tokens["access_token"].as_str().unwrap())).await;
        assert_eq!(me.status(), 200);
        assert_eq!(me.json::<Value>().await.unwrap()["email"], EMAIL);
    }
    let no_token = stack.me(None).await;
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_code(no_token).await, (401, "unauthorized".into()));
}

#[tokio::test]
async fn every_login_failure_answers_the_same() {
    let stack = Stack::spawn(&[]).await;
    signup(&stack, EMAIL, None).await;
    let (disabled_id, _, _) = logged_in(&stack, "off@example.com").await;
    sqlx::query("UPDATE users SET disabled_at = now() WHERE id = $1::uuid")
        .bind(&disabled_id)
        .execute(&stack.pool)
        .await
        .unwrap();
    let mut answers = Vec::new();
    for (identifier, password) in
        [(EMAIL, "wrong password"), ("nobody@example.com", PASSWORD), ("off@example.com", PASSWORD), ("bob", PASSWORD)]
    {
        let response = login(&stack, identifier, password).await;
        answers.push((response.status().as_u16(), response.text().await.unwrap()));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 401);
    assert!(answers[0].1.contains("invalid_credentials"));
}

#[tokio::test]
async fn the_per_ip_limit_answers_429_with_retry_after() {
    let stack = Stack::spawn(&["--auth-ip-limit-per-min=3"]).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(login(&stack, "nobody@example.com", PASSWORD).await);
    }
    let last = statuses.pop().unwrap();
    assert!(statuses.iter().all(|r| r.status() == 401));
    let retry_after: u64 = last.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(error_code(last).await, (429, "rate_limited".into()));
}

async fn refresh(stack: &Stack, token: &str) -> reqwest::Response {
    stack.refresh(token).await
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_whole_family() {
    let stack = Stack::spawn(&[]).await;
    let (_, _, first) = logged_in(&stack, EMAIL).await;
    let rotated: Value = refresh(&stack, &first).await.json().await.unwrap();
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(stack.me(Some(rotated["access_token"].as_str().unwrap())).await.status(), 200);

    // The first token again, past the race grace: refused, and the family (with `second`) is revoked.
    tokio::time::sleep(lockers_core::accounts::sessions::REUSE_GRACE + Duration::from_millis(200)).await;
    assert_eq!(error_code(refresh(&stack, &first).await).await, (401, "invalid_refresh_token".into()));
    assert_eq!(error_code(refresh(&stack, &second).await).await, (401, "invalid_refresh_token".into()));
    assert_eq!(audit_count(&stack, "auth.refresh_reuse").await, 1);
    for junk in ["", "not-a-token", &"A".repeat(43)] {
        assert_eq!(error_code(refresh(&stack, junk).await).await, (401, "invalid_refresh_token".into()));
    }
}

#[tokio::test]
async fn of_concurrent_refreshes_of_one_token_exactly_one_succeeds() {
    let stack = Stack::spawn(&[]).await;
    let (_, _, token) = logged_in(&stack, EMAIL).await;
    let attempts = (0..8).map(|_| refresh(&stack, &token));
    let mut winner = None;
    let mut statuses = Vec::new();
    for response in futures::future::join_all(attempts).await {
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            winner = Some(response.json::<Value>().await.unwrap());
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 7, "losers are told, not punished: {statuses:?}");
    // The winner's new session lives on.
    let next = winner.unwrap()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(&stack, &next).await.status(), 200);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let stack = Stack::spawn(&[]).await;
    let (_, access, refresh_token) = logged_in(&stack, EMAIL).await;
    let response = stack.logout(Some(&access), &refresh_token).await;
    assert_eq!(response.status(), 204);
    assert_eq!(refresh(&stack, &refresh_token).await.status(), 401);
    let anonymous = stack.logout(None, &refresh_token).await;
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn expired_tampered_foreign_and_unsigned_access_tokens_are_refused() {
    let stack = Stack::spawn(&[]).await;
    let (id, access, _) = logged_in(&stack, EMAIL).await;
    let secret = stack.config.jwt_secret.as_ref().unwrap().expose().as_bytes().to_vec();
    let kid = jsonwebtoken::decode_header(&access).unwrap().kid.unwrap();
    let now = chrono::Utc::now().timestamp();
    let sid = claims_of(&access)["sid"].clone();
    // Epoch 1: proving the email started a new epoch.
    let claims = json!({ "sub": id, "iss": "lockers", "aud": "lockers-api", "iat": now, "exp": now + 600, "typ": "access", "ep": 1, "sid": sid });
    let sign = |claims: &Value, key: &[u8]| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key)).unwrap()
    };
    assert_eq!(stack.me(Some(&sign(&claims, &secret))).await.status(), 200, "a well-made token works");

    let with = |field: &str, value: Value| {
        let mut c = claims.clone();
        c[field] = value;
        c
    };
    let mut tampered = access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let alg_none =
        format!("{}.{}.", b64(&format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#)), b64(&claims.to_string()));
    let bad = [
        ("expired", sign(&with("exp", json!(now - 120)), &secret)),
        ("wrong audience", sign(&with("aud", json!("another-api")), &secret)),
        ("wrong issuer", sign(&with("iss", json!("someone")), &secret)),
        ("refresh type", sign(&with("typ", json!("refresh")), &secret)),
        ("old epoch", sign(&with("ep", json!(-1)), &secret)),
        ("unknown user", sign(&with("sub", json!(Uuid::new_v4())), &secret)),
        ("unknown session", sign(&with("sid", json!(Uuid::new_v4())), &secret)),
        ("no session", {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().remove("sid");
            sign(&c, &secret)
        }),
        ("foreign key", sign(&claims, b"not-our-secret-not-our-secret-xx")),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("garbage", "abc.def.ghi".to_owned()),
    ];
    for (what, token) in bad {
        let response = stack.me(Some(&token)).await;
        assert_eq!(error_code(response).await, (401, "invalid_token".into()), "{what}");
    }
}

#[tokio::test]
async fn a_disabled_user_is_refused_at_once() {
    let stack = Stack::spawn(&[]).await;
    let admin = make_admin(&stack, "admin@example.com").await;
    let (id, access, refresh_token) = logged_in(&stack, EMAIL).await;
    let response = stack.patch_user(&admin, &id, &json!({ "disabled": true })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["disabled"], true);

    assert_eq!(error_code(stack.me(Some(&access)).await).await, (401, "invalid_token".into()));
    assert_eq!(refresh(&stack, &refresh_token).await.status(), 401);
    assert_eq!(login(&stack, EMAIL, PASSWORD).await.status(), 401);
    assert_eq!(audit_count(&stack, "user.disable").await, 1);

    stack.patch_user(&admin, &id, &json!({ "disabled": false })).await;
    assert_eq!(login(&stack, EMAIL, PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_password_reset_by_code_ends_every_session_and_does_not_log_in() {
    let stack = Stack::spawn(&[]).await;
    let (_, access, refresh_token) = logged_in(&stack, EMAIL).await;
    assert_eq!(stack.forgot_password(EMAIL).await.status(), 202);
    let code = stack.email_code(EMAIL, 2).await;

    assert_eq!(
        error_code(stack.reset_password(EMAIL, &code, "qwerty123").await).await,
        (422, "password_too_common".into())
    );
    let response = stack.reset_password(EMAIL, &code, "a brand new passphrase").await;
    assert_eq!(response.status(), 204);
    assert!(response.text().await.unwrap().is_empty(), "no tokens");

    assert_eq!(stack.me(Some(&access)).await.status(), 401, "old access token ended");
    assert_eq!(refresh(&stack, &refresh_token).await.status(), 401, "old session ended");
    assert_eq!(login(&stack, EMAIL, PASSWORD).await.status(), 401);
    assert_eq!(login(&stack, EMAIL, "a brand new passphrase").await.status(), 200);
    assert_eq!(audit_count(&stack, "auth.password_reset").await, 1);
    let again = stack.reset_password(EMAIL, &code, "a brand new passphrase").await;
    assert_eq!(error_code(again).await, (401, "invalid_code".into()));
}

#[tokio::test]
async fn otp_login_by_sms_works_once_the_phone_is_proven() {
    let stack = Stack::spawn(&[]).await;
    signup(&stack, EMAIL, Some(PHONE)).await;
    stack.sms_code(PHONE, 1).await;
    // Unproven, the phone names no account: no code is sent (the answer is the same).
    assert_eq!(stack.request_login_code(PHONE).await.status(), 202);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.sent_to(PHONE), 1);
    prove_email(&stack, EMAIL, 1).await;
    let phone_code = stack.sms_code(PHONE, 1).await;
    let access = access_token(&stack, EMAIL, PASSWORD).await;
    let proven = stack.verify_as(&access, PHONE, &phone_code).await;
    assert_eq!(proven.json::<Value>().await.unwrap()["phone_verified"], true);

    assert_eq!(stack.request_login_code(PHONE).await.status(), 202);
    let code = stack.sms_code(PHONE, 2).await;
    let wrong = stack.login_with_code(PHONE, "12345").await;
    assert_eq!(error_code(wrong).await, (401, "invalid_code".into()));
    let response = stack.login_with_code(PHONE, &code).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let me: Value = stack.me(Some(tokens["access_token"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(me["phone_verified"], true);
}

#[tokio::test]
async fn the_oauth2_password_form_logs_in_for_swagger_ui() {
    let stack = Stack::spawn(&[]).await;
    verified(&stack, EMAIL, None).await;
    let stack = &stack;
    let form = |grant: &'static str| async move {
        stack.token_form(&[("grant_type", grant), ("username", EMAIL), ("password", PASSWORD)]).await
    };
    let response = form("password").await;
    assert_eq!(response.status(), 200);
    assert!(response.json::<Value>().await.unwrap()["access_token"].is_string());
    assert_eq!(error_code(form("client_credentials").await).await, (400, "unsupported_grant_type".into()));
}

#[tokio::test]
async fn users_are_listed_and_changed_by_admins_only() {
    let stack = Stack::spawn(&[]).await;
    let admin = make_admin(&stack, "admin@example.com").await;
    let (id, user_token, _) = logged_in(&stack, EMAIL).await;
    for n in 0..3 {
        signup(&stack, &format!("u{n}@example.com"), None).await;
    }
    assert_eq!(stack.list_users(None, "").await.status(), 401);
    assert_eq!(error_code(stack.list_users(Some(&user_token), "").await).await, (403, "forbidden".into()));
    let page: Value = stack.list_users(Some(&admin), "?page=2&per_page=2").await.json().await.unwrap();
    assert_eq!((page["page"].as_u64(), page["per_page"].as_u64(), page["total"].as_i64()), (Some(2), Some(2), Some(5)));
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(error_code(stack.list_users(Some(&admin), "?per_page=1000").await).await, (400, "invalid_query".into()));

    assert_eq!(stack.patch_user(&user_token, &id, &json!({ "role": "admin" })).await.status(), 403);
    let promoted = stack.patch_user(&admin, &id, &json!({ "role": "admin" })).await;
    assert_eq!(promoted.json::<Value>().await.unwrap()["role"], "admin");
    assert_eq!(stack.list_users(Some(&user_token), "").await.status(), 200, "the new role applies at once");
    let (before, after): (Value, Value) =
        sqlx::query_as("SELECT before, after FROM audit_log WHERE action = 'user.role_change'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!((before["role"].as_str(), after["role"].as_str()), (Some("user"), Some("admin")));

    let admin_id: Value = stack.me(Some(&admin)).await.json().await.unwrap();
    let own = admin_id["id"].as_str().unwrap();
    assert_eq!(
        error_code(stack.patch_user(&admin, own, &json!({ "role": "user" })).await).await,
        (409, "cannot_modify_self".into())
    );
    let missing = Uuid::new_v4().to_string();
    assert_eq!(
        error_code(stack.patch_user(&admin, &missing, &json!({ "role": "user" })).await).await,
        (404, "not_found".into())
    );
    assert_eq!(
        error_code(stack.patch_user(&admin, &id, &json!({ "role": "root" })).await).await,
        (400, "invalid_body".into())
    );
    assert_eq!(error_code(stack.patch_user(&admin, &id, &json!({})).await).await, (422, "nothing_to_change".into()));
    assert_eq!(
        error_code(stack.patch_user(&admin, "42", &json!({ "role": "user" })).await).await,
        (400, "invalid_path".into())
    );
}

#[tokio::test]
async fn of_concurrent_redemptions_of_one_code_exactly_one_wins() {
    let stack = Stack::spawn(&[]).await;
    signup(&stack, EMAIL, None).await;
    let code = stack.email_code(EMAIL, 1).await;
    let attempts = (0..6).map(|_| stack.verify(EMAIL, &code));
    let statuses: Vec<u16> = futures::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
}

#[tokio::test]
async fn security_events_are_audited() {
    let stack = Stack::spawn(&[]).await;
    let (_, access, refresh_token) = logged_in(&stack, EMAIL).await;
    assert_eq!(login(&stack, EMAIL, "wrong password").await.status(), 401);
    stack.logout(Some(&access), &refresh_token).await;
    for action in ["auth.signup", "auth.login", "auth.login_failed", "auth.logout"] {
        assert_eq!(audit_count(&stack, action).await, 1, "{action}");
    }
}

// Account ownership (issue 8) ----------------------------------------------------

const STRANGER_PASSWORD: &str = "stranger danger 77";

/// A session opened before the owner proved the email, by whatever path existed
/// then (e.g. a login allowed before this rule): (access token, refresh token).
async fn session_issued_earlier(stack: &Stack, user_id: &str) -> (String, String) {
    let id: Uuid = user_id.parse().unwrap();
    let mut conn = stack.pool.acquire().await.unwrap();
    let session = lockers_core::accounts::sessions::start(&mut conn, id, stack.config.refresh_token_ttl).await.unwrap();
    let epoch: i32 = sqlx::query_scalar("SELECT session_epoch FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let keys = lockers_core::accounts::access_token::TokenKeys::from_config(&stack.config);
    (keys.issue(id, epoch, session.id).unwrap(), session.token.expose().to_owned())
}

#[tokio::test]
async fn password_login_needs_a_proven_email_and_says_so_only_to_the_right_password() {
    let stack = Stack::spawn(&[]).await;
    signup(&stack, EMAIL, None).await;
    assert_eq!(error_code(login(&stack, EMAIL, "wrong password").await).await, (401, "invalid_credentials".into()));
    assert_eq!(error_code(login(&stack, EMAIL, PASSWORD).await).await, (403, "email_not_verified".into()));
    prove_email(&stack, EMAIL, 1).await;
    assert_eq!(login(&stack, EMAIL, PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_stranger_who_registered_the_owners_email_loses_password_phone_and_sessions_when_the_owner_proves_it() {
    let stack = Stack::spawn(&[]).await;
    let body = json!({ "name": "Stranger", "email": EMAIL, "phone": "+919855550123", "password": STRANGER_PASSWORD });
    let stranger = stack.signup_with(&body).await.json::<Value>().await.unwrap();
    let stranger_id = stranger["id"].as_str().unwrap().to_owned();
    assert_eq!(error_code(login(&stack, EMAIL, STRANGER_PASSWORD).await).await, (403, "email_not_verified".into()));
    let (stranger_access, stranger_refresh) = session_issued_earlier(&stack, &stranger_id).await;
    assert_eq!(stack.me(Some(&stranger_access)).await.status(), 200, "the session works until then");

    // The owner logs in with a code sent to the email (the signup's code went there too, unread).
    assert_eq!(stack.request_login_code(EMAIL).await.status(), 202);
    let code = stack.email_code(EMAIL, 2).await;
    let response = stack.login_with_code(EMAIL, &code).await;
    assert_eq!(response.status(), 200);
    let owner: Value = response.json().await.unwrap();
    let owner_access = owner["access_token"].as_str().unwrap();

    assert_eq!(error_code(login(&stack, EMAIL, STRANGER_PASSWORD).await).await, (401, "invalid_credentials".into()));
    assert_eq!(error_code(refresh(&stack, &stranger_refresh).await).await, (401, "invalid_refresh_token".into()));
    assert_eq!(error_code(stack.me(Some(&stranger_access)).await).await, (401, "invalid_token".into()));
    let me: Value = stack.me(Some(owner_access)).await.json().await.unwrap();
    assert_eq!((me["id"].as_str(), me["email_verified"].as_bool()), (Some(stranger_id.as_str()), Some(true)));
    assert!(me["phone"].is_null(), "the stranger's unproven phone is dropped: {me}");
    assert_eq!(audit_count(&stack, "auth.email_proven").await, 1);
    // The owner's own session carries on.
    assert_eq!(refresh(&stack, owner["refresh_token"].as_str().unwrap()).await.status(), 200);
}

#[tokio::test]
async fn verifying_an_email_keeps_the_password_only_when_the_prover_gives_it() {
    let stack = Stack::spawn(&[]).await;
    // Verified without the password (the owner entering a code they did not ask for):
    // whoever set that password loses it.
    signup(&stack, EMAIL, None).await;
    let code = stack.email_code(EMAIL, 1).await;
    let response = stack.verify(EMAIL, &code).await;
    assert_eq!(response.status(), 200);
    assert_eq!(error_code(login(&stack, EMAIL, PASSWORD).await).await, (401, "invalid_credentials".into()));

    // Verified with a wrong password: refused, and the code stays good for the right one.
    let other = "bob@example.com";
    signup(&stack, other, None).await;
    let code = stack.email_code(other, 1).await;
    let wrong = stack.verify_keeping_password(other, &code, "not the password").await;
    assert_eq!(error_code(wrong).await, (401, "invalid_credentials".into()));
    assert_eq!(error_code(login(&stack, other, PASSWORD).await).await, (403, "email_not_verified".into()));
    assert_eq!(stack.verify_keeping_password(other, &code, PASSWORD).await.status(), 200);
    assert_eq!(login(&stack, other, PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_password_reset_by_email_code_claims_an_unproven_account_too() {
    let stack = Stack::spawn(&[]).await;
    let body = json!({ "name": "Stranger", "email": EMAIL, "password": STRANGER_PASSWORD });
    let stranger = stack.signup_with(&body).await.json::<Value>().await.unwrap();
    let (stranger_access, stranger_refresh) = session_issued_earlier(&stack, stranger["id"].as_str().unwrap()).await;
    assert_eq!(stack.forgot_password(EMAIL).await.status(), 202);
    let code = stack.email_code(EMAIL, 2).await;
    assert_eq!(stack.reset_password(EMAIL, &code, PASSWORD).await.status(), 204);

    assert_eq!(login(&stack, EMAIL, STRANGER_PASSWORD).await.status(), 401);
    assert_eq!(refresh(&stack, &stranger_refresh).await.status(), 401);
    assert_eq!(stack.me(Some(&stranger_access)).await.status(), 401);
    assert_eq!(login(&stack, EMAIL, PASSWORD).await.status(), 200, "the reset proved the email");
}

#[tokio::test]
async fn a_phone_typed_by_a_stranger_does_not_block_its_owner_and_proving_it_takes_it_back() {
    let stack = Stack::spawn(&[]).await;
    let stranger = "stranger@example.com";
    let body = json!({ "name": "Stranger", "email": stranger, "phone": PHONE, "password": STRANGER_PASSWORD });
    assert_eq!(stack.signup_with(&body).await.status(), 201);
    stack.sms_code(PHONE, 1).await;

    // The owner signs up with the same phone: no 409.
    signup(&stack, EMAIL, Some(PHONE)).await;
    let phone_code = stack.sms_code(PHONE, 2).await;
    // A phone is given to an owner, so the email comes first (a phone is proven with the
    // account's session, which needs a proven email); the refused code stays good.
    let early = stack.verify(PHONE, &phone_code).await;
    assert_eq!(error_code(early).await, (401, "unauthorized".into()));
    assert_eq!(error_code(login(&stack, EMAIL, PASSWORD).await).await, (403, "email_not_verified".into()));
    prove_email(&stack, EMAIL, 1).await;
    let access = access_token(&stack, EMAIL, PASSWORD).await;
    let proven = stack.verify_as(&access, PHONE, &phone_code).await;
    assert_eq!(proven.status(), 200);
    assert_eq!(proven.json::<Value>().await.unwrap()["phone_verified"], true);

    let stranger_phone: Option<String> = sqlx::query_scalar("SELECT phone FROM users WHERE email = $1")
        .bind(stranger)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(stranger_phone, None, "taken from the unverified holder");
    assert_eq!(audit_count(&stack, "auth.phone_proven").await, 1);
    assert_eq!(login(&stack, PHONE, PASSWORD).await.status(), 200, "the phone now names the owner's account");
    // Now proven, the phone is taken for anyone else.
    let third = json!({ "name": "C", "email": "c@example.com", "phone": PHONE, "password": PASSWORD });
    assert_eq!(error_code(stack.signup_with(&third).await).await, (409, "phone_taken".into()));
}

#[tokio::test]
async fn an_access_token_is_refused_right_after_logout_while_other_sessions_live_on() {
    let stack = Stack::spawn(&[]).await;
    let (_, access, refresh_token) = logged_in(&stack, EMAIL).await;
    let other: Value = login(&stack, EMAIL, PASSWORD).await.json().await.unwrap();
    assert_eq!(stack.me(Some(&access)).await.status(), 200);
    let response = stack.logout(Some(&access), &refresh_token).await;
    assert_eq!(response.status(), 204);
    assert_eq!(error_code(stack.me(Some(&access)).await).await, (401, "invalid_token".into()));
    assert_eq!(stack.me(Some(other["access_token"].as_str().unwrap())).await.status(), 200);

    // Logout ends the session its access token names, even without its refresh token.
    let other_access = other["access_token"].as_str().unwrap();
    let response = stack.logout(Some(other_access), "").await;
    assert_eq!(response.status(), 204);
    assert_eq!(stack.me(Some(other_access)).await.status(), 401);
    assert_eq!(refresh(&stack, other["refresh_token"].as_str().unwrap()).await.status(), 401);
}

#[tokio::test]
async fn access_tokens_of_a_session_revoked_for_reuse_are_refused_at_once() {
    let stack = Stack::spawn(&[]).await;
    let (_, first_access, first) = logged_in(&stack, EMAIL).await;
    let rotated: Value = refresh(&stack, &first).await.json().await.unwrap();
    let second_access = rotated["access_token"].as_str().unwrap();
    assert_eq!(claims_of(second_access)["sid"], claims_of(&first_access)["sid"], "rotation keeps the session");
    assert_eq!(stack.me(Some(second_access)).await.status(), 200);

    tokio::time::sleep(lockers_core::accounts::sessions::REUSE_GRACE + Duration::from_millis(200)).await;
    assert_eq!(refresh(&stack, &first).await.status(), 401, "reuse: the family is revoked");
    for access in [first_access.as_str(), second_access] {
        assert_eq!(error_code(stack.me(Some(access)).await).await, (401, "invalid_token".into()));
    }
}

#[tokio::test]
async fn unproven_accounts_expire_and_the_sweep_deletes_only_those_past_the_ttl() {
    let stack = Stack::spawn(&["--unverified-account-ttl=3600"]).await;
    let old_unproven = signup(&stack, "old@example.com", None).await;
    let young_unproven = signup(&stack, "young@example.com", None).await;
    let old_proven = verified(&stack, "proven@example.com", None).await;
    for (user, age_secs) in [(&old_unproven, 3700), (&young_unproven, 3500), (&old_proven, 3700)] {
        sqlx::query("UPDATE users SET created_at = now() - make_interval(secs => $2) WHERE id = $1::uuid")
            .bind(user["id"].as_str().unwrap())
            .bind(age_secs as f64)
            .execute(&stack.pool)
            .await
            .unwrap();
    }
    let mut tx = stack.pool.begin().await.unwrap();
    let sweep = lockers_core::jobs::Sweep { at: chrono::Utc::now().timestamp() };
    lockers_core::jobs::enqueue(&mut tx, lockers_core::jobs::Queue::Sweep, &sweep).await.unwrap();
    tx.commit().await.unwrap();

    let emails = || async {
        sqlx::query_scalar::<_, String>("SELECT email FROM users ORDER BY email").fetch_all(&stack.pool).await.unwrap()
    };
    let swept = eventually(Duration::from_secs(10), || async { emails().await.len() == 2 }).await;
    assert!(swept, "{:?}", emails().await);
    assert_eq!(emails().await, ["proven@example.com", "young@example.com"]);
    // The address is free again for whoever owns it.
    signup(&stack, "old@example.com", None).await;
}

// Phone verification belongs to the signed-in account (review of issue 8) --------

/// Logs in with `PASSWORD`; the access token.
async fn access_token(stack: &Stack, identifier: &str, password: &str) -> String {
    let response = login(stack, identifier, password).await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_stranger_who_gives_the_owners_phone_cannot_have_the_owners_code_prove_it_on_the_strangers_account() {
    let stack = Stack::spawn(&[]).await;
    let owner = signup(&stack, EMAIL, Some(PHONE)).await;
    stack.sms_code(PHONE, 1).await;
    // The stranger signs up with their own email, proves it, and gives the owner's phone.
    let stranger = "stranger@example.com";
    let body = json!({ "name": "Stranger", "email": stranger, "phone": PHONE, "password": STRANGER_PASSWORD });
    assert_eq!(stack.signup_with(&body).await.status(), 201);
    stack.sms_code(PHONE, 2).await;
    let code = stack.email_code(stranger, 1).await;
    assert_eq!(stack.verify_keeping_password(stranger, &code, STRANGER_PASSWORD).await.status(), 200);

    // The owner proves their email, logs in and asks for a code for their phone.
    prove_email(&stack, EMAIL, 1).await;
    let owner_access = access_token(&stack, EMAIL, PASSWORD).await;
    let request = stack.request_verification_as(&owner_access, PHONE).await;
    assert_eq!(request.status(), 202);
    let code = stack.sms_code(PHONE, 3).await;
    let proven = stack.verify_as(&owner_access, PHONE, &code).await;
    assert_eq!(proven.status(), 200);
    let proven: Value = proven.json().await.unwrap();
    assert_eq!((&proven["id"], &proven["phone_verified"]), (&owner["id"], &json!(true)), "proven on the owner's");

    let holders: Vec<(String, Option<String>, bool)> =
        sqlx::query_as("SELECT email, phone, phone_verified_at IS NOT NULL FROM users ORDER BY email")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert_eq!(holders, [(EMAIL.into(), Some(PHONE.into()), true), (stranger.into(), None, false)]);
    // The stranger, signed in, can neither ask for the phone's codes nor use the owner's.
    let stranger_access = access_token(&stack, stranger, STRANGER_PASSWORD).await;
    let ask = stack.request_verification_as(&stranger_access, PHONE).await;
    assert_eq!(error_code(ask).await, (422, "phone_not_on_account".into()));
    let redeem = stack.verify_as(&stranger_access, PHONE, &code).await;
    assert_eq!(error_code(redeem).await, (422, "phone_not_on_account".into()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stack.sent_to(PHONE), 3, "no code was sent for the stranger");
}

#[tokio::test]
async fn a_phone_is_proven_only_with_the_session_of_the_account_whose_code_it_is() {
    let stack = Stack::spawn(&[]).await;
    signup(&stack, EMAIL, Some(PHONE)).await;
    let signup_code = stack.sms_code(PHONE, 1).await;
    // Anonymously, a phone can be neither asked for nor proven (known or not: the same answer).
    for phone in [PHONE, "+919000000001"] {
        let ask = stack.request_verification(phone).await;
        assert_eq!(error_code(ask).await, (401, "unauthorized".into()), "{phone}");
    }
    let anonymous = stack.verify(PHONE, &signup_code).await;
    assert_eq!(error_code(anonymous).await, (401, "unauthorized".into()));

    // Another account whose code went to the same phone cannot redeem it for itself.
    let other = "other@example.com";
    let body = json!({ "name": "Other", "email": other, "phone": PHONE, "password": STRANGER_PASSWORD });
    assert_eq!(stack.signup_with(&body).await.status(), 201);
    let others_code = stack.sms_code(PHONE, 2).await;
    let code = stack.email_code(other, 1).await;
    assert_eq!(stack.verify_keeping_password(other, &code, STRANGER_PASSWORD).await.status(), 200);

    // The signup's SMS code, still live after the other signup, works once the owner is signed in.
    prove_email(&stack, EMAIL, 1).await;
    let access = access_token(&stack, EMAIL, PASSWORD).await;
    if others_code != signup_code {
        let wrong = stack.verify_as(&access, PHONE, &others_code).await;
        assert_eq!(error_code(wrong).await, (401, "invalid_code".into()), "the other account's code");
    }
    let proven = stack.verify_as(&access, PHONE, &signup_code).await;
    assert_eq!(proven.status(), 200);
    assert_eq!(proven.json::<Value>().await.unwrap()["phone_verified"], true);
    // Email verification stays anonymous: whoever proves the email owns the account.
    assert_eq!(stack.request_verification(other).await.status(), 202);
}
