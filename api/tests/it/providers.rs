//! Provider behaviour against the fake Twilio (Basic auth and form fields
//! checked by it) and the fake SMTP server: what is retried and when, what is
//! final and why, the provider's message id kept; and the operator's commands
//! for failed messages (`lockers-admin notifications failed|resend`).

use std::time::Duration;

use lockers_core::accounts::contact::{Email, Phone};
use lockers_core::audit::Actor;
use lockers_core::exchange::collection::messages;
use lockers_core::messaging::admin::{self, ResendError, Resendable};
use lockers_core::messaging::otp::{Code, Purpose};
use lockers_core::messaging::outbox::{self, Message, Recipient};
use uuid::Uuid;

use crate::admin_cli::admin;
use crate::fakes::smtp::FakeSmtp;
use crate::fakes::twilio::{self, FakeTwilio, Refusal};
use crate::harness::{TestApp, eventually};

const PHONE: &str = "+919876543210";

async fn app_with(flags: Vec<String>) -> TestApp {
    let mut flags = flags;
    flags.push("--scheduler=false".into());
    TestApp::spawn_with(&flags.iter().map(String::as_str).collect::<Vec<_>>()).await
}

/// A notice SMS (a pickup receipt) naming `item`, so each is told apart.
fn sms(item: &str) -> Message {
    messages::receipt(Recipient::Sms(Phone::parse(PHONE).unwrap()), item, "Hub", 1, chrono::Utc::now())
}

async fn queue(app: &TestApp, message: &Message) -> Uuid {
    let mut tx = app.pool.begin().await.unwrap();
    let id = outbox::queue(&mut tx, message).await.unwrap();
    tx.commit().await.unwrap();
    id
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    status: String,
    attempts: i32,
    provider_message_id: Option<String>,
    last_error: Option<String>,
    resent_from: Option<Uuid>,
}

async fn row(app: &TestApp, id: Uuid) -> Row {
    sqlx::query_as(
        "SELECT status, attempts, provider_message_id, last_error, resent_from FROM notifications WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn status_becomes(app: &TestApp, id: Uuid, status: &str) -> bool {
    eventually(Duration::from_secs(15), || async { row(app, id).await.status == status }).await
}

#[tokio::test]
async fn a_503_then_201_is_delivered_exactly_once_with_its_sid_kept() {
    let twilio = FakeTwilio::start().await;
    let app = app_with(twilio.flags()).await;
    twilio.refuse_next([Refusal::new(503, 20503, "Service Unavailable")]);
    let workers = app.start_workers(None);
    let id = queue(&app, &sms("Your parcel is in locker 4")).await;

    assert!(status_becomes(&app, id, "sent").await, "delivered after the 503");
    // Time for a wrongly repeated attempt to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    workers.stop().await;
    assert_eq!(twilio.requests(), 2, "one 503, one 201, nothing after");
    let delivered = twilio.messages();
    assert_eq!(delivered.len(), 1);
    assert_eq!((delivered[0].to.as_str(), delivered[0].from.as_str()), (PHONE, twilio::FROM));
    assert!(delivered[0].body.contains("Your parcel is in locker 4"), "{}", delivered[0].body);
    let sent = row(&app, id).await;
    assert_eq!(sent.attempts, 2);
    assert_eq!(sent.provider_message_id.as_deref(), Some(delivered[0].sid.as_str()), "Twilio's sid is kept");
    assert_eq!(sent.last_error, None);
}

/// A message refused once with `429` and `Retry-After: {retry_after}`, then
/// delivered: the times of Twilio's two requests.
async fn refused_once_with_retry_after(retry_after: String) -> Vec<std::time::Instant> {
    let twilio = FakeTwilio::start().await;
    let app = app_with(twilio.flags()).await;
    twilio.refuse_next([Refusal::new(429, 20429, "Too Many Requests").retry_after(&retry_after)]);
    let workers = app.start_workers(None);
    let id = queue(&app, &sms("Collected: INR 50.00")).await;

    assert!(status_becomes(&app, id, "sent").await, "delivered after the 429");
    workers.stop().await;
    let times = twilio.request_times();
    assert_eq!(times.len(), 2, "one 429, one 201");
    assert_eq!(twilio.messages().len(), 1);
    assert_eq!(row(&app, id).await.attempts, 2);
    times
}

// The engine may not start the next attempt before the provider's wait is
// over: lower bounds on the recorded times, which load cannot break.

#[tokio::test]
async fn a_429_with_retry_after_2_is_retried_no_sooner_than_2_s() {
    // The default backoff of a first failure is 0.5 to 1 s: only the header
    // can make the wait 2 s.
    let times = refused_once_with_retry_after("2".into()).await;
    let gap = times[1] - times[0];
    assert!(gap >= Duration::from_secs(2), "Retry-After: 2 was answered with a retry after {gap:?}");
}

#[tokio::test]
async fn a_retry_after_given_as_an_http_date_is_honoured_too() {
    // Whole seconds on the wire: a date 4 s from now is at least 3 s from now,
    // however long the app takes to make its first attempt.
    let (now, date) = (std::time::Instant::now(), chrono::Utc::now() + chrono::Duration::seconds(4));
    let times = refused_once_with_retry_after(date.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).await;
    let after = times[1] - now;
    assert!(after >= Duration::from_secs(3), "Retry-After {date} was answered with a retry {after:?} from the start");
}

#[tokio::test]
async fn a_wait_of_an_hour_is_heard_as_ten_minutes() {
    let twilio = FakeTwilio::start().await;
    let app = app_with(twilio.flags()).await;
    twilio.refuse_next([Refusal::new(503, 20503, "Service Unavailable").retry_after("3600")]);
    let workers = app.start_workers(None);
    let id = queue(&app, &sms("Your parcel is in locker 4")).await;
    let waiting = eventually(Duration::from_secs(15), || async {
        let job: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE attempts = 1 AND state = 'ready'")
            .fetch_optional(&app.pool)
            .await
            .unwrap();
        job.is_some()
    })
    .await;
    workers.stop().await;
    assert!(waiting, "the job waits for its retry");
    let due_in: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM run_at - now())::float8 FROM jobs WHERE state = 'ready' AND attempts = 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    // Ten minutes spread over up to a fifth more, less the few seconds this test took.
    assert!((540.0..=720.0).contains(&due_in), "the retry is due in {due_in} s");
    let waiting = row(&app, id).await;
    assert_eq!((waiting.status.as_str(), waiting.attempts), ("pending", 1));
    let error = waiting.last_error.unwrap_or_default();
    assert!(error.contains("503") && error.contains("Retry-After: 3600 s"), "{error}");
    assert_eq!(twilio.requests(), 1);
}

