//! Limits that cannot be turned against users: wrong codes and passwords cost
//! the guesser, not the owner; SMS obey a country allow-list and an hourly
//! budget; client IPs come from trusted proxies only; Redis down degrades.
//! Clients on different addresses are played through `X-Forwarded-For` from
//! the test's own address, configured as a trusted proxy.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::redis_proxy::RedisProxy;
use crate::harness::{REDIS_URL, Stack, TestApp, eventually};

const PASSWORD: &str = "violet kettle 42";
const EMAIL: &str = "asha@example.com";
const TRUSTED: &str = "--trusted-proxies=127.0.0.1/32";
const OWNER_IP: &str = "198.51.100.7";
const STRANGER_IP: &str = "203.0.113.66";

async fn signup_with(app: &TestApp, email: &str, phone: Option<&str>) -> reqwest::Response {
    app.signup("Asha Rao", email, phone, "signup passphrase 7").await
}

/// An account whose email is proven and whose password (`PASSWORD`) was set
/// after that proof, so password login works whatever else the rules of
/// unproven accounts say. Uses the first two emails to `email`.
async fn account(stack: &Stack, email: &str) {
    assert_eq!(signup_with(stack, email, None).await.status(), 201);
    let code = stack.email_code(email, 1).await;
    let verified = stack.verify(email, &code).await;
    assert_eq!(verified.status(), 200);
    assert_eq!(stack.forgot_password(email).await.status(), 202);
    let code = stack.email_code(email, 2).await;
    assert_eq!(stack.reset_password(email, &code, PASSWORD).await.status(), 204);
}

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

/// The shared counter of a rate-limit key, read from Redis.
async fn redis_count(app: &TestApp, key: &str) -> Option<u32> {
    let mut redis = redis::Client::open(REDIS_URL).unwrap().get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET").arg(format!("{}rl:{key}", app.config.redis_key_prefix)).query_async(&mut redis).await.unwrap()
}

/// The rate-limit keys (without the test's prefix) that mention `needle`.
async fn redis_keys(app: &TestApp, needle: &str) -> Vec<String> {
    let mut redis = redis::Client::open(REDIS_URL).unwrap().get_multiplexed_async_connection().await.unwrap();
    let prefix = format!("{}rl:", app.config.redis_key_prefix);
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*{needle}*")).query_async(&mut redis).await.unwrap();
    keys.into_iter().map(|k| k[prefix.len()..].to_owned()).collect()
}

async fn audit_ips(app: &TestApp, action: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT host(client_ip) FROM audit_log WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
        .bind(action)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

fn other_code(code: &str, offset: u32) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + offset) % 1_000_000)
}

// --- Lockout by strangers: codes ---

#[tokio::test]
async fn strangers_wrong_codes_do_not_block_the_owner_whose_fresh_code_works() {
    let stack = Stack::spawn(&[TRUSTED]).await;
    assert_eq!(signup_with(&stack, EMAIL, None).await.status(), 201);
    stack.email_code(EMAIL, 1).await;
    assert_eq!(stack.request_login_code_from(OWNER_IP, EMAIL).await.status(), 202);
    let first = stack.email_code(EMAIL, 2).await;

    // A stranger guesses at the owner's login code, and goes on guessing.
    let mut statuses = Vec::new();
    for i in 1..=25 {
        let guess = stack.login_with_code_from(STRANGER_IP, EMAIL, &other_code(&first, i)).await;
        statuses.push(guess.status().as_u16());
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "the guesser's address is limited: {statuses:?}");
    assert_eq!(redis_count(&stack, &format!("code_fail_ip:{STRANGER_IP}")).await, Some(20));
    let keys = redis_keys(&stack, EMAIL).await;
    assert!(keys.iter().all(|k| k.starts_with("codes:")), "only code requests count against the contact: {keys:?}");
    assert_eq!(
        redis_count(&stack, &format!("code_fail_ip:{OWNER_IP}")).await,
        None,
        "the owner's address owes nothing"
    );

    // The code the stranger guessed at died after 5 wrong tries; a fresh one works for the owner.
    let dead = stack.login_with_code_from(OWNER_IP, EMAIL, &first).await;
    assert_eq!(error_of(dead).await.1, "invalid_code");
    assert_eq!(stack.request_login_code_from(OWNER_IP, EMAIL).await.status(), 202);
    let fresh = stack.email_code(EMAIL, 3).await;
    let response = stack.login_with_code_from(OWNER_IP, EMAIL, &fresh).await;
    assert_eq!(response.status(), 200);
    assert!(response.json::<Value>().await.unwrap()["access_token"].is_string());
}

