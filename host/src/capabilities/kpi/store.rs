//! The embedded series store: SQLite in the data directory, with every
//! series (its id, labels, sample count and newest value) also held in
//! memory, so listings and rules find their series without a query.
//!
//! A sample is one row keyed by series and time (`WITHOUT ROWID`, so the
//! key is the table): a sample pushed twice stays one, its newest value
//! kept. The raw samples of the last hour (the *head*, [`HEAD_SPAN`]) are
//! also kept in memory, so the windows rules read at every evaluation are
//! answered without the disk; a longer window reads the table. A folded row (see [`KpiStore::compact`]) holds the mean of its
//! bucket with the count, minimum and maximum beside it; a raw row has no
//! minimum or maximum, which is how the two are told apart.

use super::{check_labels, check_name, series_key, KpiConfig, KpiError, Labels, NewSample};
use crate::capabilities::Clock;
use crate::state::Db;
use rusqlite::{params, Connection};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// A series as the store knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SeriesInfo {
    /// The series name.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// Stored samples (a folded bucket counts once).
    pub samples: u64,
    /// The oldest sample's time, ms.
    pub oldest_at: u64,
    /// The newest sample's time, ms.
    pub newest_at: u64,
    /// The newest sample's value.
    pub newest_value: f64,
    #[serde(skip)]
    #[schema(ignore)]
    id: i64,
}

/// One stored point: a raw sample, or a folded bucket.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Point {
    /// When, ms (a bucket's start for a folded point).
    pub at: u64,
    /// The value (a bucket's mean).
    pub value: f64,
    /// How many samples it stands for (1 for a raw sample).
    pub count: u64,
    /// The smallest of them.
    pub min: f64,
    /// The largest of them.
    pub max: f64,
}

/// A series and its points in a window, oldest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SeriesPoints {
    /// The series.
    #[serde(flatten)]
    pub series: SeriesInfo,
    /// Its points in the window.
    pub points: Vec<Point>,
}

/// What a push did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PushOutcome {
    /// Samples recorded.
    pub accepted: usize,
    /// Of them, samples whose series and time were already stored: their
    /// value replaced the stored one.
    pub replaced: usize,
    /// Series seen for the first time.
    pub new_series: usize,
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactOutcome {
    /// Raw samples folded into buckets.
    pub folded: u64,
    /// Rows dropped for being older than the retention.
    pub dropped: u64,
}

type Index = BTreeMap<(String, String), SeriesInfo>;

/// How far back the head holds every raw sample (shorter when samples are
/// folded sooner).
pub const HEAD_SPAN: std::time::Duration = std::time::Duration::from_secs(3600);

/// The raw samples of the last [`HEAD_SPAN`] of each series, oldest first.
#[derive(Default)]
struct Head {
    points: std::collections::HashMap<i64, std::collections::VecDeque<(u64, f64)>>,
}

impl Head {
    /// Adds (or replaces) a sample at `at`, unless it is older than `from`;
    /// drops the series' samples older than `from`.
    fn add(&mut self, id: i64, at: u64, value: f64, from: u64) {
        if at < from {
            return;
        }
        let q = self.points.entry(id).or_default();
        match q.binary_search_by_key(&at, |(t, _)| *t) {
            Ok(i) => q[i].1 = value,
            Err(i) => q.insert(i, (at, value)),
        }
        while q.front().is_some_and(|(t, _)| *t < from) {
            q.pop_front();
        }
    }

    /// Drops every sample older than `from`.
    fn trim(&mut self, from: u64) {
        self.points.retain(|_, q| {
            while q.front().is_some_and(|(t, _)| *t < from) {
                q.pop_front();
            }
            !q.is_empty()
        });
    }

    /// The samples of `id` in `(from, to]`.
    fn window(&self, id: i64, from: u64, to: u64) -> Vec<Point> {
        let Some(q) = self.points.get(&id) else {
            return Vec::new();
        };
        let start = q.partition_point(|(t, _)| *t <= from);
        q.range(start..)
            .take_while(|(t, _)| *t <= to)
            .map(|&(at, value)| Point {
                at,
                value,
                count: 1,
                min: value,
                max: value,
            })
            .collect()
    }
}