#[tokio::test]
async fn a_400_fails_once_with_twilios_error_recorded_and_is_never_retried() {
    let twilio = FakeTwilio::start().await;
    let app = app_with(twilio.flags()).await;
    twilio.refuse_next([Refusal::new(400, 21211, "The 'To' number +919876543210 is not a valid phone number.")]);
    let workers = app.start_workers(None);
    let id = queue(&app, &sms("Your parcel is in locker 4")).await;

    assert!(status_becomes(&app, id, "failed").await);
    // Longer than any backoff of a first failure (at most 1 s by default).
    tokio::time::sleep(Duration::from_secs(3)).await;
    workers.stop().await;
    assert_eq!(twilio.requests(), 1, "a 400 is final");
    assert!(twilio.messages().is_empty());
    let failed = row(&app, id).await;
    assert_eq!((failed.status.as_str(), failed.attempts), ("failed", 1));
    let error = failed.last_error.unwrap_or_default();
    for part in ["400", "21211", "is not a valid phone number"] {
        assert!(error.contains(part), "`{part}` missing from last_error: {error}");
    }
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'dead' AND attempts = 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(dead, 1, "its job died after one attempt");
}

#[tokio::test]
async fn an_email_keeps_the_mail_servers_queue_answer_as_its_message_id() {
    let smtp = FakeSmtp::start().await;
    let app = app_with(smtp.flags()).await;
    let workers = app.start_workers(None);
    let to = Recipient::Email(Email::parse("asha@example.com").unwrap());
    let message = messages::receipt(to, "Books", "Hub", 1, chrono::Utc::now());
    let id = queue(&app, &message).await;
    assert!(status_becomes(&app, id, "sent").await);
    workers.stop().await;
    assert_eq!(smtp.mails_to("asha@example.com").len(), 1);
    let receipt = row(&app, id).await.provider_message_id.unwrap_or_default();
    assert!(receipt.contains("queued as fake-1"), "provider_message_id: {receipt:?}");
}

/// A message Twilio refused for good, as `notifications failed` lists it.
async fn refused_message(app: &TestApp, twilio: &FakeTwilio, body: &str) -> Uuid {
    twilio.refuse_next([Refusal::new(400, 21610, "Attempt to send to unsubscribed recipient")]);
    let id = queue(app, &sms(body)).await;
    assert!(status_becomes(app, id, "failed").await);
    id
}

