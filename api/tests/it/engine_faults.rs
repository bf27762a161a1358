//! The job engine under faults: a process presumed dead that comes back, a
//! handler that hangs or panics, an outcome never recorded, periodic work
//! enqueued twice, a worker pool too small. Real PostgreSQL, real engines
//! (several per test, as separate processes would be), test handlers given to
//! the engine through `Engine::serve`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use lockers_core::db;
use lockers_core::jobs::backoff::Backoff;
use lockers_core::jobs::{self, EnqueueOptions, Enqueued, Queue, Sweep};
use lockers_workers::engine::claims;
use lockers_workers::engine::{Engine, EngineSettings, Handler};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::fakes::tcp_proxy::TcpProxy;
use crate::harness::{TestApp, eventually};

/// The payload of test jobs (queue `door`, which has no handler in the runtime).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probe {
    n: u32,
}

fn settings(rescue_after: Duration, timeouts: &str) -> EngineSettings {
    EngineSettings {
        rescue_after,
        retention: Duration::from_secs(3600),
        poll: Duration::from_millis(200),
        prefetch: 1,
        backoff: Backoff { base: Duration::from_millis(50), max: Duration::from_millis(100) },
        timeouts: timeouts.parse().unwrap(),
        key_window: Duration::from_secs(86_400),
    }
}