/// The series store.
#[derive(Clone)]
pub struct KpiStore {
    db: Db,
    index: Arc<RwLock<Index>>,
    config: KpiConfig,
    clock: Clock,
    /// Samples recorded since the store was opened.
    recorded: Arc<std::sync::atomic::AtomicU64>,
    head: Arc<RwLock<Head>>,
    head_span_ms: u64,
}

fn unavailable(e: rusqlite::Error) -> KpiError {
    KpiError::Unavailable(format!("KPI database: {e}"))
}

fn labels_text(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

impl KpiStore {
    /// Opens (or creates) the store at `path`. Blocking: call it at
    /// start-up.
    pub fn open(path: &Path, config: KpiConfig, clock: Clock) -> Result<Self, KpiError> {
        config.check().map_err(KpiError::Invalid)?;
        let db = Db::open(path, |conn| {
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS kpi_series (
                     id INTEGER PRIMARY KEY,
                     name TEXT NOT NULL,
                     labels TEXT NOT NULL,
                     UNIQUE (name, labels)
                 );
                 CREATE TABLE IF NOT EXISTS kpi_samples (
                     series INTEGER NOT NULL,
                     at INTEGER NOT NULL,
                     value REAL NOT NULL,
                     n INTEGER NOT NULL DEFAULT 1,
                     lo REAL,
                     hi REAL,
                     PRIMARY KEY (series, at)
                 ) WITHOUT ROWID;",
            )
        })
        .map_err(unavailable)?;
        let index = db.blocking(load_index).map_err(unavailable)?;
        let head_span_ms = HEAD_SPAN.min(config.downsample_after).as_millis() as u64;
        let from = clock.now_ms().saturating_sub(head_span_ms);
        let head = db
            .blocking(|conn| -> rusqlite::Result<Head> {
                let mut head = Head::default();
                let mut stmt = conn.prepare(
                    "SELECT series, at, value FROM kpi_samples WHERE at >= ?1 AND lo IS NULL
                     ORDER BY series, at",
                )?;
                let rows = stmt.query_map([from as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
                })?;
                for row in rows {
                    let (id, at, value) = row?;
                    head.add(id, at, value, from);
                }
                Ok(head)
            })
            .map_err(unavailable)?;
        Ok(KpiStore {
            head: Arc::new(RwLock::new(head)),
            head_span_ms,
            db,
            index: Arc::new(RwLock::new(index)),
            config,
            clock,
            recorded: Default::default(),
        })
    }

    /// Samples recorded since the store was opened.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The clock samples are timed and windows are read by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The retention and folding settings.
    pub fn config(&self) -> KpiConfig {
        self.config
    }

    /// The oldest time a sample may have at `now_ms` and still be kept.
    pub fn oldest_kept(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.config.retention.as_millis() as u64)
    }

    /// The times a push takes now, oldest and latest, in milliseconds.
    pub fn accepted_times(&self) -> (u64, u64) {
        self.accepted_at(self.clock.now_ms())
    }

    fn accepted_at(&self, now: u64) -> (u64, u64) {
        // Older samples are folded (or dropped): one taken now could not be
        // kept once, so a retried push would count twice.
        let oldest = now.saturating_sub(self.config.downsample_after.as_millis() as u64);
        (oldest, now + super::MAX_FUTURE.as_millis() as u64)
    }

    /// Records a batch: every sample is checked first, and one bad sample
    /// refuses the batch (naming its index), so nothing of a bad batch is
    /// stored.
    pub async fn push(&self, samples: Vec<NewSample>) -> Result<PushOutcome, KpiError> {
        let now = self.clock.now_ms();
        let (oldest, _) = self.accepted_at(now);
        let mut rows = Vec::with_capacity(samples.len());
        for (i, sample) in samples.into_iter().enumerate() {
            let at = sample.check(now, oldest).map_err(|e| match e {
                KpiError::Invalid(m) => KpiError::Invalid(format!("samples[{i}]: {m}")),
                other => other,
            })?;
            let text = labels_text(&sample.labels);
            rows.push((sample.name, text, sample.labels, at, sample.value));
        }
        let (index, head) = (self.index.clone(), self.head.clone());
        let head_from = now.saturating_sub(self.head_span_ms);
        let outcome = self
            .db
            .call(move |conn| push_rows(conn, &index, &head, head_from, rows))
            .await
            .map_err(unavailable)?;
        self.recorded.fetch_add(
            outcome.accepted as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(outcome)
    }

    /// Every series, sorted by name and labels.
    pub fn series(&self) -> Vec<SeriesInfo> {
        read(&self.index).values().cloned().collect()
    }

    /// How many series there are.
    pub fn series_count(&self) -> usize {
        read(&self.index).len()
    }

    /// The series named `name` whose labels include every one of `matchers`.
    pub fn matching(&self, name: &str, matchers: &Labels) -> Vec<SeriesInfo> {
        read(&self.index)
            .range((name.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == name)
            .filter(|(_, info)| matchers.iter().all(|(k, v)| info.labels.get(k) == Some(v)))
            .map(|(_, info)| info.clone())
            .collect()
    }

    /// Whether any series is named `name`.
    pub fn knows(&self, name: &str) -> bool {
        read(&self.index)
            .range((name.to_string(), String::new())..)
            .next()
            .is_some_and(|((n, _), _)| n == name)
    }

    /// The points of the series named `name` (with labels including
    /// `matchers`) in `(from_ms, to_ms]`, oldest first; `NotFound` when no
    /// series has that name, `Invalid` when the window holds more than
    /// [`super::MAX_READ_SAMPLES`] points.
    pub async fn read(
        &self,
        name: &str,
        matchers: &Labels,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<SeriesPoints>, KpiError> {
        check_name(name)?;
        check_labels(matchers)?;
        if !self.knows(name) {
            return Err(KpiError::NotFound(format!("no series is named {name:?}")));
        }
        let series = self.matching(name, matchers);
        if let Some(points) = self.read_head(&series, from_ms, to_ms) {
            return points;
        }
        self.db
            .call(move |conn| read_points(conn, series, from_ms, to_ms))
            .await
    }

    /// The window's points from the head, when the head holds all of them.
    fn read_head(
        &self,
        series: &[SeriesInfo],
        from_ms: u64,
        to_ms: u64,
    ) -> Option<Result<Vec<SeriesPoints>, KpiError>> {
        let head_from = self.clock.now_ms().saturating_sub(self.head_span_ms);
        if from_ms < head_from {
            return None;
        }
        let head = self.head.read().unwrap_or_else(|p| p.into_inner());
        let mut total = 0;
        let mut out = Vec::with_capacity(series.len());
        for info in series {
            let points = head.window(info.id, from_ms, to_ms);
            total += points.len();
            if total > super::MAX_READ_SAMPLES {
                return Some(Err(too_many(&info.name)));
            }
            out.push(SeriesPoints {
                series: info.clone(),
                points,
            });
        }
        Some(Ok(out))
    }

    /// Several reads in one call of the database (an evaluation's rules):
    /// each `(name, matchers, from_ms, to_ms)` answered as [`Self::read`]
    /// would answer it, in order.
    pub async fn read_many(
        &self,
        reads: Vec<(String, Labels, u64, u64)>,
    ) -> Vec<Result<Vec<SeriesPoints>, KpiError>> {
        // What the head answers is answered here; the rest in one call.
        let mut answers: Vec<Option<Result<Vec<SeriesPoints>, KpiError>>> = Vec::new();
        let mut planned: Vec<(usize, Vec<SeriesInfo>, u64, u64)> = Vec::new();
        for (name, matchers, from, to) in reads {
            let series = check_name(&name)
                .and_then(|_| check_labels(&matchers))
                .and_then(|_| {
                    if self.knows(&name) {
                        Ok(self.matching(&name, &matchers))
                    } else {
                        Err(KpiError::NotFound(format!("no series is named {name:?}")))
                    }
                });
            match series {
                Err(e) => answers.push(Some(Err(e))),
                Ok(series) => match self.read_head(&series, from, to) {
                    Some(answer) => answers.push(Some(answer)),
                    None => {
                        planned.push((answers.len(), series, from, to));
                        answers.push(None);
                    }
                },
            }
        }
        if !planned.is_empty() {
            let read: Vec<(usize, Result<Vec<SeriesPoints>, KpiError>)> = self
                .db
                .call(move |conn| {
                    planned
                        .into_iter()
                        .map(|(i, s, from, to)| (i, read_points(conn, s, from, to)))
                        .collect()
                })
                .await;
            for (i, answer) in read {
                answers[i] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(KpiError::Unavailable("a read was lost".into()))))
            .collect()
    }

    /// Folds raw samples older than `downsample_after` into buckets and
    /// drops what is older than the retention, at the clock's time.
    pub async fn compact(&self) -> Result<CompactOutcome, KpiError> {
        let now = self.clock.now_ms();
        let bucket = (self.config.bucket.as_millis() as u64).max(1);
        let fold_before =
            now.saturating_sub(self.config.downsample_after.as_millis() as u64) / bucket * bucket;
        let drop_before = self.oldest_kept(now);
        let index = self.index.clone();
        let outcome = self
            .db
            .call(move |conn| compact(conn, &index, bucket, fold_before, drop_before))
            .await
            .map_err(unavailable)?;
        let head_from = now.saturating_sub(self.head_span_ms);
        self.head
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .trim(head_from);
        Ok(outcome)
    }
}

fn read(index: &RwLock<Index>) -> std::sync::RwLockReadGuard<'_, Index> {
    index.read().unwrap_or_else(|p| p.into_inner())
}

fn write(index: &RwLock<Index>) -> std::sync::RwLockWriteGuard<'_, Index> {
    index.write().unwrap_or_else(|p| p.into_inner())
}

