//! The billing ledger on a real database: closing bills (every started hour
//! once, idempotent, race-safe, per-size tariffs), amounts so far, and the
//! transaction lists over HTTP. Items are made directly with SQL (stored at a
//! chosen time), so these tests do not depend on the deposit flow.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lockers_core::audit::Actor;
use lockers_core::billing::{self, Bill, Tariffs};
use serde_json::Value;
use uuid::Uuid;

use crate::harness::{TestApp, eventually};

/// A point with lockers and items stored at chosen times, written with SQL.
struct Fixture {
    point_id: Uuid,
    sender: Uuid,
}

impl Fixture {
    async fn new(app: &TestApp, sender: Uuid) -> Fixture {
        let (state, city, point_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        sqlx::query("INSERT INTO states (id, name) VALUES ($1, $2)")
            .bind(state)
            .bind(format!("State {}", state.simple()))
            .execute(&app.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO cities (id, state_id, name) VALUES ($1, $2, 'Bengaluru')")
            .bind(city)
            .bind(state)
            .execute(&app.pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO locker_points (id, city_id, name, address, controller_token_hash)
             VALUES ($1, $2, 'Koramangala Hub', '80 Feet Road', $3)",
        )
        .bind(point_id)
        .bind(city)
        .bind(point_id.as_bytes().to_vec())
        .execute(&app.pool)
        .await
        .unwrap();
        Fixture { point_id, sender }
    }

    /// A new `size` locker holding an item of `sender`'s stored at `stored_at`.
    async fn stored_item(&self, app: &TestApp, size: &str, stored_at: DateTime<Utc>, name: &str) -> Uuid {
        let locker = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO lockers (id, point_id, door_no, size, status)
             SELECT $1, $2, coalesce(max(door_no), 0) + 1, $3, 'occupied' FROM lockers WHERE point_id = $2",
        )
        .bind(locker)
        .bind(self.point_id)
        .bind(size)
        .execute(&app.pool)
        .await
        .unwrap();
        let item = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO items (id, locker_id, size, sender_id, name, receiver_email, status, reserved_at, dropoff_by,
                                stored_at, pickup_by)
             SELECT $1, $2, size, $3, $4, 'receiver@example.com', 'stored', $5 - interval '5 minutes', $5,
                    $5, $5 + interval '72 hours'
             FROM lockers WHERE id = $2",
        )
        .bind(item)
        .bind(locker)
        .bind(self.sender)
        .bind(name)
        .bind(stored_at)
        .execute(&app.pool)
        .await
        .unwrap();
        item
    }

    /// `n` medium items stored at `stored_at`, each in a locker of its own, written in bulk.
    async fn bulk_items(&self, app: &TestApp, n: i32, stored_at: DateTime<Utc>) {
        sqlx::query(
            "WITH l AS (
                 INSERT INTO lockers (id, point_id, door_no, size, status)
                 SELECT gen_random_uuid(), $1, k, 'M', 'occupied' FROM generate_series(1, $4) k RETURNING id)
             INSERT INTO items (id, locker_id, size, sender_id, name, receiver_email, status, dropoff_by, stored_at,
                                pickup_by)
             SELECT gen_random_uuid(), l.id, 'M', $2, 'Bulk', 'r@example.com', 'stored', $3, $3, $3 + interval '72 hours'
             FROM l",
        )
        .bind(self.point_id)
        .bind(self.sender)
        .bind(stored_at)
        .bind(n)
        .execute(&app.pool)
        .await
        .unwrap();
    }

    /// A reserved item, never stored.
    async fn reserved_item(&self, app: &TestApp) -> Uuid {
        let item = self.stored_item(app, "M", days_ago(1), "Reserved").await;
        sqlx::query("UPDATE items SET status = 'reserved', stored_at = NULL, pickup_by = NULL WHERE id = $1")
            .bind(item)
            .execute(&app.pool)
            .await
            .unwrap();
        item
    }
}

/// A whole second some days back: exact arithmetic, as PostgreSQL keeps it.
fn days_ago(days: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp() - days * 24 * 3600, 0).unwrap()
}

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

/// Closes `item`'s bill as of `ended_at` in a transaction of its own.
async fn close(app: &TestApp, item: Uuid, ended_at: DateTime<Utc>) -> Bill {
    let tariffs = Tariffs::from_config(&app.config);
    let mut tx = app.pool.begin().await.unwrap();
    let bill = billing::close(&mut tx, item, ended_at, &tariffs).await.unwrap();
    tx.commit().await.unwrap();
    bill
}

