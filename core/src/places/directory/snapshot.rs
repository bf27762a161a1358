//! One copy of the network (states, cities, points, lockers) as search reads
//! it: points in name order with their words indexed, lockers grouped by point
//! in door order, each locker's status an atomic the listener updates in place.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::text;
use crate::db::{DbError, During};
use crate::places::lockers::{Size, Status};

/// A locker point with its place, as search shows it.
#[derive(Debug, Clone)]
pub struct PointEntry {
    pub id: Uuid,
    pub name: Arc<str>,
    pub address: Arc<str>,
    pub city_id: Uuid,
    pub city_name: Arc<str>,
    pub state_id: Uuid,
    pub state_name: Arc<str>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Its lockers in [`Snapshot::lockers`], by door.
    lockers: Range<usize>,
}

/// A locker as search lists it (its status is read from the snapshot).
#[derive(Debug, Clone)]
pub struct LockerEntry {
    pub id: Uuid,
    pub door_no: i32,
    pub size: Size,
    pub created_at: DateTime<Utc>,
    /// Index of its point in [`Snapshot::points`].
    point: usize,
}

/// Inner dimensions of a size, in millimetres (width, height, depth).
pub type Dimensions = (i32, i32, i32);

/// A word of the places' vocabulary and the points it appears in.
struct VocabularyWord {
    text: String,
    /// (point index, whether the word is in the point's own name).
    points: Vec<(u32, bool)>,
}

/// What a typed word matched: (point index, score), by point index.
type Hits = Arc<[(u32, u32)]>;

/// Typed words whose matches are kept, and matches kept in all: results for
/// words people actually type are reused; a flood of made-up words empties
/// the cache instead of growing it.
const CACHE_WORDS: usize = 4096;
const CACHE_HITS: usize = 1_000_000;

/// A match in the point's own name ranks above the same match in its address or place.
const NAME_BONUS: u32 = 5;

pub struct Snapshot {
    points: Vec<PointEntry>,
    point_index: HashMap<Uuid, usize>,
    lockers: Vec<LockerEntry>,
    locker_index: HashMap<Uuid, usize>,
    statuses: Vec<AtomicU8>,
    vocabulary: Vec<VocabularyWord>,
    dimensions: [Dimensions; 4],
    cache: Mutex<(HashMap<String, Hits>, usize)>,
}

/// A search's words, folded; at most [`Terms::MAX_WORDS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    words: Vec<String>,
}

impl Terms {
    /// Words beyond this are ignored: each costs a pass over the vocabulary.
    pub const MAX_WORDS: usize = 8;
    /// Longer words are cut: nothing in a place is longer than a few dozen letters.
    pub const MAX_WORD_CHARS: usize = 64;

    /// `None` for blank text (no filter). Text without a letter or digit
    /// (`%`, `_`) has no words and matches nothing: it is not a wildcard.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.chars().all(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let mut words: Vec<String> = text::words(raw)
            .into_iter()
            .map(|w| {
                if w.chars().count() > Self::MAX_WORD_CHARS {
                    w.chars().take(Self::MAX_WORD_CHARS).collect()
                } else {
                    w
                }
            })
            .collect();
        words.dedup();
        words.truncate(Self::MAX_WORDS);
        Some(Self { words })
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }
}

/// What a point or locker search narrows by.
#[derive(Debug, Clone, Default)]
pub struct Narrowing {
    pub terms: Option<Terms>,
    pub city_id: Option<Uuid>,
    pub point_id: Option<Uuid>,
}

/// A point found, with its lockers available now per size (S, M, L, XL).
pub struct PointHit<'a> {
    pub point: &'a PointEntry,
    pub available: [u32; 4],
}

/// A locker found, with its point and status now.
pub struct LockerHit<'a> {
    pub locker: &'a LockerEntry,
    pub point: &'a PointEntry,
    pub status: Status,
    pub dimensions: Dimensions,
}

pub(super) fn size_index(size: Size) -> usize {
    match size {
        Size::S => 0,
        Size::M => 1,
        Size::L => 2,
        Size::Xl => 3,
    }
}

