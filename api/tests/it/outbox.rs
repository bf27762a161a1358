//! The notification outbox under faults: a message is sent at most once
//! whatever happens to its job, a provider that never answers holds no
//! database connection, and bodies with codes never outlive their use.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use lockers_core::accounts::contact::{Email, Phone};
use lockers_core::billing::Money;
use lockers_core::exchange::collection::messages;
use lockers_core::jobs::{self, DeliverNotification, Queue};
use lockers_core::messaging::otp::{Code, Purpose};
use lockers_core::messaging::outbox::{self, Message, Recipient};
use uuid::Uuid;

use crate::fakes::twilio::FakeTwilio;
use crate::harness::{TestApp, eventually};

fn code_sms() -> Message {
    let to = Recipient::Sms(Phone::parse("+919876543210").unwrap());
    outbox::one_time_code(to, Purpose::Login, &Code::parse("314159").unwrap())
}

async fn status_and_body(app: &TestApp, id: Uuid) -> (String, String) {
    sqlx::query_as("SELECT status, body FROM notifications WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap()
}

async fn completed_jobs(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'completed'").fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn a_notification_job_run_twice_sends_once() {
    let twilio = FakeTwilio::start().await;
    let mut flags = twilio.flags();
    flags.extend(["--scheduler=false".to_owned(), "--worker-queues=otp=2".to_owned()]);
    let app = TestApp::spawn_with(&flags.iter().map(String::as_str).collect::<Vec<_>>()).await;
    // Slow provider: both runs are in flight at the same time.
    twilio.set_delay(Duration::from_millis(500));
    let mut tx = app.pool.begin().await.unwrap();
    let id = outbox::queue(&mut tx, &code_sms()).await.unwrap();
    // A second run of the same delivery, as a rescue or a duplicate would make.
    jobs::enqueue(&mut tx, Queue::Otp, &DeliverNotification { notification_id: id }).await.unwrap();
    tx.commit().await.unwrap();

    let workers = app.start_workers(None);
    let both_ran = eventually(Duration::from_secs(10), || async { completed_jobs(&app).await == 2 }).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    workers.stop().await;
    assert!(both_ran, "both runs finished");
    assert_eq!(twilio.requests(), 1, "the message went to the provider once");
    assert_eq!(status_and_body(&app, id).await, ("sent".to_owned(), String::new()), "sent, code blanked");
}

#[tokio::test]
async fn a_silent_mail_server_does_not_slow_intake_reads() {
    // Accepts connections and never says a word, like a mail relay that hangs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let app = TestApp::spawn_with(&[
        "--scheduler=false",
        "--email-provider=smtp",
        "--smtp-host=127.0.0.1",
        &format!("--smtp-port={port}"),
        "--smtp-tls=none",
        "--email-from=Lockers <no-reply@lockers.test>",
        // As many handlers stuck on the mail server as the intake has connections.
        "--worker-queues=notify=8",
        "--database-max-connections=8",
        "--shutdown-timeout=1",
    ])
    .await;
    let mut tx = app.pool.begin().await.unwrap();
    for i in 0..12 {
        let to = Recipient::Email(Email::parse(&format!("user{i}@example.com")).unwrap());
        let message = messages::collected(to, "Books", Utc::now(), &Money::new(5_000, "INR"), 1);
        outbox::queue(&mut tx, &message).await.unwrap();
    }
    tx.commit().await.unwrap();
    let workers = app.start_workers(None);
    let stuck = eventually(Duration::from_secs(10), || async { accepted.load(Ordering::SeqCst) >= 8 }).await;
    assert!(stuck, "eight deliveries are waiting on the silent server");

    // /ready queries the database through the intake's pool each time.
    for _ in 0..10 {
        let started = Instant::now();
        let response = app.get("/ready").await;
        let took = started.elapsed();
        assert_eq!(response.status(), 200, "the intake still reaches its database");
        // An exhausted pool would make it wait its 5 s acquire timeout.
        assert!(took < Duration::from_secs(2), "a read took {took:?}");
    }
    workers.stop().await;
}

#[tokio::test]
async fn a_code_that_was_never_delivered_in_time_is_closed_and_blanked() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    let mut tx = app.pool.begin().await.unwrap();
    let stale = outbox::queue(&mut tx, &code_sms()).await.unwrap();
    let fresh = outbox::queue(&mut tx, &code_sms()).await.unwrap();
    tx.commit().await.unwrap();
    // Its job died and nothing will deliver it; the code expired long ago.
    sqlx::query("UPDATE notifications SET created_at = now() - interval '1 hour' WHERE id = $1")
        .bind(stale)
        .execute(&app.pool)
        .await
        .unwrap();
    let settled = outbox::settle_abandoned(&app.pool, Duration::from_secs(3600)).await.unwrap();
    assert_eq!((settled.unknown, settled.expired), (0, 1));
    assert_eq!(status_and_body(&app, stale).await, ("failed".to_owned(), String::new()));
    assert_eq!(status_and_body(&app, fresh).await.0, "pending", "a code still valid waits for its delivery");
    // And a later run of its job sends nothing.
    assert!(outbox::claim(&app.pool, stale, uuid::Uuid::new_v4()).await.unwrap().is_none());
}

#[tokio::test]
async fn of_two_runs_of_one_message_in_one_claim_batch_exactly_one_wins_and_asking_again_returns_it() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    let mut tx = app.pool.begin().await.unwrap();
    let ids = outbox::queue_all(&mut tx, &[code_sms(), code_sms()]).await.unwrap();
    tx.commit().await.unwrap();
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE queue = 'otp'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(jobs, 2, "one delivery job per message, written with it");
    // Two runs of the first message's job (a duplicate, a rescue) and one of the second, in one batch.
    let runs = [
        outbox::Claim { id: ids[0], token: Uuid::new_v4() },
        outbox::Claim { id: ids[0], token: Uuid::new_v4() },
        outbox::Claim { id: ids[1], token: Uuid::new_v4() },
    ];
    let claimed = outbox::claim_many(&app.pool, &runs).await.unwrap();
    assert_eq!(claimed.iter().map(|(c, _)| *c).collect::<Vec<_>>(), runs, "answers in the order asked");
    let first: Vec<_> = claimed[..2].iter().filter_map(|(c, won)| won.as_ref().map(|w| (c.token, w.id))).collect();
    assert_eq!(first.len(), 1, "one run of the first message wins: {first:?}");
    assert_eq!(first[0].1, ids[0]);
    assert_eq!(claimed[2].1.as_ref().map(|w| w.id), Some(ids[1]));
    let holder: Uuid = sqlx::query_scalar("SELECT claim_token FROM notifications WHERE id = $1")
        .bind(ids[0])
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(holder, first[0].0, "the winner's token holds the claim");
    // The winner asking again (its answer lost) gets its claim back; the loser still nothing.
    let winner = runs.iter().find(|r| r.token == holder).copied().unwrap();
    let loser = runs[..2].iter().find(|r| r.token != holder).copied().unwrap();
    let again = outbox::claim_many(&app.pool, &[loser, winner]).await.unwrap();
    assert!(again[0].1.is_none(), "the losing run never sends");
    assert_eq!(again[1].1.as_ref().map(|w| w.id), Some(ids[0]));
}