/// The item's charge lines: (count, distinct hours, sum).
async fn lines(app: &TestApp, item: Uuid) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT hour_start), coalesce(sum(amount_paise), 0)::bigint
         FROM charges WHERE item_id = $1",
    )
    .bind(item)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn transactions_of(app: &TestApp, item: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM transactions WHERE item_id = $1")
        .bind(item)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn stays_of_1_60_61_minutes_and_3_days_cost_every_started_hour_once() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(4);
    for (stay, amount, hours) in [(1, 5000, 1), (60, 5000, 1), (61, 10_000, 2), (3 * 24 * 60, 360_000, 72)] {
        let item = fixture.stored_item(&app, "M", stored_at, "Parcel").await;
        let bill = close(&app, item, stored_at + minutes(stay)).await;
        assert_eq!(
            (bill.amount.minor, bill.amount.currency.as_str(), bill.hours),
            (amount, "INR", hours),
            "{stay} min"
        );
        let (count, distinct, sum) = lines(&app, item).await;
        assert_eq!((count, distinct, sum), (i64::from(hours), i64::from(hours), amount), "{stay} min: lines");
        assert_eq!(transactions_of(&app, item).await, 1);
        let first: DateTime<Utc> = sqlx::query_scalar("SELECT min(hour_start) FROM charges WHERE item_id = $1")
            .bind(item)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(first, stored_at, "hour 0 starts at stored_at");
    }
}

#[tokio::test]
async fn closing_twice_returns_the_first_bill_and_adds_nothing() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(4);
    let item = fixture.stored_item(&app, "M", stored_at, "Parcel").await;
    let first = close(&app, item, stored_at + minutes(61)).await;
    let again = close(&app, item, stored_at + minutes(3 * 24 * 60)).await;
    assert_eq!(first, again, "the bill is written once");
    assert_eq!(lines(&app, item).await, (2, 2, 10_000));
    assert_eq!(transactions_of(&app, item).await, 1);
    let mut conn = app.pool.acquire().await.unwrap();
    assert_eq!(billing::settled(&mut conn, item).await.unwrap(), Some(first));
}

#[tokio::test]
async fn eight_concurrent_closes_of_one_item_write_one_transaction_and_no_duplicate_lines() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(4);
    let item = fixture.stored_item(&app, "M", stored_at, "Parcel").await;
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let (pool, config) = (app.pool.clone(), app.config.clone());
            // Ends 65 to 72 hours in: whichever wins, the others must return
            // its bill and leave its lines alone (not drop the hours past theirs).
            let ended_at = stored_at + minutes((72 - n) * 60);
            tokio::spawn(async move {
                let mut tx = pool.begin().await.unwrap();
                let bill = billing::close(&mut tx, item, ended_at, &Tariffs::from_config(&config)).await.unwrap();
                tx.commit().await.unwrap();
                bill
            })
        })
        .collect();
    let bills: Vec<Bill> = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    assert!(bills.iter().all(|b| *b == bills[0]), "{bills:?}");
    let hours = i64::from(bills[0].hours);
    assert!((65..=72).contains(&hours), "{hours}");
    assert_eq!(bills[0].amount.minor, hours * 5000);
    assert_eq!(transactions_of(&app, item).await, 1);
    assert_eq!(lines(&app, item).await, (hours, hours, hours * 5000), "the lines are the bill's");
}

#[tokio::test]
async fn lines_accrued_past_the_end_are_dropped_and_earlier_ones_kept() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(4);
    let item = fixture.stored_item(&app, "M", stored_at, "Parcel").await;
    // Accrual charged hours 0-5 already (hour 0 at an older price); billing
    // then stopped at 61 minutes (e.g. the pickup open failed for good then).
    sqlx::query(
        "INSERT INTO charges (item_id, hour_start, amount_paise, currency)
         SELECT $1, $2 + n * interval '1 hour', CASE WHEN n = 0 THEN 4000 ELSE 5000 END, 'INR'
         FROM generate_series(0, 5) n",
    )
    .bind(item)
    .bind(stored_at)
    .execute(&app.pool)
    .await
    .unwrap();
    let bill = close(&app, item, stored_at + minutes(61)).await;
    assert_eq!((bill.amount.minor, bill.hours), (9000, 2), "hours 0 and 1 as accrued; 2-5 dropped");
    assert_eq!(lines(&app, item).await, (2, 2, 9000));
}

#[tokio::test]
async fn each_size_is_priced_by_its_tariff_and_table_rows_win_from_their_start() {
    let app = TestApp::spawn_with(&["--tariffs", "S=4000,L=6000,XL=8000"]).await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(4);
    // L costs 7000 from the item's second hour on.
    sqlx::query("INSERT INTO tariffs (id, size, amount_paise, currency, valid_from) VALUES ($1, 'L', 7000, 'INR', $2)")
        .bind(Uuid::now_v7())
        .bind(stored_at + minutes(60))
        .execute(&app.pool)
        .await
        .unwrap();
    for (size, amount) in [("S", 8000), ("M", 10_000), ("L", 6000 + 7000), ("XL", 16_000)] {
        let item = fixture.stored_item(&app, size, stored_at, "Parcel").await;
        let bill = close(&app, item, stored_at + minutes(61)).await;
        assert_eq!((bill.amount.minor, bill.hours), (amount, 2), "{size}");
    }
}

