//! The search directory: an in-process copy of the network (states, cities,
//! points, lockers and their statuses) that public search reads without
//! touching the database, kept in step with commits by any process.
//!
//! Freshness: triggers (migration 0023) notify `lockers_status` with each
//! locker whose status changed, which the listener applies in place (the last
//! notification for a locker is its committed status: they arrive in commit
//! order), and `lockers_places` when the network's shape changed, which
//! reloads the copy. A reload also runs every `SEARCH_REFRESH_SECS` (points'
//! heartbeats, and a safety net) and whenever the listener connects again
//! (notifications sent while it was away are lost). Writes made through this
//! process reload before they answer, so an admin sees their change at once.
//! A reservation never trusts this copy: it is decided in SQL.

mod snapshot;
pub mod text;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

pub use snapshot::{Dimensions, LockerEntry, LockerHit, Narrowing, PointEntry, PointHit, Snapshot, Terms};

use crate::db::{DbError, During};
use crate::places::lockers::Status;

const STATUS_CHANNEL: &str = "lockers_status";
const PLACES_CHANNEL: &str = "lockers_places";

pub struct Directory {
    pool: PgPool,
    current: ArcSwapOption<Snapshot>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Status changes heard while a reload runs, applied again to its result
    /// (the load may have read the row before the change committed).
    heard_during_reload: Mutex<Option<Vec<(Uuid, Status)>>>,
}

impl Directory {
    /// A directory over `pool`, empty until the first read or reload.
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            current: ArcSwapOption::empty(),
            reloading: tokio::sync::Mutex::new(()),
            heard_during_reload: Mutex::new(None),
        })
    }

    /// A directory that follows the database: a task listens for changes and
    /// reloads every `refresh`; it ends when the directory is dropped.
    pub fn start(pool: PgPool, refresh: Duration) -> Arc<Self> {
        let directory = Self::new(pool);
        tokio::spawn(listen(Arc::downgrade(&directory), refresh));
        directory
    }

    /// The current copy, loaded first if there is none yet.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, DbError> {
        if let Some(current) = self.current.load_full() {
            return Ok(current);
        }
        self.reload().await?;
        self.current.load_full().ok_or(DbError { operation: "load the directory", source: sqlx::Error::PoolClosed })
    }

    /// Reads the whole network again and swaps it in.
    pub async fn reload(&self) -> Result<(), DbError> {
        let _one = self.reloading.lock().await;
        self.hear_during_reload(true);
        let loaded =
            async { Snapshot::load(&mut *self.pool.acquire().await.during("load the directory")?).await }.await;
        let mut heard = self.heard_during_reload.lock().unwrap_or_else(|e| e.into_inner());
        let changes = heard.take().unwrap_or_default();
        let snapshot = loaded?;
        for (id, status) in changes {
            snapshot.set_status(id, status);
        }
        self.current.store(Some(Arc::new(snapshot)));
        Ok(())
    }

    fn hear_during_reload(&self, on: bool) {
        let mut heard = self.heard_during_reload.lock().unwrap_or_else(|e| e.into_inner());
        *heard = on.then(Vec::new);
    }

    /// Applies a committed status change; false when the locker is unknown
    /// here (the copy predates it: reload).
    fn apply(&self, id: Uuid, status: Status) -> bool {
        let mut heard = self.heard_during_reload.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(heard) = heard.as_mut() {
            heard.push((id, status));
        }
        self.current.load().as_ref().is_none_or(|current| current.set_status(id, status))
    }
}

/// `"<uuid> <status>"`, as the trigger sends it.
fn parse_status(payload: &str) -> Option<(Uuid, Status)> {
    let (id, status) = payload.split_once(' ')?;
    let status = match status {
        "available" => Status::Available,
        "reserved" => Status::Reserved,
        "occupied" => Status::Occupied,
        "maintenance" => Status::Maintenance,
        _ => return None,
    };
    Some((id.parse().ok()?, status))
}

/// The listener: applies status changes, reloads on shape changes, on every
/// (re)connection and every `refresh`. Any listener error reconnects.
async fn listen(directory: Weak<Directory>, refresh: Duration) {
    let mut failures: u32 = 0;
    loop {
        let Some(pool) = directory.upgrade().map(|d| d.pool.clone()) else { return };
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%error, "search directory listener could not connect; retrying every second");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        failures = 0;
        drop(pool);
        let mut tick = tokio::time::interval(refresh);
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                _ = tick.tick() => {
                    // The first tick is immediate: the changes missed while not listening.
                    let Some(directory) = directory.upgrade() else { return };
                    reload_logged(&directory).await;
                    continue;
                }
            };
            let Some(directory) = directory.upgrade() else { return };
            match received {
                Ok(Some(notification)) if notification.channel() == STATUS_CHANNEL => {
                    match parse_status(notification.payload()) {
                        Some((id, status)) if directory.apply(id, status) => {}
                        _ => reload_logged(&directory).await,
                    }
                }
                Ok(Some(_)) => reload_logged(&directory).await,
                // The connection was lost and sqlx listens again: what was sent meanwhile is gone.
                Ok(None) => reload_logged(&directory).await,
                Err(error) => {
                    tracing::warn!(%error, "search directory listener failed; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn reload_logged(directory: &Directory) {
    if let Err(error) = directory.reload().await {
        tracing::warn!(%error, "search directory reload failed; serving the previous copy");
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([STATUS_CHANNEL, PLACES_CHANNEL]).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_notifications_name_a_locker_and_its_new_status() {
        let id = Uuid::now_v7();
        assert_eq!(parse_status(&format!("{id} reserved")), Some((id, Status::Reserved)));
        assert_eq!(parse_status(&format!("{id} gone")), None);
        assert_eq!(parse_status("nonsense available"), None);
        assert_eq!(parse_status(""), None);
    }
}