fn status_code(status: Status) -> u8 {
    match status {
        Status::Available => 0,
        Status::Reserved => 1,
        Status::Occupied => 2,
        Status::Maintenance => 3,
    }
}

fn status_of(code: u8) -> Status {
    match code {
        0 => Status::Available,
        1 => Status::Reserved,
        2 => Status::Occupied,
        _ => Status::Maintenance,
    }
}

impl Snapshot {
    /// Reads the whole network in one consistent view.
    pub(super) async fn load(conn: &mut PgConnection) -> Result<Self, DbError> {
        use sqlx::Connection;
        let mut tx = conn.begin().await.during("begin a directory load")?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .during("start a directory load")?;
        let point_rows = sqlx::query(
            "SELECT p.id, p.name, p.address, p.city_id, c.name AS city_name, c.state_id, s.name AS state_name,
                    p.last_heartbeat_at, p.created_at
             FROM locker_points p JOIN cities c ON c.id = p.city_id JOIN states s ON s.id = c.state_id
             ORDER BY lower(p.name), p.id",
        )
        .fetch_all(&mut *tx)
        .await
        .during("load the points for search")?;
        let locker_rows = sqlx::query(
            "SELECT id, point_id, door_no, size, status, created_at FROM lockers ORDER BY point_id, door_no, id",
        )
        .fetch_all(&mut *tx)
        .await
        .during("load the lockers for search")?;
        let size_rows = sqlx::query("SELECT code, inner_width_mm, inner_height_mm, inner_depth_mm FROM locker_sizes")
            .fetch_all(&mut *tx)
            .await
            .during("load the locker sizes")?;
        tx.commit().await.during("end a directory load")?;

        let mut dimensions = [(0, 0, 0); 4];
        for row in &size_rows {
            if let Ok(size) = row.try_get::<Size, _>("code") {
                dimensions[size_index(size)] = (
                    row.try_get("inner_width_mm").during("read a size")?,
                    row.try_get("inner_height_mm").during("read a size")?,
                    row.try_get("inner_depth_mm").during("read a size")?,
                );
            }
        }
        let mut names: HashMap<String, Arc<str>> = HashMap::new();
        let mut shared = |s: String| names.entry(s.clone()).or_insert_with(|| Arc::from(s)).clone();
        let mut points = Vec::with_capacity(point_rows.len());
        for row in &point_rows {
            points.push(PointEntry {
                id: row.try_get("id").during("read a point")?,
                name: Arc::from(row.try_get::<String, _>("name").during("read a point")?),
                address: Arc::from(row.try_get::<String, _>("address").during("read a point")?),
                city_id: row.try_get("city_id").during("read a point")?,
                city_name: shared(row.try_get("city_name").during("read a point")?),
                state_id: row.try_get("state_id").during("read a point")?,
                state_name: shared(row.try_get("state_name").during("read a point")?),
                last_heartbeat_at: row.try_get("last_heartbeat_at").during("read a point")?,
                created_at: row.try_get("created_at").during("read a point")?,
                lockers: 0..0,
            });
        }
        let mut lockers = Vec::with_capacity(locker_rows.len());
        for row in &locker_rows {
            lockers.push((
                row.try_get::<Uuid, _>("point_id").during("read a locker")?,
                LockerEntry {
                    id: row.try_get("id").during("read a locker")?,
                    door_no: row.try_get("door_no").during("read a locker")?,
                    size: row.try_get("size").during("read a locker")?,
                    created_at: row.try_get("created_at").during("read a locker")?,
                    point: 0,
                },
                row.try_get::<Status, _>("status").during("read a locker")?,
            ));
        }
        Ok(Self::build(points, lockers, dimensions))
    }