#[tokio::test]
async fn an_item_never_stored_costs_nothing_and_gets_no_transaction() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let item = fixture.reserved_item(&app).await;
    let bill = close(&app, item, Utc::now()).await;
    assert_eq!((bill.amount.minor, bill.hours), (0, 0));
    assert_eq!(transactions_of(&app, item).await, 0);
    assert_eq!(lines(&app, item).await, (0, 0, 0));
    let tariffs = Tariffs::from_config(&app.config);
    let mut tx = app.pool.begin().await.unwrap();
    assert!(billing::close(&mut tx, Uuid::now_v7(), Utc::now(), &tariffs).await.is_err(), "no such item");
}

#[tokio::test]
async fn so_far_prices_open_items_by_started_hours_and_closed_ones_by_their_bill() {
    let app = TestApp::spawn_with(&["--tariffs", "S=4000"]).await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(4);
    let open = fixture.stored_item(&app, "S", stored_at, "Open").await;
    let closed = fixture.stored_item(&app, "M", stored_at, "Closed").await;
    let reserved = fixture.reserved_item(&app).await;
    let bill = close(&app, closed, stored_at + minutes(30)).await;
    let tariffs = Tariffs::from_config(&app.config);
    let mut conn = app.pool.acquire().await.unwrap();
    let at = stored_at + minutes(61);
    let amounts = billing::so_far(&mut conn, &tariffs, &[open, closed, reserved, Uuid::now_v7()], at).await.unwrap();
    assert_eq!(amounts.len(), 3, "unknown items are left out");
    let of = |id| amounts.iter().find(|a| a.item_id == id).unwrap();
    assert_eq!((of(open).amount.minor, of(open).hours, of(open).settled), (8000, 2, false));
    assert_eq!((of(closed).amount.clone(), of(closed).settled), (bill.amount, true));
    assert_eq!((of(reserved).amount.minor, of(reserved).hours), (0, 0));
    // What so_far showed is what closing at that moment charges.
    assert_eq!(close(&app, open, at).await.amount, of(open).amount);
}

async fn accrue(app: &TestApp, at: DateTime<Utc>) -> billing::AccrualReport {
    let mut conn = app.pool.acquire().await.unwrap();
    billing::accrue(&mut conn, at, &Tariffs::from_config(&app.config)).await.unwrap()
}

#[tokio::test]
async fn accrual_charges_each_started_hour_once_and_the_close_settles_on_top() {
    let app = TestApp::spawn_with(&["--tariffs", "S=4000"]).await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(3);
    let medium = fixture.stored_item(&app, "M", stored_at, "Medium").await;
    let small = fixture.stored_item(&app, "S", stored_at, "Small").await;
    let settled = fixture.stored_item(&app, "M", stored_at, "Settled").await;
    let reserved = fixture.reserved_item(&app).await;
    close(&app, settled, stored_at + minutes(30)).await;

    let first = accrue(&app, stored_at + minutes(61)).await;
    assert_eq!((first.items, first.lines), (2, 4), "hours 0 and 1 of the two open items");
    let again = accrue(&app, stored_at + minutes(61)).await;
    assert_eq!((again.items, again.lines), (2, 0), "a repeated run charges nothing");
    let later = accrue(&app, stored_at + minutes(180)).await;
    assert_eq!(later.lines, 2, "hour 2 of each");
    assert_eq!(lines(&app, medium).await, (3, 3, 15_000));
    assert_eq!(lines(&app, small).await, (3, 3, 12_000));
    assert_eq!(lines(&app, settled).await, (1, 1, 5000), "a settled item is not accrued");
    assert_eq!(lines(&app, reserved).await, (0, 0, 0), "nor an item never stored");

    // Billing of the medium item ended at 61 minutes: hour 2 is dropped.
    let bill = close(&app, medium, stored_at + minutes(61)).await;
    assert_eq!((bill.amount.minor, bill.hours), (10_000, 2));
    assert_eq!(lines(&app, medium).await, (2, 2, 10_000));
    // The small one ran to 4 h 1 min: the close charges the hours accrual had not reached.
    let bill = close(&app, small, stored_at + minutes(4 * 60 + 1)).await;
    assert_eq!((bill.amount.minor, bill.hours), (20_000, 5));
    let after_close = accrue(&app, Utc::now()).await;
    assert_eq!((after_close.items, after_close.lines), (0, 0), "settled items are left alone");
}

#[tokio::test]
async fn accrual_charges_every_open_item_in_one_run() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(1);
    // 1,100 open items, written in bulk.
    fixture.bulk_items(&app, 1100, stored_at).await;
    let report = accrue(&app, stored_at + minutes(90)).await;
    assert_eq!((report.items, report.lines), (1100, 2200));
    let charged: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT item_id) FROM charges").fetch_one(&app.pool).await.unwrap();
    assert_eq!(charged, 1100);
}