async fn enqueue(app: &TestApp, probes: &[u32]) {
    let mut tx = app.pool.begin().await.unwrap();
    for &n in probes {
        jobs::enqueue(&mut tx, Queue::Door, &Probe { n }).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// A job row as the engine leaves it.
type Row = (String, i32, Option<String>, Option<chrono::DateTime<chrono::Utc>>, Option<String>);

async fn job(app: &TestApp, n: u32) -> Row {
    sqlx::query_as(
        "SELECT state, attempts, locked_by, finished_at, last_error FROM jobs WHERE (payload->>'n')::int = $1",
    )
    .bind(n as i32)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Serves `queue` on `engine` with `handler` in the background.
fn serve(engine: &Engine, concurrency: usize, handler: Handler<Probe>) -> CancellationToken {
    let stop = CancellationToken::new();
    let (engine, token) = (engine.clone(), stop.clone());
    tokio::spawn(async move { engine.serve(Queue::Door, concurrency, handler, token).await });
    stop
}

/// Everything a handler saw, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| *e == event).count()
    }
}

/// A handler that logs each run and succeeds.
fn logging(log: &Log) -> Handler<Probe> {
    let log = log.clone();
    Arc::new(move |probe: Probe| {
        log.push(format!("run {}", probe.n));
        async { Ok(()) }.boxed()
    })
}

#[tokio::test]
async fn a_rescued_process_that_comes_back_neither_runs_nor_acknowledges_what_it_held() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    enqueue(&app, &[1, 2]).await;

    // Process A: its heartbeat is as good as stopped (a rescue time of 10
    // minutes beats every 150 s), as in a network cut. Its handler blocks until
    // the test lets it go; with one slot and a prefetch of one it holds job 1
    // running and job 2 in its buffer.
    let a = Engine::start(app.pool.clone(), settings(Duration::from_secs(600), "door=120")).await.unwrap();
    let a_first_id = a.worker_id();
    let (a_log, gate) = (Log::default(), Arc::new(Semaphore::new(0)));
    let handler: Handler<Probe> = {
        let (log, gate) = (a_log.clone(), gate.clone());
        Arc::new(move |probe: Probe| {
            let (log, gate) = (log.clone(), gate.clone());
            async move {
                log.push(format!("start {}", probe.n));
                let _permit = gate.acquire().await?;
                log.push(format!("end {}", probe.n));
                Ok(())
            }
            .boxed()
        })
    };
    let stop_a = serve(&a, 1, handler);
    let holds_both = eventually(Duration::from_secs(10), || async {
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE locked_by = $1 AND state = 'running'")
            .bind(&*a_first_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        held == 2 && a_log.count("start 1") == 1
    })
    .await;
    assert!(holds_both, "A runs job 1 and holds job 2: {:?}", a_log.events());

    // Process B, healthy: after 2 s without a heartbeat from A it rescues
    // both jobs. It finishes job 2 and holds job 1 running until told.
    let b = Engine::start(app.pool.clone(), settings(Duration::from_secs(2), "door=120")).await.unwrap();
    let (b_log, b_gate) = (Log::default(), Arc::new(Semaphore::new(0)));
    let handler: Handler<Probe> = {
        let (log, gate) = (b_log.clone(), b_gate.clone());
        Arc::new(move |probe: Probe| {
            let (log, gate) = (log.clone(), gate.clone());
            async move {
                log.push(format!("run {}", probe.n));
                if probe.n == 1 {
                    let _permit = gate.acquire().await?;
                }
                Ok(())
            }
            .boxed()
        })
    };
    let stop_b = serve(&b, 1, handler);
    let b_id = b.worker_id();
    let rescued = eventually(Duration::from_secs(15), || async {
        job(&app, 2).await.0 == "completed" && job(&app, 1).await.2.as_deref() == Some(&*b_id)
    })
    .await;
    assert!(rescued, "B took both jobs: {:?}", b_log.events());
    let before = (job(&app, 1).await, job(&app, 2).await);
    assert_eq!((before.0.0.as_str(), before.0.1), ("running", 2), "job 1's cut run in A counts");
    assert_eq!((before.1.0.as_str(), before.1.1), ("completed", 1), "job 2 never ran in A");

    // A comes back: its run of job 1 finishes and is acknowledged, and job 2
    // comes out of its buffer.
    gate.add_permits(10);
    let renewed = eventually(Duration::from_secs(10), || async { a.worker_id() != a_first_id }).await;
    assert!(renewed, "A noticed it was rescued and registered a new identity");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(a_log.count("start 2"), 0, "A never started the job it had prefetched: {:?}", a_log.events());
    assert_eq!((job(&app, 1).await, job(&app, 2).await), before, "A's late acknowledgement changed nothing");

    // B's run of job 1 is the one that counts.
    b_gate.add_permits(1);
    let done = eventually(Duration::from_secs(10), || async { job(&app, 1).await.0 == "completed" }).await;
    assert!(done);
    assert_eq!(job(&app, 1).await.1, 2);
    assert_eq!((b_log.count("run 1"), b_log.count("run 2")), (1, 1), "each job ran once to completion");
    let registered: Vec<String> =
        sqlx::query_scalar("SELECT id FROM job_workers ORDER BY id").fetch_all(&app.pool).await.unwrap();
    assert!(registered.contains(&a.worker_id().to_string()), "{registered:?}");
    assert!(!registered.contains(&a_first_id.to_string()), "the rescued identity never comes back: {registered:?}");

    stop_a.cancel();
    stop_b.cancel();
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_process_found_rescued_registers_one_new_identity_however_many_of_its_tasks_notice() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    // A heartbeat every 150 s: only the fetchers notice the rescue.
    let a = Engine::start(app.pool.clone(), settings(Duration::from_secs(600), "door=120")).await.unwrap();
    let first = a.worker_id();
    // From now on a registration takes 2 s to commit, so fetchers polling
    // meanwhile would see a new identity before it is registered if it were
    // published first (and fence it, and the next one...).
    sqlx::raw_sql(
        "CREATE FUNCTION slow_registration() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$;
         CREATE TRIGGER slow_registration BEFORE INSERT ON job_workers
         FOR EACH ROW EXECUTE FUNCTION slow_registration();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let log = Log::default();
    let stops: Vec<CancellationToken> = (0..4).map(|_| serve(&a, 1, logging(&log))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A peer's rescue deletes A's registration.
    sqlx::query("DELETE FROM job_workers WHERE id = $1").bind(&*first).execute(&app.pool).await.unwrap();
    let registered = || async {
        sqlx::query_scalar::<_, String>("SELECT id FROM job_workers ORDER BY id").fetch_all(&app.pool).await.unwrap()
    };
    let renewed = eventually(Duration::from_secs(15), || async {
        a.worker_id() != first && registered().await == [a.worker_id().to_string()]
    })
    .await;
    assert!(renewed, "A registered a new identity: {:?}", registered().await);
    let second = a.worker_id();
    // Any second fence, caused by a claim that read the new identity before it
    // was registered, would have happened by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a.worker_id(), second, "the new identity was not fenced in turn");
    assert_eq!(registered().await, [second.to_string()], "one registration, the current one");

    enqueue(&app, &[5]).await;
    let done = eventually(Duration::from_secs(10), || async { job(&app, 5).await.0 == "completed" }).await;
    assert!(done, "A works under its new identity");
    assert_eq!(log.count("run 5"), 1);
    stops.iter().for_each(CancellationToken::cancel);
    a.stop().await.unwrap();
}

/// Pushes `event` to the log when dropped while still armed: a handler
/// future cancelled mid-run.
struct LogOnDrop(Option<(Log, String)>);

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        if let Some((log, event)) = self.0.take() {
            log.push(event);
        }
    }
}

/// A handler that logs `{who} start n`, waits for a permit of `gate`, then
/// logs `{who} done n`; cancelled while waiting, it logs `{who} dropped n`.
fn gated(log: &Log, who: &'static str, gate: &Arc<Semaphore>) -> Handler<Probe> {
    let (log, gate) = (log.clone(), gate.clone());
    Arc::new(move |probe: Probe| {
        let (log, gate) = (log.clone(), gate.clone());
        async move {
            log.push(format!("{who} start {}", probe.n));
            let mut cancelled = LogOnDrop(Some((log.clone(), format!("{who} dropped {}", probe.n))));
            let _permit = gate.acquire().await?;
            cancelled.0 = None;
            log.push(format!("{who} done {}", probe.n));
            Ok(())
        }
        .boxed()
    })
}

#[tokio::test]
async fn a_process_whose_database_connections_go_silent_cancels_its_run_before_a_peer_rescues_the_job() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let through = db::connect(&format!("postgres://postgres@{}/{}", proxy.addr, app.database), 2).await.unwrap();
    enqueue(&app, &[1]).await;
    let rescue_after = Duration::from_secs(4);
    // Process A reaches the database through the proxy; its handler blocks until let go.
    let a = Engine::start(through, settings(rescue_after, "door=120")).await.unwrap();
    let (log, a_gate) = (Log::default(), Arc::new(Semaphore::new(0)));
    let stop_a = serve(&a, 1, gated(&log, "a", &a_gate));
    assert!(eventually(Duration::from_secs(10), || async { log.count("a start 1") == 1 }).await);

    // The network drops every packet: A's connections stay open, its queries
    // (the heartbeat's included) never answer. Process B, on the database
    // directly, rescues the job once A has been silent for the rescue time.
    proxy.stall();
    let b = Engine::start(app.pool.clone(), settings(rescue_after, "door=120")).await.unwrap();
    let stop_b = serve(&b, 1, gated(&log, "b", &Arc::new(Semaphore::new(10))));
    let done = eventually(Duration::from_secs(30), || async { job(&app, 1).await.0 == "completed" }).await;
    assert!(done, "B rescued and ran the job: {:?}", log.events());
    let events = log.events();
    let position = |event: &str| events.iter().position(|e| e == event);
    assert!(
        position("a dropped 1").is_some_and(|dropped| position("b start 1").is_some_and(|b| dropped < b)),
        "A cancelled its run before B started the job: {events:?}"
    );

    // Whatever A's handler was waiting for comes now: its run is gone.
    a_gate.add_permits(10);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let completions = log.events().iter().filter(|e| e.ends_with("done 1")).count();
    assert_eq!(completions, 1, "the job's effect happened once: {:?}", log.events());
    assert_eq!(job(&app, 1).await.1, 2, "A's run counts as an attempt");

    stop_a.cancel();
    stop_b.cancel();
    proxy.restore();
    b.stop().await.unwrap();
    // A's connections were closed under it; what it hands back is nothing.
    let _ = tokio::time::timeout(Duration::from_secs(10), a.stop()).await;
}