/// A stranger spending code requests for the owner's email from one address
/// spends that address's allowance only: the owner, from another, gets and uses
/// a fresh code. The per-contact ceiling, which bounds what a phone can cost,
/// still answers 429 once many addresses have spent it.
#[tokio::test]
async fn a_stranger_spending_code_requests_from_one_address_does_not_stop_the_owners_from_another() {
    let stack = Stack::spawn(&[TRUSTED]).await;
    assert_eq!(signup_with(&stack, EMAIL, None).await.status(), 201);
    stack.email_code(EMAIL, 1).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(stack.request_login_code_from(STRANGER_IP, EMAIL).await.status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 202, 202, 202, 429], "the stranger's address is spent");
    // The ceiling counted signup's code and the stranger's five, not the refused sixth.
    assert_eq!(redis_count(&stack, &format!("codes:{EMAIL}")).await, Some(6));
    assert_eq!(redis_count(&stack, &format!("codes:{EMAIL}:{OWNER_IP}")).await, None);

    // The owner's address has its own allowance (signup too obeys it), and the fresh code works.
    assert_eq!(stack.request_login_code_from(OWNER_IP, EMAIL).await.status(), 202);
    let fresh = stack.email_code(EMAIL, 7).await;
    let response = stack.login_with_code_from(OWNER_IP, EMAIL, &fresh).await;
    assert_eq!(response.status(), 200);
    assert!(response.json::<Value>().await.unwrap()["access_token"].is_string());

    // Many addresses together reach the ceiling (40 an hour, known contact or not), and then everyone waits.
    let nobody = "nobody@example.com";
    for batch in 0..8 {
        let ip = format!("203.0.113.{}", 100 + batch);
        for _ in 0..5 {
            assert_eq!(stack.request_login_code_from(&ip, nobody).await.status(), 202, "{ip}");
        }
    }
    let over = stack.request_login_code_from(OWNER_IP, nobody).await;
    assert_eq!(over.status(), 429);
    assert!((601..=3600).contains(&retry_after(&over)), "the hourly ceiling: {}", retry_after(&over));
    assert_eq!(error_of(over).await.1, "rate_limited");
}

// --- Lockout by strangers: passwords ---