#[tokio::test]
async fn accrual_racing_closes_never_leaves_a_line_outside_a_bill() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(3);
    let mut items = Vec::new();
    for _ in 0..24 {
        items.push(fixture.stored_item(&app, "M", stored_at, "Parcel").await);
    }
    let tariffs = Tariffs::from_config(&app.config);
    // Accrual runs to now (72+ hours) while each item's billing closes much earlier.
    let accruals: Vec<_> = (0..3)
        .map(|_| {
            let (pool, tariffs) = (app.pool.clone(), tariffs.clone());
            tokio::spawn(async move {
                for _ in 0..4 {
                    let mut conn = pool.acquire().await.unwrap();
                    billing::accrue(&mut conn, Utc::now(), &tariffs).await.unwrap();
                }
            })
        })
        .collect();
    let closes: Vec<_> = items
        .iter()
        .enumerate()
        .map(|(k, &item)| {
            let (pool, tariffs) = (app.pool.clone(), tariffs.clone());
            let ended_at = stored_at + minutes(k as i64 * 60 + 1);
            tokio::spawn(async move {
                let mut tx = pool.begin().await.unwrap();
                billing::close(&mut tx, item, ended_at, &tariffs).await.unwrap();
                tx.commit().await.unwrap();
            })
        })
        .collect();
    for task in accruals.into_iter().chain(closes) {
        task.await.unwrap();
    }
    accrue(&app, Utc::now()).await;
    for (k, &item) in items.iter().enumerate() {
        let bill = close(&app, item, Utc::now()).await;
        assert_eq!(bill.hours, k as i32 + 1, "item {k}: the first close's end stands");
        let (count, distinct, sum) = lines(&app, item).await;
        assert_eq!(
            (count, distinct, sum),
            (i64::from(bill.hours), i64::from(bill.hours), bill.amount.minor),
            "item {k}"
        );
    }
}

// --- the scheduled run ---------------------------------------------------------

/// Every charge line: (count, distinct (item, hour) pairs).
async fn all_lines(app: &TestApp) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT (item_id, hour_start)) FROM charges")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_billing_runs_at_once_charge_each_hour_once() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(1);
    fixture.bulk_items(&app, 1100, stored_at).await;
    let at = stored_at + minutes(5 * 60 + 30);
    let tariffs = Tariffs::from_config(&app.config);
    let run = || {
        let (pool, tariffs) = (app.pool.clone(), tariffs.clone());
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            billing::accrual::run(&mut conn, &Actor::system(), at, &tariffs).await.unwrap()
        })
    };
    let (a, b) = (run(), run());
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.lines + b.lines, 1100 * 6, "hours 0 to 5 of each item, written by one run or the other");
    assert_eq!(all_lines(&app).await, (6600, 6600));
    let again = accrue(&app, at).await;
    assert_eq!(again.lines, 0, "a repeated run charges nothing");
}

#[tokio::test]
async fn a_run_after_a_three_hour_gap_charges_each_missed_hour_once_and_the_close_adds_none() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(1);
    let item = fixture.stored_item(&app, "M", stored_at, "Parcel").await;
    assert_eq!(accrue(&app, stored_at + minutes(10)).await.lines, 1, "hour 0");
    // The scheduler was down for three hourly runs; the next one catches up.
    let late = stored_at + minutes(3 * 60 + 10);
    assert_eq!(accrue(&app, late).await.lines, 3, "hours 1, 2 and 3");
    assert_eq!(accrue(&app, late).await.lines, 0);
    let hours: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT hour_start FROM charges WHERE item_id = $1 ORDER BY hour_start")
            .bind(item)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(hours, (0..4).map(|n| stored_at + chrono::Duration::hours(n)).collect::<Vec<_>>());
    // Collected at 3 h 20 min: four started hours, the ones accrual already charged.
    let bill = close(&app, item, stored_at + minutes(3 * 60 + 20)).await;
    assert_eq!((bill.amount.minor, bill.hours), (20_000, 4));
    assert_eq!(lines(&app, item).await, (4, 4, 20_000));
}

/// Waits until a session of this database is queued on an advisory lock (the
/// accrual lock: nothing else here takes one).
async fn someone_waits_for_the_accrual_lock(app: &TestApp) {
    let waiting = eventually(Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
             WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        n > 0
    })
    .await;
    assert!(waiting, "nobody queued on the accrual lock");
}