#[tokio::test]
async fn a_prefetched_job_taken_back_before_it_starts_is_not_run_by_the_process_that_prefetched_it() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    enqueue(&app, &[1, 2]).await;
    // A stays registered and healthy throughout; only job 2, waiting in its
    // buffer, is taken back (as a rescue would) and run by B.
    let a = Engine::start(app.pool.clone(), settings(Duration::from_secs(600), "door=120")).await.unwrap();
    let a_id = a.worker_id();
    let (a_log, gate) = (Log::default(), Arc::new(Semaphore::new(0)));
    let handler: Handler<Probe> = {
        let (log, gate) = (a_log.clone(), gate.clone());
        Arc::new(move |probe: Probe| {
            let (log, gate) = (log.clone(), gate.clone());
            async move {
                log.push(format!("start {}", probe.n));
                let _permit = gate.acquire().await?;
                Ok(())
            }
            .boxed()
        })
    };
    let stop_a = serve(&a, 1, handler);
    let holds_both = eventually(Duration::from_secs(10), || async {
        job(&app, 2).await.2.as_deref() == Some(&*a_id) && a_log.count("start 1") == 1
    })
    .await;
    assert!(holds_both, "A runs job 1 and holds job 2");
    sqlx::query(
        "UPDATE jobs SET state = 'ready', locked_by = NULL, attempts = attempts - 1, run_at = now()
         WHERE (payload->>'n')::int = 2",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let b = Engine::start(app.pool.clone(), settings(Duration::from_secs(600), "door=120")).await.unwrap();
    let b_log = Log::default();
    let stop_b = serve(&b, 1, logging(&b_log));
    assert!(eventually(Duration::from_secs(10), || async { job(&app, 2).await.0 == "completed" }).await);
    let finished_by_b = job(&app, 2).await;

    gate.add_permits(10);
    assert!(eventually(Duration::from_secs(10), || async { job(&app, 1).await.0 == "completed" }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a_log.events(), ["start 1"], "A's start check found job 2 gone and skipped it");
    assert_eq!(job(&app, 2).await, finished_by_b);
    assert_eq!(a.worker_id(), a_id, "A was never presumed dead");
    stop_a.cancel();
    stop_b.cancel();
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_hanging_handler_is_cancelled_at_its_timeout_and_retried() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    let engine = Engine::start(app.pool.clone(), settings(Duration::from_secs(5), "door=1")).await.unwrap();
    let log = Log::default();
    let handler: Handler<Probe> = {
        let log = log.clone();
        Arc::new(move |probe: Probe| {
            let log = log.clone();
            async move {
                log.push(format!("run {}", probe.n));
                if log.count(&format!("run {}", probe.n)) == 1 {
                    // Hangs: only the timeout ends this run.
                    std::future::pending::<()>().await;
                }
                Ok(())
            }
            .boxed()
        })
    };
    let stop = serve(&engine, 1, handler);
    enqueue(&app, &[1]).await;
    let done = eventually(Duration::from_secs(20), || async { job(&app, 1).await.0 == "completed" }).await;
    stop.cancel();
    engine.stop().await.unwrap();
    assert!(done, "the hung job was retried and finished: {:?}", log.events());
    let (_, attempts, _, _, last_error) = job(&app, 1).await;
    assert_eq!(attempts, 2, "the hung run counts as an attempt");
    assert!(last_error.as_deref().is_some_and(|e| e.contains("timeout")), "{last_error:?}");
    assert_eq!(log.count("run 1"), 2);
}

#[tokio::test]
async fn a_job_whose_outcome_was_never_recorded_is_put_back_when_its_lease_runs_out() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    let engine = Engine::start(app.pool.clone(), settings(Duration::from_secs(2), "door=30")).await.unwrap();
    // A run of this live process whose result never reached the database:
    // still `running` under it, its lease over.
    sqlx::query(
        "INSERT INTO jobs (queue, state, payload, max_attempts, attempts, locked_by, lease_until)
         VALUES ('door', 'running', '{\"n\": 7}', 20, 1, $1, now() - interval '1 second')",
    )
    .bind(&*engine.worker_id())
    .execute(&app.pool)
    .await
    .unwrap();
    let log = Log::default();
    let stop = serve(&engine, 1, logging(&log));
    let done = eventually(Duration::from_secs(15), || async { job(&app, 7).await.0 == "completed" }).await;
    stop.cancel();
    engine.stop().await.unwrap();
    assert!(done, "the job stuck under a live process ran again");
    let (_, attempts, _, _, last_error) = job(&app, 7).await;
    assert_eq!(attempts, 2);
    assert!(last_error.as_deref().is_some_and(|e| e.contains("lease")), "{last_error:?}");
    assert_eq!(log.count("run 7"), 1);
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_put_back_unstarted_and_runs_once() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    let engine = Engine::start(app.pool.clone(), settings(Duration::from_secs(2), "door=30")).await.unwrap();
    // A claim of this live process that committed while its answer was lost
    // (the connection broke on the way back): `running` under it, never started
    // (no lease), claimed longer ago than the rescue time. Until it is put back
    // nothing would run it: its holder is alive and does not know it holds it.
    sqlx::query(
        "INSERT INTO jobs (queue, state, payload, max_attempts, attempts, locked_by, claimed_at)
         VALUES ('door', 'running', '{\"n\": 8}', 20, 1, $1, now() - interval '3 seconds')",
    )
    .bind(&*engine.worker_id())
    .execute(&app.pool)
    .await
    .unwrap();
    // One claimed within the rescue time is left alone: it may be on its way to a run.
    sqlx::query(
        "INSERT INTO jobs (queue, state, payload, max_attempts, attempts, locked_by, claimed_at)
         VALUES ('door', 'running', '{\"n\": 9}', 20, 1, 'another-live-process', now() + interval '1 hour')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO job_workers (id, last_seen) VALUES ('another-live-process', now() + interval '1 hour')")
        .execute(&app.pool)
        .await
        .unwrap();
    let log = Log::default();
    let stop = serve(&engine, 1, logging(&log));
    let done = eventually(Duration::from_secs(15), || async { job(&app, 8).await.0 == "completed" }).await;
    stop.cancel();
    engine.stop().await.unwrap();
    assert!(done, "the job claimed with a lost answer ran");
    let (_, attempts, _, _, _) = job(&app, 8).await;
    assert_eq!(attempts, 1, "the lost claim was not a run: its attempt was given back");
    assert_eq!(log.count("run 8"), 1);
    assert_eq!(job(&app, 9).await.0, "running", "a fresh claim of a live process is not taken");
}

#[tokio::test]
async fn a_panicking_handler_fails_its_job_with_backoff_and_the_queue_keeps_running() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    let engine = Engine::start(app.pool.clone(), settings(Duration::from_secs(5), "door=30")).await.unwrap();
    let log = Log::default();
    let handler: Handler<Probe> = {
        let log = log.clone();
        Arc::new(move |probe: Probe| {
            let log = log.clone();
            async move {
                log.push(format!("run {}", probe.n));
                // Job 0 panics on its first run; job 9 on every run (a poison job).
                if probe.n == 9 || (probe.n == 0 && log.count("run 0") == 1) {
                    panic!("handler bug on probe {}", probe.n);
                }
                Ok(())
            }
            .boxed()
        })
    };
    let stop = serve(&engine, 1, handler);
    enqueue(&app, &[0, 1]).await;
    let both = eventually(Duration::from_secs(10), || async {
        job(&app, 0).await.0 == "completed" && job(&app, 1).await.0 == "completed"
    })
    .await;
    assert!(both, "the queue kept running after the panic: {:?}", log.events());
    let (_, attempts, _, _, last_error) = job(&app, 0).await;
    assert_eq!(attempts, 2, "the panicking run counts as an attempt");
    assert!(last_error.as_deref().is_some_and(|e| e.contains("panicked")), "{last_error:?}");

    // A job that always panics runs its queue's attempts, then is dead; the
    // queue still takes new work afterwards.
    enqueue(&app, &[9]).await;
    let dead = eventually(Duration::from_secs(30), || async { job(&app, 9).await.0 == "dead" }).await;
    assert!(dead, "the poison job was given up: {:?}", job(&app, 9).await);
    assert_eq!(job(&app, 9).await.1, Queue::Door.max_attempts() as i32);
    assert_eq!(log.count("run 9"), Queue::Door.max_attempts() as usize, "one run per attempt, then no more");
    enqueue(&app, &[2]).await;
    let later = eventually(Duration::from_secs(10), || async { job(&app, 2).await.0 == "completed" }).await;
    stop.cancel();
    engine.stop().await.unwrap();
    assert!(later, "a job enqueued after all those panics still ran");
}