fn load_index(conn: &mut Connection) -> rusqlite::Result<Index> {
    let mut index = Index::new();
    let mut stmt = conn.prepare("SELECT id, name, labels FROM kpi_series")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut ids = Vec::new();
    for row in rows {
        let (id, name, text) = row?;
        let labels: Labels = serde_json::from_str(&text).unwrap_or_default();
        ids.push(id);
        index.insert(
            (name.clone(), text),
            SeriesInfo {
                name,
                labels,
                samples: 0,
                oldest_at: 0,
                newest_at: 0,
                newest_value: 0.0,
                id,
            },
        );
    }
    drop(stmt);
    refresh(conn, &mut index, None)?;
    Ok(index)
}

/// Reads the counts and ends of the series (of `only`, or all) from the
/// table; series left without samples are forgotten.
fn refresh(
    conn: &Connection,
    index: &mut Index,
    only: Option<&std::collections::BTreeSet<i64>>,
) -> rusqlite::Result<()> {
    let mut stats = conn
        .prepare_cached("SELECT COUNT(*), MIN(at), MAX(at) FROM kpi_samples WHERE series = ?1")?;
    let mut newest =
        conn.prepare_cached("SELECT value FROM kpi_samples WHERE series = ?1 AND at = ?2")?;
    let mut empty = Vec::new();
    for (key, info) in index.iter_mut() {
        if only.is_some_and(|ids| !ids.contains(&info.id)) {
            continue;
        }
        let (count, oldest, newest_at): (i64, Option<i64>, Option<i64>) =
            stats.query_row([info.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        match (oldest, newest_at) {
            (Some(oldest), Some(at)) => {
                info.samples = count as u64;
                info.oldest_at = oldest as u64;
                info.newest_at = at as u64;
                info.newest_value = newest.query_row(params![info.id, at], |r| r.get(0))?;
            }
            _ => empty.push((key.clone(), info.id)),
        }
    }
    for (key, id) in empty {
        conn.execute("DELETE FROM kpi_series WHERE id = ?1", [id])?;
        index.remove(&key);
    }
    Ok(())
}

type Row = (String, String, Labels, u64, f64);

fn push_rows(
    conn: &mut Connection,
    index: &RwLock<Index>,
    head: &RwLock<Head>,
    head_from: u64,
    rows: Vec<Row>,
) -> rusqlite::Result<PushOutcome> {
    let tx = conn.transaction()?;
    let mut outcome = PushOutcome::default();
    // Series created in this batch: they join the index only once the
    // batch is committed.
    let mut created: BTreeMap<(String, String), SeriesInfo> = BTreeMap::new();
    let mut touched: Vec<((String, String), u64, f64, bool)> = Vec::with_capacity(rows.len());
    {
        let mut insert_series =
            tx.prepare_cached("INSERT INTO kpi_series (name, labels) VALUES (?1, ?2)")?;
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO kpi_samples (series, at, value) VALUES (?1, ?2, ?3)",
        )?;
        let mut replace = tx.prepare_cached(
            "UPDATE kpi_samples SET value = ?3 WHERE series = ?1 AND at = ?2 AND lo IS NULL",
        )?;
        // A late sample on the start of a folded bucket joins the bucket.
        let mut join = tx.prepare_cached(
            "UPDATE kpi_samples SET value = (value * n + ?3) / (n + 1), n = n + 1,
                 lo = MIN(lo, ?3), hi = MAX(hi, ?3)
             WHERE series = ?1 AND at = ?2 AND lo IS NOT NULL",
        )?;
        let known = read(index);
        for (name, text, labels, at, value) in rows {
            let key = (name, text);
            let id = match known.get(&key).or_else(|| created.get(&key)) {
                Some(info) => info.id,
                None => {
                    insert_series.execute(params![key.0, key.1])?;
                    let id = tx.last_insert_rowid();
                    created.insert(
                        key.clone(),
                        SeriesInfo {
                            name: key.0.clone(),
                            labels,
                            samples: 0,
                            oldest_at: at,
                            newest_at: at,
                            newest_value: value,
                            id,
                        },
                    );
                    id
                }
            };
            let fresh = insert.execute(params![id, at as i64, value])? == 1;
            if !fresh {
                if replace.execute(params![id, at as i64, value])? == 1 {
                    outcome.replaced += 1;
                } else {
                    join.execute(params![id, at as i64, value])?;
                }
            }
            outcome.accepted += 1;
            touched.push((key, at, value, fresh));
        }
    }
    tx.commit()?;
    outcome.new_series = created.len();
    let mut index = write(index);
    index.extend(created);
    let mut head = head.write().unwrap_or_else(|p| p.into_inner());
    for (key, at, value, fresh) in touched {
        if let Some(info) = index.get_mut(&key) {
            head.add(info.id, at, value, head_from);
            if fresh {
                info.samples += 1;
            }
            if info.samples == 1 || at < info.oldest_at {
                info.oldest_at = at;
            }
            if info.samples == 1 || at >= info.newest_at {
                info.newest_at = at;
                info.newest_value = value;
            }
        }
    }
    Ok(outcome)
}

fn read_points(
    conn: &mut Connection,
    series: Vec<SeriesInfo>,
    from_ms: u64,
    to_ms: u64,
) -> Result<Vec<SeriesPoints>, KpiError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT at, value, n, lo, hi FROM kpi_samples
             WHERE series = ?1 AND at > ?2 AND at <= ?3 ORDER BY at",
        )
        .map_err(unavailable)?;
    let mut out = Vec::with_capacity(series.len());
    let mut total = 0usize;
    for info in series {
        let points = stmt
            .query_map(
                params![
                    info.id,
                    from_ms.min(i64::MAX as u64) as i64,
                    to_ms.min(i64::MAX as u64) as i64
                ],
                |r| {
                    let value: f64 = r.get(1)?;
                    Ok(Point {
                        at: r.get::<_, i64>(0)? as u64,
                        value,
                        count: r.get::<_, i64>(2)? as u64,
                        min: r.get::<_, Option<f64>>(3)?.unwrap_or(value),
                        max: r.get::<_, Option<f64>>(4)?.unwrap_or(value),
                    })
                },
            )
            .map_err(unavailable)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(unavailable)?;
        total += points.len();
        if total > super::MAX_READ_SAMPLES {
            return Err(too_many(&info.name));
        }
        out.push(SeriesPoints {
            series: info,
            points,
        });
    }
    Ok(out)
}