#[tokio::test]
async fn a_close_during_a_run_waits_for_it_then_drops_what_it_charged_past_the_end() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(3);
    let item = fixture.stored_item(&app, "M", stored_at, "Parcel").await;
    let tariffs = Tariffs::from_config(&app.config);
    // A run in progress: its transaction (and the accrual lock) is still open.
    let mut run = app.pool.begin().await.unwrap();
    let report = billing::accrue(&mut run, Utc::now(), &tariffs).await.unwrap();
    assert_eq!(report.items, 1);
    assert!(report.lines >= 72, "three days of hours: {report:?}");
    // The pickup ended billing at 61 minutes; its close must not settle on
    // what it cannot see yet.
    let closing = {
        let (pool, tariffs) = (app.pool.clone(), tariffs.clone());
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let bill = billing::close(&mut tx, item, stored_at + minutes(61), &tariffs).await.unwrap();
            tx.commit().await.unwrap();
            bill
        })
    };
    someone_waits_for_the_accrual_lock(&app).await;
    assert_eq!(transactions_of(&app, item).await, 0, "the close waits for the run");
    run.commit().await.unwrap();
    let bill = closing.await.unwrap();
    assert_eq!((bill.amount.minor, bill.hours), (10_000, 2));
    assert_eq!(lines(&app, item).await, (2, 2, 10_000), "hours 0 and 1; the run's later lines dropped");
}

#[tokio::test]
async fn a_run_during_a_close_waits_for_it_and_leaves_the_settled_item_alone() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(3);
    let item = fixture.stored_item(&app, "M", stored_at, "Parcel").await;
    let open = fixture.stored_item(&app, "M", stored_at + minutes(150), "Open").await;
    let tariffs = Tariffs::from_config(&app.config);
    // A close in progress (e.g. a collect's transaction, not committed yet).
    let mut closing = app.pool.begin().await.unwrap();
    let bill = billing::close(&mut closing, item, stored_at + minutes(61), &tariffs).await.unwrap();
    assert_eq!(bill.hours, 2);
    let at = stored_at + minutes(300);
    let running = {
        let (pool, tariffs) = (app.pool.clone(), tariffs.clone());
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            billing::accrue(&mut conn, at, &tariffs).await.unwrap()
        })
    };
    someone_waits_for_the_accrual_lock(&app).await;
    assert_eq!(lines(&app, open).await, (0, 0, 0), "the run waits for the close");
    closing.commit().await.unwrap();
    let report = running.await.unwrap();
    assert_eq!((report.items, report.lines), (1, 3), "only the open item: hours 0 to 2 of its 2 h 30 min");
    assert_eq!(lines(&app, item).await, (2, 2, 10_000), "the settled item has its bill's lines only");
}

#[tokio::test]
async fn a_run_takes_no_item_row_lock_so_a_transition_holding_one_closes_after_it() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(1);
    let item = fixture.stored_item(&app, "M", stored_at, "Parcel").await;
    let tariffs = Tariffs::from_config(&app.config);
    // A collect's transaction holds the item row, as transitions do before
    // they close the bill.
    let mut collect = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM items WHERE id = $1 FOR UPDATE").bind(item).execute(&mut *collect).await.unwrap();
    // The run writes the item's lines without waiting for that row (a
    // foreign-key check would: then the close below, waiting for the run's
    // lock while holding the row, would deadlock with it). The bound only
    // turns a hang into a failure.
    let run = tokio::time::timeout(Duration::from_secs(60), accrue(&app, stored_at + minutes(150))).await;
    assert_eq!(run.expect("the run waited for the item's row").lines, 3);
    let bill = billing::close(&mut collect, item, stored_at + minutes(61), &tariffs).await.unwrap();
    collect.commit().await.unwrap();
    assert_eq!((bill.amount.minor, bill.hours), (10_000, 2));
    assert_eq!(lines(&app, item).await, (2, 2, 10_000));
}

async fn runs(app: &TestApp) -> Vec<(DateTime<Utc>, i64, i64)> {
    sqlx::query_as("SELECT run_at, items, lines FROM billing_runs ORDER BY run_at").fetch_all(&app.pool).await.unwrap()
}