#[tokio::test]
async fn an_idempotency_key_outlives_its_deleted_job_for_the_key_window() {
    let app = TestApp::spawn_with(&["--scheduler=false", "--job-retention-secs=0"]).await;
    let workers = app.start_workers(None);
    let keyed = || EnqueueOptions { idempotency_key: Some("sweep:1700000000".into()), ..Default::default() };
    let mut tx = app.pool.begin().await.unwrap();
    let first = jobs::enqueue_with(&mut tx, Queue::Sweep, &Sweep { at: 1_700_000_000 }, keyed()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(first, Enqueued::New);
    let gone = eventually(Duration::from_secs(10), || async {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&app.pool).await.unwrap();
        rows == 0
    })
    .await;
    workers.stop().await;
    assert!(gone, "the finished job was deleted (retention 0)");

    let mut tx = app.pool.begin().await.unwrap();
    let again = jobs::enqueue_with(&mut tx, Queue::Sweep, &Sweep { at: 1_700_000_000 }, keyed()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again, Enqueued::Duplicate, "the key survives its job's row");

    // Past the window the maintenance purges the key and the same work may be enqueued again.
    sqlx::query("UPDATE job_keys SET created_at = now() - interval '2 days'").execute(&app.pool).await.unwrap();
    assert_eq!(claims::purge_keys(&app.pool, app.config.job_key_window, 100).await.unwrap(), 1);
    let mut tx = app.pool.begin().await.unwrap();
    let later = jobs::enqueue_with(&mut tx, Queue::Sweep, &Sweep { at: 1_700_000_000 }, keyed()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(later, Enqueued::New);
}

#[tokio::test]
async fn two_schedulers_ticking_the_same_second_make_one_job_per_tick_with_retention_zero() {
    let app =
        TestApp::spawn_with(&["--job-retention-secs=0", "--sweep-cron=* * * * * *", "--worker-queues=sweep=2"]).await;
    // Every job the table ever received, whatever happens to its row later.
    sqlx::raw_sql(
        "CREATE TABLE seen_jobs (key text);
         CREATE FUNCTION seen_job() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO seen_jobs VALUES (NEW.idempotency_key); RETURN NULL; END $$;
         CREATE TRIGGER seen_job AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION seen_job();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (first, second) = (app.start_workers(None), app.start_workers(None));
    let ticks = eventually(Duration::from_secs(15), || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(DISTINCT key) FROM seen_jobs").fetch_one(&app.pool).await.unwrap();
        n >= 4
    })
    .await;
    first.stop().await;
    second.stop().await;
    assert!(ticks, "the schedulers ticked");
    let per_key: BTreeMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT key, count(*) FROM seen_jobs GROUP BY key")
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert!(per_key.values().all(|&n| n == 1), "one job per tick: {per_key:?}");
}

#[tokio::test]
async fn a_worker_pool_smaller_than_the_concurrency_is_refused_at_start() {
    let app = TestApp::spawn().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockers-api"))
        .arg("--with-workers")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.config.database_url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("WORKER_QUEUES", "otp=8,notify=8,sweep=1")
        .env("WORKER_DATABASE_MAX_CONNECTIONS", "4")
        .output()
        .unwrap();
    assert!(!output.status.success(), "a pool of 4 for 18 concurrent handlers must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WORKER_DATABASE_MAX_CONNECTIONS=4"), "{stderr}");
    assert!(stderr.contains("18 connections"), "{stderr}");
}

#[tokio::test]
async fn more_connections_than_the_server_accepts_are_named_in_a_warning_at_start() {
    let app = TestApp::spawn().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lockers-api"))
        .arg("--with-workers")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.config.database_url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("WORKER_QUEUES", "otp=100,notify=100,door=1,sweep=1,billing=1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Logs go to stderr.
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("database connections but the server accepts") {
                break;
            }
        }
        seen
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !lines.is_finished() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = lines.join().unwrap();
    // 16 for the intake, 204 for the handlers (their concurrency and one), 2 for the outbox.
    assert!(seen.contains("may open 222 database connections"), "{seen}");
    assert!(seen.contains("WORKER_QUEUES"), "{seen}");
}