fn too_many(name: &str) -> KpiError {
    KpiError::Invalid(format!(
        "the window holds more than {} samples of {name}; read a shorter window or narrower \
         labels",
        super::MAX_READ_SAMPLES
    ))
}

fn compact(
    conn: &mut Connection,
    index: &RwLock<Index>,
    bucket: u64,
    fold_before: u64,
    drop_before: u64,
) -> rusqlite::Result<CompactOutcome> {
    let tx = conn.transaction()?;
    let mut touched = std::collections::BTreeSet::new();
    {
        let mut ids = tx.prepare(
            "SELECT DISTINCT series FROM kpi_samples WHERE at < ?1 AND (lo IS NULL OR at < ?2)",
        )?;
        for id in ids.query_map(params![fold_before as i64, drop_before as i64], |r| {
            r.get::<_, i64>(0)
        })? {
            touched.insert(id?);
        }
    }
    let dropped = tx.execute(
        "DELETE FROM kpi_samples WHERE at < ?1",
        [drop_before as i64],
    )? as u64;
    // Every bucket before the cut that holds a raw sample is folded with
    // what the bucket already holds (a late sample joins its bucket).
    tx.execute_batch("DROP TABLE IF EXISTS temp.kpi_fold")?;
    tx.execute(
        "CREATE TEMP TABLE kpi_fold AS
         SELECT series, (at / ?1) * ?1 AS bucket,
                SUM(value * n) / SUM(n) AS value, SUM(n) AS n,
                MIN(COALESCE(lo, value)) AS lo, MAX(COALESCE(hi, value)) AS hi,
                SUM(lo IS NULL) AS raw
         FROM kpi_samples
         WHERE at < ?2 AND (series, at / ?1) IN (
             SELECT series, at / ?1 FROM kpi_samples WHERE at < ?2 AND lo IS NULL
         )
         GROUP BY series, at / ?1",
        params![bucket as i64, fold_before as i64],
    )?;
    let folded: i64 = tx.query_row("SELECT COALESCE(SUM(raw), 0) FROM kpi_fold", [], |r| {
        r.get(0)
    })?;
    tx.execute(
        "DELETE FROM kpi_samples WHERE at < ?2 AND (series, at / ?1) IN (
             SELECT series, bucket / ?1 FROM kpi_fold)",
        params![bucket as i64, fold_before as i64],
    )?;
    tx.execute_batch(
        "INSERT INTO kpi_samples (series, at, value, n, lo, hi)
             SELECT series, bucket, value, n, lo, hi FROM kpi_fold;
         DROP TABLE temp.kpi_fold;",
    )?;
    // The index changes only once the transaction is committed.
    let mut changed: Index = read(index)
        .iter()
        .filter(|(_, info)| touched.contains(&info.id))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let keys: Vec<(String, String)> = changed.keys().cloned().collect();
    refresh(&tx, &mut changed, None)?;
    tx.commit()?;
    let mut index = write(index);
    for key in keys {
        match changed.remove(&key) {
            Some(info) => index.insert(key, info),
            None => index.remove(&key),
        };
    }
    Ok(CompactOutcome {
        folded: folded as u64,
        dropped,
    })
}