#[tokio::test]
async fn the_first_run_starts_from_each_items_last_line_and_later_runs_from_the_last_run() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(1);
    // Hours 0-2 charged before this deploy (no run recorded), and an item never accrued.
    let accrued = fixture.stored_item(&app, "M", stored_at, "Accrued").await;
    sqlx::query(
        "INSERT INTO charges (item_id, hour_start, amount_paise, currency)
         SELECT $1, $2 + n * interval '1 hour', 5000, 'INR' FROM generate_series(0, 2) n",
    )
    .bind(accrued)
    .bind(stored_at)
    .execute(&app.pool)
    .await
    .unwrap();
    let fresh = fixture.stored_item(&app, "M", stored_at, "Fresh").await;
    assert!(runs(&app).await.is_empty());

    let first = stored_at + minutes(5 * 60 + 30);
    let report = accrue(&app, first).await;
    assert_eq!((report.items, report.lines), (2, 3 + 6), "hours 3-5 of one, 0-5 of the other");
    assert_eq!(lines(&app, accrued).await, (6, 6, 30_000));
    assert_eq!(lines(&app, fresh).await, (6, 6, 30_000));
    assert_eq!(runs(&app).await, [(first, 2, 9)], "the run is the next one's watermark");

    // From now on a run looks back to the last run (less five minutes), not
    // at each item's lines: an item whose deposit committed 3 minutes late
    // gets its hour 0; one stored 3 hours before the run but committed only
    // now is charged from the hour that started at the run (its close charges
    // the earlier ones, as it charges whatever accrual missed).
    let late = fixture.stored_item(&app, "M", first - minutes(3), "Late").await;
    let very_late = fixture.stored_item(&app, "M", first - minutes(3 * 60), "Very late").await;
    let second = first + minutes(60);
    let report = accrue(&app, second).await;
    assert_eq!((report.items, report.lines), (4, 1 + 1 + 2 + 1), "hour 6 of the first two; 0-1; 3");
    assert_eq!(lines(&app, late).await, (2, 2, 10_000));
    let hours: Vec<DateTime<Utc>> = sqlx::query_scalar("SELECT hour_start FROM charges WHERE item_id = $1")
        .bind(very_late)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(hours, [first]);
    let bill = close(&app, very_late, second).await;
    assert_eq!((bill.hours, bill.amount.minor), (4, 20_000), "the close charges hours 0-2 accrual skipped");
    assert_eq!(runs(&app).await, [(first, 2, 9), (second, 4, 5)]);
}

#[tokio::test]
async fn a_run_older_than_the_last_finds_its_hours_charged_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let stored_at = days_ago(1);
    let item = fixture.stored_item(&app, "M", stored_at, "Parcel").await;
    assert_eq!(accrue(&app, stored_at + minutes(150)).await.lines, 3, "hours 0-2");
    assert_eq!(accrue(&app, stored_at + minutes(330)).await.lines, 3, "hours 3-5");
    // Late (a scheduler's clock behind, a queued job): its watermark is the
    // first run, so it lays out hours 3 and 4 past it, which the later run
    // charged. The fast insert meets them and the run skips them instead.
    let late = accrue(&app, stored_at + minutes(270)).await;
    assert_eq!((late.items, late.lines), (1, 0));
    assert_eq!(lines(&app, item).await, (6, 6, 30_000));
    // And a line written outside any run (by hand, or a close's hours of an
    // item reopened by an operator) is skipped the same way.
    sqlx::query("INSERT INTO charges (item_id, hour_start, amount_paise, currency) VALUES ($1, $2, 5000, 'INR')")
        .bind(item)
        .bind(stored_at + minutes(7 * 60))
        .execute(&app.pool)
        .await
        .unwrap();
    let next = accrue(&app, stored_at + minutes(8 * 60 + 30)).await;
    assert_eq!(next.lines, 2, "hours 6 and 8; hour 7 was there");
    assert_eq!(lines(&app, item).await, (9, 9, 45_000));
}

#[tokio::test]
async fn lockers_admin_billing_run_charges_now_and_is_audited_as_the_operator() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let item = fixture.stored_item(&app, "M", Utc::now() - minutes(150), "Parcel").await;
    for expected in ["billed: 1 open items, 3 charge lines", "billed: 1 open items, 0 charge lines"] {
        let out = crate::admin_cli::admin(&app, &["billing", "run"], "");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(expected), "{stdout}");
    }
    assert_eq!(lines(&app, item).await, (3, 3, 15_000));
    let audited: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT (after->>'lines')::bigint FROM audit_log WHERE action = 'billing.run' AND actor_id IS NULL
         ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, [Some(3), Some(0)]);
}

#[tokio::test]
async fn the_billing_cron_enqueues_one_billing_job_per_tick_however_many_schedulers_run() {
    // Every second, so the test sees ticks; the sweep out of the way.
    let app = TestApp::spawn_with(&[
        "--billing-cron",
        "* * * * * *",
        "--sweep-cron",
        "0 0 0 1 1 *",
        "--worker-queues",
        "billing=1",
    ])
    .await;
    let (sender, _) = app.user_with_role("user").await;
    let fixture = Fixture::new(&app, sender).await;
    let item = fixture.stored_item(&app, "M", Utc::now() - minutes(90), "Parcel").await;
    let (one, two) = (app.start_workers(None), app.start_workers(None));
    let ran = eventually(Duration::from_secs(60), || async {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE queue = 'billing' AND state = 'completed'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        done >= 3
    })
    .await;
    one.stop().await;
    two.stop().await;
    assert!(ran, "the scheduler enqueued billing jobs and a worker ran them");
    assert_eq!(lines(&app, item).await, (2, 2, 10_000), "hours 0 and 1, once");
    let (jobs, ticks): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT payload->'at') FROM jobs
         WHERE queue = 'billing' AND idempotency_key = 'billing:' || (payload->>'at')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let all: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE queue = 'billing'").fetch_one(&app.pool).await.unwrap();
    assert_eq!((jobs, ticks), (all, all), "each tick is one job, keyed by its time, though two schedulers ran");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'billing.run'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(audited, 0, "the hourly run is not audited");
}