#[tokio::test]
async fn wrong_passwords_from_a_strangers_address_do_not_stop_the_owners_password_from_another() {
    let stack = Stack::spawn(&[TRUSTED]).await;
    account(&stack, EMAIL).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(stack.login_from(STRANGER_IP, EMAIL, "wrong password").await.status().as_u16());
    }
    assert!(statuses[..5].iter().all(|s| *s == 401), "five free tries: {statuses:?}");
    assert!(statuses.contains(&429), "then the stranger waits: {statuses:?}");
    // Even the right password waits on the stranger's address...
    let waiting = stack.login_from(STRANGER_IP, EMAIL, PASSWORD).await;
    assert_eq!(waiting.status(), 429);
    assert!(retry_after(&waiting) >= 1);
    assert_eq!(error_of(waiting).await.1, "rate_limited");
    // ...but never on the owner's.
    assert_eq!(stack.login_from(OWNER_IP, EMAIL, PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn password_tries_from_one_address_wait_longer_after_each_failure_up_to_the_cap() {
    let stack = Stack::spawn(&[TRUSTED, "--login-lockout=4"]).await;
    account(&stack, EMAIL).await;
    // Longer than any password can be: refused without hashing, so the timing
    // of this test does not depend on how long Argon2 takes on a busy machine.
    let long_wrong = "w".repeat(2000);
    for _ in 0..5 {
        assert_eq!(stack.login_from(STRANGER_IP, EMAIL, &long_wrong).await.status(), 401);
    }
    // After each further failure the next try waits 1 s, 2 s, 4 s, then 4 s (the cap).
    let mut waits = Vec::new();
    for _ in 0..4 {
        let refused = stack.login_from(STRANGER_IP, EMAIL, &long_wrong).await;
        assert_eq!(refused.status(), 429);
        let wait = retry_after(&refused);
        waits.push(wait);
        tokio::time::sleep(Duration::from_millis(wait * 1000 + 100)).await;
        assert_eq!(stack.login_from(STRANGER_IP, EMAIL, &long_wrong).await.status(), 401);
    }
    // Retry-After is the time left, rounded up, once the hash of the try before is done.
    assert_eq!(waits[0], 1, "{waits:?}");
    assert!(waits[1] == 2 && (3..=4).contains(&waits[2]) && (3..=4).contains(&waits[3]), "{waits:?}");
    // A success from the address forgets its failures.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert_eq!(stack.login_from(STRANGER_IP, EMAIL, PASSWORD).await.status(), 200);
    assert_eq!(stack.login_from(STRANGER_IP, EMAIL, &long_wrong).await.status(), 401);
}

/// Rewritten from auth.rs `parallel_wrong_logins_cannot_slip_past_the_lockout`:
/// the count is now per (identifier, address).
#[tokio::test]
async fn parallel_wrong_passwords_from_one_address_cannot_slip_past_the_wait() {
    let stack = Stack::spawn(&[]).await;
    account(&stack, EMAIL).await;
    let attempts = (0..12).map(|_| stack.login_from(STRANGER_IP, EMAIL, "wrong password"));
    let statuses: Vec<u16> = futures::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "only 5 passwords are ever checked: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7, "{statuses:?}");
}

/// Rewritten from auth.rs `five_failures_lock_an_identifier_which_unlocks_when_the_lockout_ends`:
/// failures no longer lock the identifier; 100 of them suspend password login,
/// which a code login lifts.
#[tokio::test]
async fn after_100_wrong_passwords_the_account_needs_a_code_login_which_lifts_the_suspension() {
    let stack = Stack::spawn(&[TRUSTED]).await;
    account(&stack, EMAIL).await;
    // 100 failures from 20 addresses (5 free tries each), a few at a time.
    for batch in 0..20 {
        let ip = format!("203.0.113.{}", 100 + batch);
        let tries = (0..5).map(|_| stack.login_from(&ip, EMAIL, "wrong password"));
        let statuses: Vec<u16> = futures::future::join_all(tries).await.iter().map(|r| r.status().as_u16()).collect();
        assert!(statuses.iter().all(|s| *s == 401), "{ip}: {statuses:?}");
    }
    assert_eq!(audit_count(&stack, "auth.password_login_suspended").await, 1);
    // Now the right password, from the owner's own address, is refused with advice.
    let suspended = stack.login_from(OWNER_IP, EMAIL, PASSWORD).await;
    assert_eq!(suspended.status(), 429);
    assert!(retry_after(&suspended) > 3600, "until the day's count lapses");
    let body: Value = suspended.json().await.unwrap();
    assert_eq!(body["error"]["code"], "password_login_suspended");
    assert!(body["error"]["message"].as_str().unwrap().contains("code"));
    // Code login still works, and lifts the suspension.
    assert_eq!(stack.request_login_code_from(OWNER_IP, EMAIL).await.status(), 202);
    let code = stack.email_code(EMAIL, 3).await;
    assert_eq!(stack.login_with_code_from(OWNER_IP, EMAIL, &code).await.status(), 200);
    assert_eq!(stack.login_from(OWNER_IP, EMAIL, PASSWORD).await.status(), 200);
}

// --- SMS pumping ---

#[tokio::test]
async fn signup_obeys_the_per_contact_code_limit_and_then_creates_nothing() {
    let stack = Stack::spawn(&[]).await;
    for identifier in ["new@example.com", "+919800000001"] {
        for _ in 0..5 {
            let response = stack.request_login_code(identifier).await;
            assert_eq!(response.status(), 202);
        }
    }
    let by_email = signup_with(&stack, "new@example.com", None).await;
    assert_eq!(by_email.status(), 429);
    assert!(retry_after(&by_email) >= 1);
    assert_eq!(error_of(by_email).await.1, "rate_limited");
    let by_phone = signup_with(&stack, "other@example.com", Some("+919800000001")).await;
    assert_eq!(error_of(by_phone).await, (429, "rate_limited".into()));
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&stack.pool).await.unwrap();
    assert_eq!(accounts, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stack.sent_to("other@example.com"), 0);
}

#[tokio::test]
async fn a_phone_outside_the_allowed_countries_is_refused_before_anything_is_sent() {
    let stack = Stack::spawn(&[]).await;
    let signup = signup_with(&stack, EMAIL, Some("+14155550100")).await;
    assert_eq!(error_of(signup).await, (422, "phone_country_not_allowed".into()));
    for path in ["/api/v1/auth/otp/request", "/api/v1/auth/verify/request", "/api/v1/auth/password/forgot"] {
        let response = stack.post(path, &json!({ "identifier": "+447700900123" })).await;
        assert_eq!(error_of(response).await, (422, "phone_country_not_allowed".into()), "{path}");
    }
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&stack.pool).await.unwrap();
    assert_eq!(accounts, 0);

    // The list is configurable.
    let stack = Stack::spawn(&["--sms-allowed-country-codes=91,+1"]).await;
    assert_eq!(signup_with(&stack, EMAIL, Some("+14155550100")).await.status(), 201);
    stack.sms_code("+14155550100", 1).await;
}