impl KpiStore {
    /// The id of a series, for tests of the table itself.
    #[cfg(test)]
    fn id_of(&self, name: &str, labels: &Labels) -> Option<i64> {
        read(&self.index)
            .get(&(name.to_string(), labels_text(labels)))
            .map(|i| i.id)
    }
}

/// Counts the rows of a series in the table (tests).
#[cfg(test)]
fn rows_of(store: &KpiStore, id: i64) -> i64 {
    store.db.blocking(|conn| {
        conn.query_row(
            "SELECT COUNT(*) FROM kpi_samples WHERE series = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    })
}

impl SeriesInfo {
    /// `name{k="v",...}`.
    pub fn key(&self) -> String {
        series_key(&self.name, &self.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    const T0: u64 = 1_800_000_000_000;

    fn sample(name: &str, value: f64, at: u64, agent: &str) -> NewSample {
        NewSample {
            name: name.into(),
            value,
            at: Some(at),
            labels: [("agent".to_string(), agent.to_string())].into(),
        }
    }

    fn open(dir: &Path, clock: &Clock) -> KpiStore {
        KpiStore::open(&dir.join("kpi.db"), KpiConfig::default(), clock.clone()).unwrap()
    }

    #[tokio::test]
    async fn a_sample_pushed_twice_is_kept_once_and_a_bad_batch_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(T0);
        let store = open(dir.path(), &clock);
        let out = store
            .push(vec![
                sample("cost", 1.0, T0 - 2, "a"),
                sample("cost", 2.0, T0 - 1, "a"),
                sample("cost", 5.0, T0 - 1, "b"),
            ])
            .await
            .unwrap();
        assert_eq!((out.accepted, out.replaced, out.new_series), (3, 0, 2));
        let again = store
            .push(vec![sample("cost", 3.0, T0 - 1, "a")])
            .await
            .unwrap();
        assert_eq!(
            (again.accepted, again.replaced, again.new_series),
            (1, 1, 0)
        );
        let err = store
            .push(vec![
                sample("cost", 9.0, T0, "a"),
                sample("cost", f64::NAN, T0, "a"),
            ])
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("samples[1]: "), "{err}");
        let a = store.matching("cost", &[("agent".into(), "a".into())].into());
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].samples, a[0].newest_value), (2, 3.0));
        // Reopened: the same series, counts and newest values.
        drop(store);
        let store = open(dir.path(), &clock);
        let all = store.series();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].samples, all[0].newest_value, all[0].oldest_at),
            (2, 3.0, T0 - 2)
        );
        let read = store
            .read("cost", &Labels::new(), T0 - HOUR, T0)
            .await
            .unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(
            read[0].points.iter().map(|p| p.value).collect::<Vec<_>>(),
            [1.0, 3.0]
        );
        let err = store.read("nope", &Labels::new(), 0, T0).await.unwrap_err();
        assert!(matches!(err, KpiError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn old_samples_are_folded_with_exact_sums_and_then_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(T0);
        let store = open(dir.path(), &clock);
        // Twelve samples a minute apart: 1..=12, starting on a bucket a
        // quarter of an hour ago.
        let start = T0 / 300_000 * 300_000 - 15 * 60_000;
        let batch: Vec<NewSample> = (0..12)
            .map(|i| sample("lag", (i + 1) as f64, start + i * 60_000, "a"))
            .collect();
        store.push(batch).await.unwrap();
        let id = store
            .id_of("lag", &[("agent".into(), "a".into())].into())
            .unwrap();
        assert_eq!(rows_of(&store, id), 12);
        // Nothing is old enough yet.
        assert_eq!(store.compact().await.unwrap(), CompactOutcome::default());
        clock.advance(8 * 24 * HOUR);
        let out = store.compact().await.unwrap();
        assert_eq!(
            out,
            CompactOutcome {
                folded: 12,
                dropped: 0
            }
        );
        // Three buckets of five minutes: 1..=5, 6..=10, 11..=12.
        let points = &store
            .read("lag", &Labels::new(), 0, clock.now_ms())
            .await
            .unwrap()[0]
            .points;
        let shape: Vec<(u64, f64, u64, f64, f64)> = points
            .iter()
            .map(|p| (p.at - start, p.value, p.count, p.min, p.max))
            .collect();
        assert_eq!(
            shape,
            [
                (0, 3.0, 5, 1.0, 5.0),
                (300_000, 8.0, 5, 6.0, 10.0),
                (600_000, 11.5, 2, 11.0, 12.0)
            ]
        );
        let sum: f64 = points.iter().map(|p| p.value * p.count as f64).sum();
        assert_eq!(sum, 78.0);
        // Folding again changes nothing.
        assert_eq!(store.compact().await.unwrap().folded, 0);
        assert_eq!(store.series()[0].samples, 3);
        // A sample as old as the folded ones is refused: it could not be
        // kept once.
        let err = store
            .push(vec![sample("lag", 9.0, start, "a")])
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("older than the host takes"),
            "{err}"
        );
        // Past the retention: gone, and so is the series.
        clock.advance(23 * 24 * HOUR);
        let out = store.compact().await.unwrap();
        assert_eq!(out.dropped, 3);
        assert!(store.series().is_empty());
    }
}