// --- over HTTP ---------------------------------------------------------------

async fn list(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn code_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

/// Sets when `item`'s transaction was written, for time filters.
async fn written_at(app: &TestApp, item: Uuid, at: &str) {
    sqlx::query("UPDATE transactions SET created_at = $2::timestamptz WHERE item_id = $1")
        .bind(item)
        .bind(at)
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn my_transactions_are_mine_only_newest_first_with_what_they_paid_for() {
    let app = TestApp::spawn().await;
    let (alice, alice_token) = app.user_with_role("user").await;
    let (bob, bob_token) = app.user_with_role("user").await;
    let (mine, theirs) = (Fixture::new(&app, alice).await, Fixture::new(&app, bob).await);
    let stored_at = days_ago(4);
    let older = mine.stored_item(&app, "M", stored_at, "Books").await;
    let newer = mine.stored_item(&app, "XL", stored_at, "Bicycle wheel").await;
    let bobs = theirs.stored_item(&app, "M", stored_at, "Bob's").await;
    for item in [older, newer, bobs] {
        close(&app, item, stored_at + minutes(61)).await;
    }
    written_at(&app, older, "2026-01-01T10:00:00Z").await;
    written_at(&app, newer, "2026-01-02T10:00:00Z").await;

    let body = list(app.my_transactions(Some(&alice_token), "").await).await;
    assert_eq!(
        (body["total"].as_i64(), body["page"].as_i64(), body["per_page"].as_i64()),
        (Some(2), Some(1), Some(50))
    );
    let items = body["items"].as_array().unwrap();
    assert_eq!(items[0]["item_id"], newer.to_string(), "newest first");
    assert_eq!(items[1]["item_id"], older.to_string());
    let row = &items[0];
    assert_eq!(row["amount_paise"], 10_000);
    assert!(row["amount_paise"].is_i64(), "integer paise, never a float");
    assert_eq!(row["currency"], "INR");
    assert_eq!(row["amount_display"], "INR 100.00");
    assert_eq!(row["hours"], 2);
    assert_eq!(row["item_name"], "Bicycle wheel");
    assert_eq!(row["locker_size"], "XL");
    assert_eq!(row["door_no"], 2);
    assert_eq!(row["point_id"], mine.point_id.to_string());
    assert_eq!(row["point_name"], "Koramangala Hub");
    assert_eq!(row["user_id"], alice.to_string());
    assert_eq!(row["created_at"], "2026-01-02T10:00:00Z");

    let page2 = list(app.my_transactions(Some(&alice_token), "per_page=1&page=2").await).await;
    assert_eq!(page2["total"], 2);
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2["items"][0]["item_id"], older.to_string());

    let bobs_list = list(app.my_transactions(Some(&bob_token), "").await).await;
    assert_eq!(bobs_list["total"], 1);
    assert_eq!(bobs_list["items"][0]["item_id"], bobs.to_string());

    let since = list(app.my_transactions(Some(&alice_token), "from=2026-01-02T00:00:00Z").await).await;
    assert_eq!(since["total"], 1);

    assert_eq!(code_of(app.my_transactions(None, "").await).await, (401, "unauthorized".into()));
    assert_eq!(code_of(app.my_transactions(Some("not-a-token"), "").await).await, (401, "invalid_token".into()));
    assert_eq!(code_of(app.my_transactions(Some(&alice_token), "page=0").await).await, (400, "invalid_query".into()));
    assert_eq!(
        code_of(app.my_transactions(Some(&alice_token), "from=yesterday").await).await,
        (400, "invalid_query".into())
    );
}

#[tokio::test]
async fn admins_list_every_transaction_by_user_and_time_and_bad_filters_are_refused() {
    let app = TestApp::spawn().await;
    let (_, user_token) = app.user_with_role("user").await;
    let (_, admin) = app.user_with_role("admin").await;
    let (alice, _) = app.user_with_role("user").await;
    let (bob, _) = app.user_with_role("user").await;
    let stored_at = days_ago(4);
    let (fa, fb) = (Fixture::new(&app, alice).await, Fixture::new(&app, bob).await);
    let a1 = fa.stored_item(&app, "M", stored_at, "A1").await;
    let a2 = fa.stored_item(&app, "M", stored_at, "A2").await;
    let b1 = fb.stored_item(&app, "S", stored_at, "B1").await;
    for (item, at) in [(a1, "2026-03-01T09:00:00Z"), (a2, "2026-03-02T09:00:00Z"), (b1, "2026-03-03T09:00:00Z")] {
        close(&app, item, stored_at + minutes(1)).await;
        written_at(&app, item, at).await;
    }

    let all = list(app.admin_transactions(&admin, "").await).await;
    assert_eq!(all["total"], 3);
    let ids: Vec<&str> = all["items"].as_array().unwrap().iter().map(|r| r["item_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [b1.to_string(), a2.to_string(), a1.to_string()], "newest first");

    let alices = list(app.admin_transactions(&admin, &format!("user_id={alice}")).await).await;
    assert_eq!(alices["total"], 2);
    assert!(alices["items"].as_array().unwrap().iter().all(|r| r["user_id"] == alice.to_string()));

    // `from` inclusive, `to` exclusive.
    let window = "from=2026-03-02T09:00:00Z&to=2026-03-03T09:00:00Z";
    let between = list(app.admin_transactions(&admin, window).await).await;
    assert_eq!(between["total"], 1);
    assert_eq!(between["items"][0]["item_id"], a2.to_string());
    let offset = list(app.admin_transactions(&admin, "from=2026-03-02T14:30:00%2B05:30").await).await;
    assert_eq!(offset["total"], 2, "RFC 3339 offsets are understood (09:00Z)");
    let none = list(app.admin_transactions(&admin, &format!("user_id={}", Uuid::now_v7())).await).await;
    assert_eq!((none["total"].as_i64(), none["items"].as_array().map(Vec::len)), (Some(0), Some(0)));

    assert_eq!(code_of(app.admin_transactions(&user_token, "").await).await, (403, "forbidden".into()));
    let anonymous = app.get("/api/v1/admin/transactions").await;
    assert_eq!(code_of(anonymous).await, (401, "unauthorized".into()));
    for bad in [
        "from=2026-03-02",
        "to=tomorrow",
        "user_id=42",
        "per_page=101",
        "from=2026-03-03T00:00:00Z&to=2026-03-01T00:00:00Z",
    ] {
        assert_eq!(code_of(app.admin_transactions(&admin, bad).await).await, (400, "invalid_query".into()), "{bad}");
    }
    assert_eq!(code_of(app.admin_transactions(&admin, "page=1000").await).await, (422, "page_too_deep".into()));
}

#[tokio::test]
async fn a_collected_exchange_is_in_the_senders_ledger_at_the_amount_quoted_at_the_collect() {
    use crate::client::pickup::{Receiver, Sender};
    use crate::harness::{Stack, eventually};

    const PHONE: &str = "+919812345670";
    let stack = Stack::spawn(&[]).await;
    let spot = stack.spot("Jayanagar", 1).await;
    let (sender_id, token) = stack.user_with_role("user").await;
    let (_, admin) = stack.user_with_role("admin").await;
    let sender = Sender { id: sender_id, email: format!("{}@example.com", sender_id.simple()) };
    let locker = spot.lockers[0];
    let receiver = Receiver { phone: Some(PHONE), email: None };
    let item = stack.stored_item_since(&sender, locker, receiver, chrono::Duration::minutes(61)).await;

    assert_eq!(stack.pickup_request(locker, PHONE).await.status(), 202);
    let code = stack.sms_code(PHONE, 1).await;
    let opened = list(stack.pickup_collect(locker, &code).await).await;
    let collected =
        eventually(std::time::Duration::from_secs(15), || async { stack.item_status(item).await == "collected" }).await;
    assert!(collected, "the item was not collected");

    let mine = list(stack.my_transactions(Some(&token), "").await).await;
    assert_eq!(mine["total"], 1, "{mine}");
    let row = &mine["items"][0];
    assert_eq!(row["item_id"], item.to_string());
    assert_eq!(row["amount_paise"], opened["amount_paise"], "the ledger's total is the amount quoted at the collect");
    assert_eq!((row["amount_paise"].as_i64(), row["hours"].as_i64()), (Some(10_000), Some(2)));
    assert_eq!(row["point_id"], spot.point_id.to_string());
    assert_eq!(row["locker_id"], locker.to_string());
    let all = list(stack.admin_transactions(&admin, &format!("user_id={sender_id}")).await).await;
    assert_eq!(all["items"][0]["id"], row["id"]);
}

#[tokio::test]
async fn accrual_reads_open_items_through_its_index() {
    let app = TestApp::spawn().await;
    // With a few rows a sequential scan is cheapest; forbid it to see that the
    // open items are found through their partial index (collected ones stay
    // in the table for good).
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await.unwrap();
    let explain = format!("EXPLAIN {}", billing::accrual::CHARGE_SQL);
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .bind(Utc::now())
        .bind(4000i64)
        .bind(5000i64)
        .bind(6000i64)
        .bind(8000i64)
        .bind(5000i64)
        .bind("INR")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("items_billing_open_idx"), "{plan}");
    assert!(!plan.contains("Seq Scan on items"), "{plan}");
}