#[tokio::test]
async fn when_the_sms_budget_is_spent_codes_go_by_email_phone_verification_answers_503_and_admins_are_told() {
    let stack = Stack::spawn(&["--sms-budget-per-hour=2"]).await;
    let (asha, ravi) = (("asha@example.com", "+919800000001"), ("ravi@example.com", "+919800000002"));
    // Both prove their emails and sign in; Asha proves her phone (a login code by phone
    // needs a proven phone, and proving it needs her session); Ravi leaves his unproven.
    let mut ravi_access = String::new();
    for (email, phone) in [asha, ravi] {
        assert_eq!(signup_with(&stack, email, Some(phone)).await.status(), 201);
        let sms = stack.sms_code(phone, 1).await;
        let code = stack.email_code(email, 1).await;
        assert_eq!(stack.verify_keeping_password(email, &code, "signup passphrase 7").await.status(), 200);
        let tokens: Value = stack.login(email, "signup passphrase 7").await.json().await.unwrap();
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        if email == asha.0 {
            assert_eq!(stack.verify_as(&access, phone, &sms).await.status(), 200);
        } else {
            ravi_access = access;
        }
    }
    assert_eq!(audit_count(&stack, "sms.budget_exhausted").await, 0);

    // The budget (2) is spent: a login code asked for by phone goes to the account's email.
    let by_phone = stack.request_login_code(asha.1).await;
    assert_eq!(by_phone.status(), 202);
    let answer: Value = by_phone.json().await.unwrap();
    assert_eq!(answer["channel"], "email");
    let code = stack.email_code(asha.0, 2).await;
    let login = stack.login_with_code(asha.0, &code).await;
    assert_eq!(login.status(), 200, "the emailed code signs in with the email");
    let me: Value = stack
        .me(Some(login.json::<Value>().await.unwrap()["access_token"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["phone_verified"], true, "the phone proven earlier stays proven");
    // An unknown phone gets the very same answer.
    let unknown = stack.request_login_code("+919800000009").await;
    assert_eq!(unknown.json::<Value>().await.unwrap(), answer);
    // A phone cannot be proven by email: its verification, asked for by its signed-in holder, answers 503.
    let response = stack.request_verification_as(&ravi_access, ravi.1).await;
    assert_eq!(error_of(response).await, (503, "sms_budget_exhausted".into()));
    // Signup goes on without the SMS: the email code is sent, the phone waits.
    assert_eq!(signup_with(&stack, "mira@example.com", Some("+919800000003")).await.status(), 201);
    stack.email_code("mira@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.twilio.messages().len(), 2, "no SMS past the budget");
    // Operators are told once per hour: an audit entry (and an error-level log line).
    assert_eq!(audit_count(&stack, "sms.budget_exhausted").await, 1);
    let spent: Value = sqlx::query_scalar("SELECT after FROM audit_log WHERE action = 'sms.budget_exhausted'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(spent["budget_per_hour"], 2);
}

// --- Client IPs ---

#[tokio::test]
async fn forwarded_for_is_believed_from_a_trusted_proxy_only() {
    // Trusted peer: the right-most address that is not a trusted proxy, whatever the client prepended.
    let trusted = TestApp::spawn_with(&[TRUSTED]).await;
    let forwarded = format!("6.6.6.6, {OWNER_IP}, 127.0.0.1");
    assert_eq!(trusted.signup_from(&forwarded, "A", "a@example.com", "signup passphrase 7").await.status(), 201);
    assert_eq!(audit_ips(&trusted, "auth.signup").await, [OWNER_IP]);
    assert_eq!(redis_count(&trusted, &format!("auth_ip:{OWNER_IP}")).await, Some(1));
    assert_eq!(redis_count(&trusted, "auth_ip:127.0.0.1").await, None);
    assert_eq!(redis_count(&trusted, "auth_ip:6.6.6.6").await, None);

    // Untrusted peer (the default: no proxies): the header is ignored.
    let untrusted = TestApp::spawn().await;
    assert_eq!(untrusted.signup_from(OWNER_IP, "A", "a@example.com", "signup passphrase 7").await.status(), 201);
    assert_eq!(audit_ips(&untrusted, "auth.signup").await, ["127.0.0.1"]);
    assert_eq!(redis_count(&untrusted, "auth_ip:127.0.0.1").await, Some(1));
    assert_eq!(redis_count(&untrusted, &format!("auth_ip:{OWNER_IP}")).await, None);
}

#[tokio::test]
async fn ipv6_clients_share_the_limit_of_their_64_while_the_audit_keeps_each_address() {
    let app = TestApp::spawn_with(&[TRUSTED, "--auth-ip-limit-per-min=2"]).await;
    for (ip, email) in [("2001:db8:1:2::5", "a@example.com"), ("2001:db8:1:2:ffff::6", "b@example.com")] {
        assert_eq!(app.signup_from(ip, "A", email, "signup passphrase 7").await.status(), 201);
    }
    assert_eq!(redis_count(&app, "auth_ip:2001:db8:1:2::/64").await, Some(2));
    assert_eq!(audit_ips(&app, "auth.signup").await, ["2001:db8:1:2::5", "2001:db8:1:2:ffff::6"]);
    // A third address of the same /64 is over the limit; another /64 is not.
    let third = app.signup_from("2001:db8:1:2::7", "A", "c@example.com", "signup passphrase 7").await;
    assert_eq!(error_of(third).await, (429, "rate_limited".into()));
    let other = app.signup_from("2001:db8:1:3::7", "A", "c@example.com", "signup passphrase 7").await;
    assert_eq!(other.status(), 201);
}

// --- Public reads ---

#[tokio::test]
async fn public_reads_have_a_per_address_limit_that_answers_429_with_retry_after() {
    let app = TestApp::spawn_with(&[TRUSTED, "--public-read-limit-per-min=3"]).await;
    let get_from = |ip: &'static str, path: &'static str| {
        let request = app.http.get(app.url(path)).header("x-forwarded-for", ip);
        async move { request.send().await.unwrap() }
    };
    for path in ["/api/v1/states", "/api/v1/lockers?q=goa", "/api/v1/locker-points"] {
        assert_eq!(get_from(OWNER_IP, path).await.status(), 200, "{path}");
    }
    let over = get_from(OWNER_IP, "/api/v1/cities").await;
    assert_eq!(over.status(), 429);
    assert!((1..=60).contains(&retry_after(&over)));
    assert!(over.headers().contains_key("x-request-id"));
    assert_eq!(error_of(over).await, (429, "rate_limited".into()));
    // Another address reads on; other routes are not public reads.
    assert_eq!(get_from(STRANGER_IP, "/api/v1/states").await.status(), 200);
    assert_eq!(get_from(OWNER_IP, "/api/v1/auth/me").await.status(), 401);
    assert_eq!(get_from(OWNER_IP, "/health").await.status(), 200);
}

// --- Redis down (moved from auth.rs, where they asserted a 503 from /ready) ---

#[tokio::test]
async fn when_redis_fails_mid_flight_limits_fall_back_to_the_process_and_ready_says_degraded() {
    let proxy = RedisProxy::start("127.0.0.1:6379").await;
    let redis_url = format!("--redis-url={}", proxy.url());
    let stack = Stack::spawn(&[&redis_url, "--auth-ip-limit-per-min=4"]).await;
    let login = || stack.login("nobody@example.com", "x");
    assert_eq!(login().await.status(), 401);
    // The hit was counted in the shared store.
    assert_eq!(redis_count(&stack, "auth_ip:127.0.0.1").await, Some(1));

    proxy.cut();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(login().await.status().as_u16());
    }
    // The in-process limiter starts counting afresh: 4 allowed, then 429.
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
    let ready = stack.get("/ready").await;
    assert_eq!(ready.status(), 200, "the replica stays in the load balancer");
    let body: Value = ready.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["checks"]["redis"].as_str()), (Some("degraded"), Some("degraded")));
    assert_eq!(body["checks"]["postgres"], "ok");
}

#[tokio::test]
async fn the_intake_starts_and_limits_in_process_when_redis_is_down_at_start() {
    // Nothing listens on port 1.
    let stack = Stack::spawn(&["--redis-url=redis://127.0.0.1:1", "--auth-ip-limit-per-min=2"]).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(stack.login("nobody@example.com", "x").await.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
    assert!(
        eventually(Duration::from_secs(10), || async {
            let ready = stack.get("/ready").await;
            ready.status() == 200 && ready.json::<Value>().await.unwrap()["checks"]["redis"] == "degraded"
        })
        .await
    );
}