#[tokio::test]
async fn notifications_failed_lists_a_refused_message_and_resend_delivers_it_again() {
    let twilio = FakeTwilio::start().await;
    let app = app_with(twilio.flags()).await;
    let workers = app.start_workers(None);
    let id = refused_message(&app, &twilio, "Your parcel is in locker 7").await;

    let listed = admin(&app, &["notifications", "failed", "--limit", "10"], "");
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    let line = listed.lines().find(|l| l.starts_with(&id.to_string())).unwrap_or_else(|| panic!("{listed}"));
    for part in ["sms", "+91******3210", "pickup_receipt", "21610", "unsubscribed recipient"] {
        assert!(line.contains(part), "`{part}` missing: {line}");
    }
    assert!(!listed.contains(PHONE), "the recipient is masked: {listed}");

    let resent = admin(&app, &["notifications", "resend", &id.to_string()], "");
    assert!(resent.status.success(), "{}", String::from_utf8_lossy(&resent.stderr));
    let new_id: Uuid = sqlx::query_scalar("SELECT id FROM notifications WHERE resent_from = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&resent.stdout).contains(&new_id.to_string()));
    assert!(status_becomes(&app, new_id, "sent").await, "the running worker delivered the resend");
    workers.stop().await;

    let delivered = twilio.messages();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].to, PHONE);
    assert!(delivered[0].body.contains("Your parcel is in locker 7"), "{}", delivered[0].body);
    assert_eq!(twilio.requests(), 2, "the refused attempt and the resend");
    let (old, new) = (row(&app, id).await, row(&app, new_id).await);
    assert_eq!((old.status.as_str(), old.attempts), ("failed", 1), "the failed row is kept as it was");
    assert_eq!((new.resent_from, new.attempts), (Some(id), 1));
    assert_eq!(new.provider_message_id.as_deref(), Some(delivered[0].sid.as_str()));

    let again = admin(&app, &["notifications", "resend", &id.to_string()], "");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already resent"), "{again:?}");
    let listed = admin(&app, &["notifications", "failed"], "");
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&new_id.to_string()), "the list names the resend");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'notification.resend' AND target_id = $1 AND actor_id IS NULL",
    )
    .bind(id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn a_code_that_failed_is_not_resent_and_the_operator_is_told_to_ask_for_a_new_one() {
    let twilio = FakeTwilio::start().await;
    let app = app_with(twilio.flags()).await;
    let workers = app.start_workers(None);
    twilio.refuse_next([Refusal::new(400, 21211, "invalid number")]);
    let to = Recipient::Sms(Phone::parse(PHONE).unwrap());
    let code = outbox::one_time_code(to, Purpose::Pickup, &Code::parse("271828").unwrap());
    let id = queue(&app, &code).await;
    assert!(status_becomes(&app, id, "failed").await);
    workers.stop().await;

    let refused = admin(&app, &["notifications", "resend", &id.to_string()], "");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("one-time code") && said.contains("new code"), "{said}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications").fetch_one(&app.pool).await.unwrap();
    assert_eq!(rows, 1, "nothing was queued");
}

#[tokio::test]
async fn only_failed_messages_are_resent_and_bad_arguments_are_refused() {
    let app = app_with(Vec::new()).await;
    let pending = queue(&app, &sms("not sent yet")).await;
    let mut conn = app.pool.acquire().await.unwrap();
    let refused = admin::resend(&mut conn, &Actor::operator(), pending, Resendable::FailedOrUnknown).await;
    assert!(matches!(&refused, Err(ResendError::NotFailed { status, .. }) if status == "pending"), "{refused:?}");
    let missing = admin::resend(&mut conn, &Actor::operator(), Uuid::now_v7(), Resendable::Failed).await;
    assert!(matches!(missing, Err(ResendError::NotFound(_))), "{missing:?}");
    let malformed = admin(&app, &["notifications", "resend", "not-an-id"], "");
    assert!(!malformed.status.success());
    let nothing = admin(&app, &["notifications", "failed", "--limit", "0"], "");
    assert!(!nothing.status.success(), "a limit below 1 is refused");
}

#[tokio::test]
async fn a_message_of_unknown_outcome_is_resent_only_when_the_operator_says_it_was_not_delivered() {
    let app = app_with(Vec::new()).await;
    let id = queue(&app, &sms("maybe delivered")).await;
    sqlx::query("UPDATE notifications SET status = 'unknown', attempts = 1 WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let refused = admin(&app, &["notifications", "resend", &id.to_string()], "");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("may have been delivered") && said.contains("--unknown"), "{said}");

    let resent = admin(&app, &["notifications", "resend", "--unknown", &id.to_string()], "");
    assert!(resent.status.success(), "{}", String::from_utf8_lossy(&resent.stderr));
    let copies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE resent_from = $1 AND status = 'pending'")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(copies, 1);
}

#[tokio::test]
async fn two_operators_resending_one_message_at_once_queue_it_once() {
    let app = app_with(Vec::new()).await;
    let id = queue(&app, &sms("refused once")).await;
    sqlx::query(
        "UPDATE notifications SET status = 'failed', attempts = 1, last_error = 'Twilio answered 400' WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let resend = || async {
        let mut conn = app.pool.acquire().await.unwrap();
        admin::resend(&mut conn, &Actor::operator(), id, Resendable::Failed).await
    };
    let (a, b) = tokio::join!(resend(), resend());
    let won = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{a:?} {b:?}");
    assert!([&a, &b].iter().any(|r| matches!(r, Err(ResendError::AlreadyResent { .. }))), "{a:?} {b:?}");
    let (rows, jobs): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM notifications WHERE resent_from = $1), (SELECT count(*) FROM jobs WHERE queue = 'notify')",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((rows, jobs), (1, 2), "one new row; the original job and the resend's");
}
