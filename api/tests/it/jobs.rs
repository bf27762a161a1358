//! The job plumbing end to end: outbox rows and jobs written in one
//! transaction, delivered by the worker runtime to a fake Twilio.

use std::collections::BTreeSet;
use std::time::Duration;

use lockers_core::contact::{Email, Phone};
use lockers_core::jobs::{self, EnqueueOptions, Enqueued, Queue, Sweep};
use lockers_core::notifications::{self, Message, Recipient};
use uuid::Uuid;

use crate::fakes::twilio::FakeTwilio;
use crate::harness::{TestApp, eventually};

async fn app_with_twilio(extra: &[&str]) -> (TestApp, FakeTwilio) {
    let twilio = FakeTwilio::start().await;
    let mut flags: Vec<String> = twilio.flags();
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    (TestApp::spawn_with(&flags).await, twilio)
}

fn sms(body: &str, sensitive: bool) -> Message {
    Message {
        to: Recipient::Sms(Phone::parse("+919876543210").unwrap()),
        kind: "test",
        subject: String::new(),
        body: body.to_owned(),
        sensitive,
    }
}

async fn notification_status(app: &TestApp, id: Uuid) -> (String, i32, Option<String>, String) {
    sqlx::query_as("SELECT status, attempts, provider_message_id, body FROM notifications WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn jobs_in(app: &TestApp, statuses: &[&str]) -> i64 {
    let statuses: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
    sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE status = ANY($1)")
        .bind(statuses)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rolled_back_notification_is_never_sent_and_a_committed_one_is_sent_exactly_once() {
    let (app, twilio) = app_with_twilio(&[]).await;
    let workers = app.start_workers(None);

    let mut tx = app.pool.begin().await.unwrap();
    notifications::queue(&mut tx, &sms("rolled back", true)).await.unwrap();
    tx.rollback().await.unwrap();

    let mut tx = app.pool.begin().await.unwrap();
    let id = notifications::queue(&mut tx, &sms("Your code is 123456", true)).await.unwrap();
    tx.commit().await.unwrap();

    assert!(eventually(Duration::from_secs(5), || async { !twilio.messages().is_empty() }).await, "nothing was sent");
    // Give a duplicate or the rolled-back message time to show up if it existed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = twilio.messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].body, "Your code is 123456");
    assert_eq!(sent[0].to, "+919876543210");

    let (status, attempts, provider_id, body) = notification_status(&app, id).await;
    assert_eq!((status.as_str(), attempts), ("sent", 1));
    assert_eq!(provider_id.as_deref(), Some(sent[0].sid.as_str()));
    assert_eq!(body, "", "a delivered code is blanked in the outbox");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications").fetch_one(&app.pool).await.unwrap();
    assert_eq!(rows, 1, "the rolled-back row is gone");
    assert_eq!(jobs_in(&app, &["Done"]).await, 1);
    assert_eq!(jobs_in(&app, &["Pending", "Queued", "Running", "Failed", "Killed"]).await, 0);
    workers.stop().await;
}

#[tokio::test]
async fn stopping_workers_mid_job_loses_no_job_and_sends_none_twice() {
    let (app, twilio) = app_with_twilio(&["--worker-queues=notify=2", "--scheduler=false"]).await;
    twilio.set_delay(Duration::from_millis(400));
    let mut tx = app.pool.begin().await.unwrap();
    for i in 0..10 {
        notifications::queue(&mut tx, &sms(&format!("message {i}"), false)).await.unwrap();
    }
    tx.commit().await.unwrap();

    let workers = app.start_workers(None);
    assert!(eventually(Duration::from_secs(5), || async { twilio.requests() >= 1 }).await);
    workers.stop().await;

    // In-flight jobs finished; claimed-but-unstarted ones were handed back, none stranded.
    let delivered_before_restart = twilio.messages().len();
    assert!((1..10).contains(&delivered_before_restart), "{delivered_before_restart} delivered before stop");
    assert_eq!(jobs_in(&app, &["Queued", "Running"]).await, 0, "no job is left locked by the stopped worker");
    let sent_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE status = 'sent'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sent_rows as usize, delivered_before_restart, "every finished job recorded its delivery");

    twilio.set_delay(Duration::ZERO);
    let workers = app.start_workers(None);
    assert!(eventually(Duration::from_secs(10), || async { twilio.messages().len() >= 10 }).await);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    workers.stop().await;
    let bodies: Vec<String> = twilio.messages().into_iter().map(|m| m.body).collect();
    let distinct: BTreeSet<&String> = bodies.iter().collect();
    assert_eq!(bodies.len(), 10, "each message once: {bodies:?}");
    assert_eq!(distinct.len(), 10);
    assert_eq!(jobs_in(&app, &["Done"]).await, 10);
}

#[tokio::test]
async fn a_permanent_refusal_is_not_retried() {
    let (app, twilio) = app_with_twilio(&["--scheduler=false"]).await;
    twilio.fail_with(400);
    let workers = app.start_workers(None);
    let mut tx = app.pool.begin().await.unwrap();
    let id = notifications::queue(&mut tx, &sms("to a bad number", false)).await.unwrap();
    tx.commit().await.unwrap();

    let failed =
        eventually(Duration::from_secs(5), || async { notification_status(&app, id).await.0 == "failed" }).await;
    assert!(failed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(twilio.requests(), 1, "a 400 is final");
    assert_eq!(jobs_in(&app, &["Killed"]).await, 1);
    workers.stop().await;
}

#[tokio::test]
async fn a_transient_failure_is_retried_until_the_provider_accepts() {
    let (app, twilio) = app_with_twilio(&["--scheduler=false"]).await;
    twilio.fail_with(503);
    let workers = app.start_workers(None);
    let mut tx = app.pool.begin().await.unwrap();
    let id = notifications::queue(&mut tx, &sms("eventually", false)).await.unwrap();
    tx.commit().await.unwrap();

    assert!(eventually(Duration::from_secs(10), || async { twilio.requests() >= 2 }).await, "retried after a 503");
    twilio.fail_with(0);
    assert!(eventually(Duration::from_secs(10), || async { twilio.messages().len() == 1 }).await);
    workers.stop().await;
    let (status, attempts, _, _) = notification_status(&app, id).await;
    assert_eq!(status, "sent");
    assert!(attempts >= 3, "failed attempts are counted: {attempts}");
}

#[tokio::test]
async fn jobs_with_the_same_idempotency_key_are_one_job() {
    let app = TestApp::spawn().await;
    let mut tx = app.pool.begin().await.unwrap();
    let keyed = || EnqueueOptions { idempotency_key: Some("sweep:1700000000".into()), ..Default::default() };
    let first = jobs::enqueue_with(&mut tx, Queue::Sweep, &Sweep { at: 1_700_000_000 }, keyed()).await.unwrap();
    let second = jobs::enqueue_with(&mut tx, Queue::Sweep, &Sweep { at: 1_700_000_000 }, keyed()).await.unwrap();
    // The transaction is still usable after the duplicate.
    notifications::queue(&mut tx, &sms("after the duplicate", false)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((first, second), (Enqueued::New, Enqueued::Duplicate));
    let sweeps: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'sweep'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sweeps, 1);

    let stats = jobs::stats(&app.pool).await.unwrap();
    let depth: Vec<(&str, i64, i64)> = stats.iter().map(|q| (q.queue.as_str(), q.ready, q.dead)).collect();
    assert_eq!(depth, [("notify", 1, 0), ("sweep", 1, 0)]);
    assert!(stats.iter().all(|q| q.oldest_ready_secs.is_some_and(|s| s >= 0.0)));
}

#[tokio::test]
async fn the_sweep_deletes_codes_and_tokens_a_day_after_they_expire() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    for (id, expired_days_ago) in [(Uuid::now_v7(), 2), (Uuid::now_v7(), 0)] {
        sqlx::query(
            "INSERT INTO one_time_codes (id, purpose, contact, code_hash, expires_at)
             VALUES ($1, 'login', '+919876543210', '\\x00', now() - make_interval(days => $2))",
        )
        .bind(id)
        .bind(expired_days_ago)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let workers = app.start_workers(None);
    let mut tx = app.pool.begin().await.unwrap();
    jobs::enqueue(&mut tx, Queue::Sweep, &Sweep { at: chrono::Utc::now().timestamp() }).await.unwrap();
    tx.commit().await.unwrap();

    let swept = eventually(Duration::from_secs(5), || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM one_time_codes").fetch_one(&app.pool).await.unwrap();
        left == 1
    })
    .await;
    workers.stop().await;
    assert!(swept, "the code expired two days ago is gone, the recent one kept");
}

#[tokio::test]
async fn the_console_provider_delivers_email_in_development() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    let workers = app.start_workers(None);
    let mut tx = app.pool.begin().await.unwrap();
    let message = Message {
        to: Recipient::Email(Email::parse("asha@example.com").unwrap()),
        kind: "test",
        subject: "Hello".into(),
        body: "Your parcel is ready".into(),
        sensitive: false,
    };
    let id = notifications::queue(&mut tx, &message).await.unwrap();
    tx.commit().await.unwrap();
    let sent = eventually(Duration::from_secs(5), || async { notification_status(&app, id).await.0 == "sent" }).await;
    workers.stop().await;
    assert!(sent);
    let provider: String = sqlx::query_scalar("SELECT provider FROM notifications WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(provider, "console");
}