    /// Indexes points (in name order) and lockers (any order) with their statuses.
    fn build(points: Vec<PointEntry>, lockers: Vec<(Uuid, LockerEntry, Status)>, dimensions: [Dimensions; 4]) -> Self {
        let mut points = points;
        let point_index: HashMap<Uuid, usize> = points.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        // Lockers grouped by their point's position, then by door.
        let mut placed: Vec<(usize, LockerEntry, Status)> = lockers
            .into_iter()
            .filter_map(|(point_id, mut locker, status)| {
                let at = *point_index.get(&point_id)?;
                locker.point = at;
                Some((at, locker, status))
            })
            .collect();
        placed.sort_by_key(|(at, locker, _)| (*at, locker.door_no, locker.id));
        let mut start = 0;
        for (at, point) in points.iter_mut().enumerate() {
            let end = start + placed[start..].iter().take_while(|(p, _, _)| *p == at).count();
            point.lockers = start..end;
            start = end;
        }
        let statuses = placed.iter().map(|(_, _, status)| AtomicU8::new(status_code(*status))).collect();
        let lockers: Vec<LockerEntry> = placed.into_iter().map(|(_, locker, _)| locker).collect();
        let locker_index = lockers.iter().enumerate().map(|(i, l)| (l.id, i)).collect();

        let mut words: HashMap<String, Vec<(u32, bool)>> = HashMap::new();
        for (at, point) in points.iter().enumerate() {
            let at = at as u32;
            let name_words = text::words(&point.name);
            let place = format!("{} {} {}", point.address, point.city_name, point.state_name);
            let mut seen: HashMap<&str, bool> = HashMap::new();
            let place_words = text::words(&place);
            for w in &name_words {
                seen.insert(w, true);
            }
            for w in &place_words {
                seen.entry(w).or_insert(false);
            }
            for (w, in_name) in seen {
                words.entry(w.to_owned()).or_default().push((at, in_name));
            }
        }
        let vocabulary = words.into_iter().map(|(text, points)| VocabularyWord { text, points }).collect();
        Self {
            points,
            point_index,
            lockers,
            locker_index,
            statuses,
            vocabulary,
            dimensions,
            cache: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// Applies a committed status change; false when the locker is not in this copy.
    pub(super) fn set_status(&self, locker_id: Uuid, status: Status) -> bool {
        match self.locker_index.get(&locker_id) {
            Some(&at) => {
                self.statuses[at].store(status_code(status), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub fn point_count(&self) -> usize {
        self.points.len()
    }

    pub fn locker_count(&self) -> usize {
        self.lockers.len()
    }

    fn status(&self, locker: usize) -> Status {
        status_of(self.statuses[locker].load(Ordering::Relaxed))
    }

    /// Lockers available now at the point, per size (S, M, L, XL).
    fn available(&self, point: &PointEntry) -> [u32; 4] {
        let mut counts = [0; 4];
        for at in point.lockers.clone() {
            if self.status(at) == Status::Available {
                counts[size_index(self.lockers[at].size)] += 1;
            }
        }
        counts
    }

    /// The points a typed word matches, each with its best score; cached per word.
    fn hits(&self, typed: &str) -> Hits {
        if let Ok(cache) = self.cache.lock()
            && let Some(hits) = cache.0.get(typed)
        {
            return hits.clone();
        }
        let mut best = vec![0u32; self.points.len()];
        for word in &self.vocabulary {
            if let Some(found) = text::match_word(typed, &word.text) {
                for &(point, in_name) in &word.points {
                    let score = found.score() + if in_name { NAME_BONUS } else { 0 };
                    let slot = &mut best[point as usize];
                    *slot = (*slot).max(score);
                }
            }
        }
        let hits: Hits = best.iter().enumerate().filter(|(_, s)| **s > 0).map(|(p, s)| (p as u32, *s)).collect();
        if let Ok(mut cache) = self.cache.lock() {
            if cache.0.len() >= CACHE_WORDS || cache.1 + hits.len() > CACHE_HITS {
                cache.0.clear();
                cache.1 = 0;
            }
            cache.1 += hits.len();
            cache.0.insert(typed.to_owned(), hits.clone());
        }
        hits
    }

    /// Indexes of the points matching `narrowing`, best match first, then by name.
    fn ranked(&self, narrowing: &Narrowing) -> Vec<usize> {
        let within = |p: &PointEntry| {
            narrowing.city_id.is_none_or(|c| p.city_id == c) && narrowing.point_id.is_none_or(|id| p.id == id)
        };
        let Some(terms) = &narrowing.terms else {
            if let Some(id) = narrowing.point_id {
                return self.point_index.get(&id).copied().filter(|&at| within(&self.points[at])).into_iter().collect();
            }
            return (0..self.points.len()).filter(|&at| within(&self.points[at])).collect();
        };
        if terms.words.is_empty() {
            return Vec::new();
        }
        let lists: Vec<Hits> = terms.words.iter().map(|w| self.hits(w)).collect();
        let mut score = vec![0u32; self.points.len()];
        let mut matched = vec![0u8; self.points.len()];
        for list in &lists {
            for &(point, s) in list.iter() {
                score[point as usize] += s;
                matched[point as usize] += 1;
            }
        }
        let needed = lists.len() as u8;
        let mut found: Vec<(u32, usize)> = (0..self.points.len())
            .filter(|&at| matched[at] == needed && within(&self.points[at]))
            .map(|at| (score[at], at))
            .collect();
        // Points are stored in name order, so the index breaks ties by name.
        found.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        found.into_iter().map(|(_, at)| at).collect()
    }

    /// One page of the points matching `narrowing` (with, when `size` is given,
    /// a locker of that size available now), and how many match in all.
    pub fn points(
        &self,
        narrowing: &Narrowing,
        size: Option<Size>,
        offset: usize,
        limit: usize,
    ) -> (Vec<PointHit<'_>>, usize) {
        let ranked = self.ranked(narrowing);
        let mut total = 0;
        let mut page = Vec::with_capacity(limit.min(ranked.len()));
        for at in ranked {
            let point = &self.points[at];
            let available =
                if size.is_some() || (total >= offset && page.len() < limit) { self.available(point) } else { [0; 4] };
            if size.is_some_and(|s| available[size_index(s)] == 0) {
                continue;
            }
            if total >= offset && page.len() < limit {
                page.push(PointHit { point, available });
            }
            total += 1;
        }
        (page, total)
    }

    /// One page of the lockers of the points matching `narrowing` (best point
    /// first, then by door) with the given status and size, and how many match.
    pub fn lockers(
        &self,
        narrowing: &Narrowing,
        status: Option<Status>,
        size: Option<Size>,
        offset: usize,
        limit: usize,
    ) -> (Vec<LockerHit<'_>>, usize) {
        let mut total = 0;
        let mut page = Vec::with_capacity(limit);
        for at in self.ranked(narrowing) {
            let point = &self.points[at];
            if status.is_none() && size.is_none() && (total + point.lockers.len() <= offset || page.len() == limit) {
                total += point.lockers.len();
                continue;
            }
            for locker_at in point.lockers.clone() {
                let locker = &self.lockers[locker_at];
                let now = self.status(locker_at);
                if status.is_some_and(|s| s != now) || size.is_some_and(|s| s != locker.size) {
                    continue;
                }
                if total >= offset && page.len() < limit {
                    let dimensions = self.dimensions[size_index(locker.size)];
                    page.push(LockerHit { locker, point, status: now, dimensions });
                }
                total += 1;
            }
        }
        (page, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, address: &str, city: &str, state: &str) -> PointEntry {
        PointEntry {
            id: Uuid::now_v7(),
            name: name.into(),
            address: address.into(),
            city_id: Uuid::now_v7(),
            city_name: city.into(),
            state_id: Uuid::now_v7(),
            state_name: state.into(),
            last_heartbeat_at: None,
            created_at: Utc::now(),
            lockers: 0..0,
        }
    }

    fn locker(point: &PointEntry, door_no: i32, size: Size, status: Status) -> (Uuid, LockerEntry, Status) {
        (point.id, LockerEntry { id: Uuid::now_v7(), door_no, size, created_at: Utc::now(), point: 0 }, status)
    }

    /// Points in name order, as the database gives them.
    fn network() -> Snapshot {
        let mut points = vec![
            point("Koramangala Hub", "80 Feet Road", "Bengaluru", "Karnataka"),
            point("Koramangla Stores", "1st Cross", "Bengaluru", "Karnataka"),
            point("Indiranagar Metro", "100 Feet Road, near Koramangala bus stop", "Bengaluru", "Karnataka"),
            point("Café Mercado", "Rua de Ourém", "Panaji", "Goa"),
        ];
        points.sort_by_key(|p| p.name.to_lowercase());
        let hub = points.iter().find(|p| &*p.name == "Koramangala Hub").unwrap();
        let lockers = vec![
            locker(hub, 2, Size::M, Status::Available),
            locker(hub, 1, Size::S, Status::Available),
            locker(hub, 3, Size::S, Status::Reserved),
        ];
        Snapshot::build(points, lockers, [(1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 4)])
    }

    fn names(snapshot: &Snapshot, q: &str) -> Vec<String> {
        let narrowing = Narrowing { terms: Terms::parse(q), ..Narrowing::default() };
        snapshot.points(&narrowing, None, 0, 100).0.iter().map(|h| h.point.name.to_string()).collect()
    }

    #[test]
    fn exact_words_rank_first_then_parts_then_misspellings_and_names_before_addresses() {
        let s = network();
        assert_eq!(names(&s, "koramangala"), ["Koramangala Hub", "Indiranagar Metro", "Koramangla Stores"]);
        assert_eq!(names(&s, "koramangla"), ["Koramangla Stores", "Koramangala Hub", "Indiranagar Metro"]);
        // One edit from the hub's name; two from the stores' name, one from the metro's
        // address: equal ranks, then by name.
        assert_eq!(names(&s, "kormangala"), ["Koramangala Hub", "Indiranagar Metro", "Koramangla Stores"]);
        assert_eq!(names(&s, "cafe ourem"), ["Café Mercado"]);
        assert_eq!(names(&s, "CAFÉ goa"), ["Café Mercado"]);
        assert!(names(&s, "cafe bengaluru").is_empty(), "every word must match");
        assert!(Terms::parse(" \0 ").is_none(), "blank text is no filter");
        assert!(names(&s, "%").is_empty(), "text without a letter or digit matches nothing");
    }

    #[test]
    fn lockers_follow_their_point_by_door_and_statuses_change_in_place() {
        let s = network();
        let all = Narrowing::default();
        let (page, total) = s.lockers(&all, None, None, 0, 10);
        assert_eq!(total, 3);
        assert_eq!(page.iter().map(|h| h.locker.door_no).collect::<Vec<_>>(), [1, 2, 3]);
        let hub = s.points(&Narrowing { terms: Terms::parse("hub"), ..all.clone() }, None, 0, 1).0[0].available;
        assert_eq!(hub, [1, 1, 0, 0]);
        assert!(s.set_status(page[0].locker.id, Status::Occupied));
        assert!(!s.set_status(Uuid::now_v7(), Status::Occupied));
        let (_, available) = s.lockers(&all, Some(Status::Available), None, 0, 10);
        assert_eq!(available, 1);
        let (with_s, total) = s.points(&all, Some(Size::S), 0, 10);
        assert_eq!((with_s.len(), total), (0, 0), "no S locker is available any more");
        let (page, total) = s.lockers(&all, None, None, 2, 10);
        assert_eq!((page.len(), total), (1, 3));
    }

    #[test]
    fn terms_are_bounded() {
        let many = (0..20).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(Terms::parse(&many).unwrap().words().len(), Terms::MAX_WORDS);
        let long = "a".repeat(1000);
        assert_eq!(Terms::parse(&long).unwrap().words()[0].len(), Terms::MAX_WORD_CHARS);
        assert!(Terms::parse(" \0\n").is_none());
        assert!(Terms::parse(" %_ ").unwrap().words().is_empty());
    }
}
