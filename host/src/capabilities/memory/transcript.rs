//! Where transcripts are, and how one is read from a byte offset.
//!
//! Two kinds, one reading: a JSONL file, and a session of an OpenClaw agent
//! store (`agents/<agentId>/agent/openclaw-agent.sqlite`, where OpenClaw
//! keeps transcripts since its 2026.7.2 release). A store's session is read
//! as the JSONL it would be as a file: each row of `transcript_events`, in
//! `seq` order, as one line of its event JSON (`event_json`, or
//! `event_zstd` decompressed). Its byte offsets are as stable as a file's
//! (rows are only appended; a re-encoded row keeps its bytes), so the same
//! watermark, the same chunking and the same "an exchange still open at the
//! end waits" serve both, and the ingest above does not know which it reads.
//!
//! A transcript's key (its watermark's name) is the file's path, or the
//! store's path, `#` and the session id. The agent whose transcript it is
//! comes from the `agents/<agentId>/` part of that path, as OpenClaw lays
//! them out.

use super::corpus::UNREADABLE_EVENT;
use super::ingest::IngestError;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// The file name of an OpenClaw agent store.
pub const STORE_FILE: &str = "openclaw-agent.sqlite";
/// The table of a store that holds transcript events.
const EVENTS: &str = "transcript_events";
/// OpenClaw's own bound on one event (4 MiB).
const MAX_EVENT_BYTES: usize = 4 << 20;
/// How long a read waits for OpenClaw's writer.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transcript {
    /// A JSONL file.
    File(PathBuf),
    /// One session of an OpenClaw agent store.
    Session {
        /// The store's file.
        store: PathBuf,
        /// The session's id (`transcript_events.session_id`).
        session: String,
    },
}

/// A transcript's size and age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Bytes, as read.
    pub len: u64,
    /// When it was last written, in milliseconds since the Unix epoch.
    pub modified_ms: u64,
}

fn io(what: &Path, e: impl std::fmt::Display) -> IngestError {
    IngestError::Io(format!("cannot read `{}`: {e}", what.display()))
}

impl Transcript {
    /// The name its watermark is kept under.
    pub fn key(&self) -> String {
        match self {
            Transcript::File(path) => path.to_string_lossy().into_owned(),
            Transcript::Session { store, session } => {
                format!("{}#{session}", store.to_string_lossy())
            }
        }
    }

    /// A short name for progress and reports.
    pub fn short_name(&self) -> String {
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        match self {
            Transcript::File(path) => name(path),
            Transcript::Session { store, session } => format!("{}#{session}", name(store)),
        }
    }

    /// Its size and when it was last written (for a session, the newest
    /// event's `created_at`).
    pub fn stat(&self) -> Result<Stat, IngestError> {
        match self {
            Transcript::File(path) => {
                let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
                Ok(Stat {
                    len: meta.len(),
                    modified_ms: mtime_ms(&meta),
                })
            }
            Transcript::Session { store, session } => {
                let conn = open_store(store)?;
                let row: (i64, i64, Option<i64>) = conn
                    .query_row(
                        &format!(
                            "SELECT count(*), coalesce(sum(max({LEN}, 0)), 0), max(created_at)
                             FROM {EVENTS} WHERE session_id = ?1"
                        ),
                        params![session],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .map_err(|e| io(store, e))?;
                Ok(Stat {
                    len: (row.0 + row.1) as u64,
                    modified_ms: row.2.map_or(0, epoch_ms),
                })
            }
        }
    }

    /// Up to `max` bytes from `offset` (a session's are whole lines, or one
    /// line when a single line is longer than `max`).
    pub fn read_range(&self, offset: u64, max: usize) -> Result<Vec<u8>, IngestError> {
        match self {
            Transcript::File(path) => read_file_range(path, offset, max),
            Transcript::Session { store, session } => {
                read_session_range(store, session, offset, max)
            }
        }
    }
}

/// A row's length in its stream, without its newline: the same for an
/// identity row and a compressed one (`event_utf8_bytes` is the length of
/// the decompressed text).
const LEN: &str = "coalesce(event_utf8_bytes, length(CAST(event_json AS BLOB)))";

/// Opens a store read-only: OpenClaw stays its only writer.
fn open_store(store: &Path) -> Result<Connection, IngestError> {
    let conn = Connection::open_with_flags(
        store,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| io(store, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| io(store, e))?;
    Ok(conn)
}

/// Whether `store` is an OpenClaw agent store (it has transcript events).
fn is_store(store: &Path) -> Result<bool, IngestError> {
    // A store that cannot be opened (its permissions) is an error, not
    // "no store": it is then listed as unreadable.
    let conn = open_store(store)?;
    let found = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            params![EVENTS],
            |_| Ok(()),
        )
        .optional();
    match found {
        Ok(found) => Ok(found.is_some()),
        // Not a database at all (a file that only has the name).
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            Ok(false)
        }
        Err(e) => Err(io(store, e)),
    }
}

/// The sessions of a store, by id.
fn sessions(store: &Path) -> Result<Vec<Transcript>, IngestError> {
    let conn = open_store(store)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT DISTINCT session_id FROM {EVENTS} ORDER BY session_id"
        ))
        .map_err(|e| io(store, e))?;
    let ids = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| io(store, e))?;
    Ok(ids
        .into_iter()
        .map(|session| Transcript::Session {
            store: store.to_path_buf(),
            session,
        })
        .collect())
}

/// One event as a line of its stream: newlines (which compact JSON has
/// only as whitespace, never inside a string) become spaces, so the
/// length is kept.
fn line_of(mut bytes: Vec<u8>) -> Vec<u8> {
    for b in bytes.iter_mut() {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    bytes.push(b'\n');
    bytes
}

fn read_session_range(
    store: &Path,
    session: &str,
    offset: u64,
    max: usize,
) -> Result<Vec<u8>, IngestError> {
    let conn = open_store(store)?;
    let sql = |e: rusqlite::Error| io(store, e);
    // Both queries read one snapshot of the store.
    let _snapshot = conn.unchecked_transaction().map_err(sql)?;
    // Where the offset falls, from the lengths alone: no event before it
    // is read.
    let (first, mut at) = {
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT seq, {LEN} FROM {EVENTS} WHERE session_id = ?1 ORDER BY seq"
            ))
            .map_err(sql)?;
        let mut rows = stmt.query(params![session]).map_err(sql)?;
        let mut at = 0u64;
        let mut first = None;
        while let Some(row) = rows.next().map_err(sql)? {
            let end = at + row_len(row.get(1).map_err(sql)?) + 1;
            if end > offset {
                first = Some(row.get::<_, i64>(0).map_err(sql)?);
                break;
            }
            at = end;
        }
        match first {
            Some(seq) => (seq, at),
            None => return Ok(Vec::new()),
        }
    };
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT seq, {LEN}, event_json, event_zstd FROM {EVENTS}
             WHERE session_id = ?1 AND seq >= ?2 ORDER BY seq"
        ))
        .map_err(sql)?;
    let mut rows = stmt.query(params![session, first]).map_err(sql)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql)? {
        let seq: i64 = row.get(0).map_err(sql)?;
        let len = row_len(row.get(1).map_err(sql)?);
        let line = match event_bytes(row, len) {
            Ok(bytes) => line_of(bytes),
            // One event the store cannot give is one bad line, of its
            // recorded length so the offsets after it hold: the rest of
            // the session is still read.
            Err(why) => {
                let why = format!("event {seq} of session `{session}` in the store: {why}");
                if len == 0 {
                    // No bytes to stand for it: the session is unreadable
                    // until the store is, and says so every run.
                    return Err(io(store, why));
                }
                unreadable_line(len, &why)
            }
        };
        // An offset inside a line (a watermark never is, but a caller may
        // give any): the rest of it.
        let skip = offset.saturating_sub(at) as usize;
        let piece = &line[skip.min(line.len())..];
        if !out.is_empty() && out.len() + piece.len() > max {
            break;
        }
        out.extend_from_slice(piece);
        at += line.len() as u64;
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// A row's recorded length (none counts as 0).
fn row_len(len: Option<i64>) -> u64 {
    len.unwrap_or(0).max(0) as u64
}

/// The event of a row: its JSON (as text, or as a blob in a table that is
/// not strict), or its zstd frame decompressed, `len` bytes either way.
fn event_bytes(row: &rusqlite::Row<'_>, len: u64) -> Result<Vec<u8>, String> {
    use rusqlite::types::ValueRef;
    let bytes = match row.get_ref(2).map_err(|e| e.to_string())? {
        ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
        ValueRef::Null => match row.get_ref(3).map_err(|e| e.to_string())? {
            ValueRef::Blob(z) => {
                decompress(z, len as usize).map_err(|e| format!("it does not decompress: {e}"))?
            }
            _ => return Err("it has neither `event_json` nor `event_zstd`".into()),
        },
        _ => return Err("its `event_json` is neither text nor a blob".into()),
    };
    if bytes.len() as u64 != len {
        return Err(format!(
            "it is {} bytes, not the {len} recorded",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// A line of `len` bytes (at least 1) standing for an event that could
/// not be read: the transcript reader reports it, with `why` when it fits,
/// as a bad line.
fn unreadable_line(len: u64, why: &str) -> Vec<u8> {
    let len = len as usize;
    let mut line = serde_json::json!({"type": UNREADABLE_EVENT, "error": why})
        .to_string()
        .into_bytes();
    if line.len() > len {
        line = serde_json::json!({ "type": UNREADABLE_EVENT })
            .to_string()
            .into_bytes();
    }
    if line.len() > len {
        // Too short for the marker: a line that is not JSON, reported as
        // such.
        line = vec![b'!'; len];
    }
    line.resize(len, b' ');
    line.push(b'\n');
    line
}

/// Decompresses a zstd frame of a known size (at most 4 MiB, as OpenClaw
/// bounds them).
fn decompress(blob: &[u8], len: usize) -> std::io::Result<Vec<u8>> {
    if len > MAX_EVENT_BYTES {
        return Err(std::io::Error::other(format!(
            "{len} bytes is over the 4 MiB an event may have"
        )));
    }
    zstd::bulk::decompress(blob, len)
}

/// Up to `max` bytes of `file` from `offset`.
fn read_file_range(file: &Path, offset: u64, max: usize) -> Result<Vec<u8>, IngestError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).map_err(|e| io(file, e))?;
    f.seek(SeekFrom::Start(offset)).map_err(|e| io(file, e))?;
    let mut buf = Vec::with_capacity(max.min(super::ingest::CHUNK_BYTES));
    f.take(max as u64)
        .read_to_end(&mut buf)
        .map_err(|e| io(file, e))?;
    Ok(buf)
}

/// What is at a path: its transcripts, and what could not be read (a
/// store whose sessions cannot be listed), each with why.
#[derive(Debug, Default)]
pub struct Listing {
    /// The transcripts, files first, each sorted.
    pub transcripts: Vec<Transcript>,
    /// `(path, why)` of each store that could not be read.
    pub unreadable: Vec<(String, String)>,
}

/// The transcripts at `path`: a JSONL file, an OpenClaw store's sessions,
/// or every `*.jsonl` file and every store (`*.sqlite` with transcript
/// events) under a directory, sorted and recursive. Links are not
/// followed; other files (and other SQLite databases) are left alone. A
/// path that cannot be read is an error; a store under it that cannot be
/// is listed as unreadable, and the rest is still listed.
pub fn transcripts(path: &Path) -> Result<Listing, IngestError> {
    let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
    let path = std::fs::canonicalize(path)
        .map_err(|e| IngestError::Io(format!("cannot resolve `{}`: {e}", path.display())))?;
    let mut listing = Listing::default();
    if meta.is_file() {
        if is_sqlite_name(&path) {
            add_store(&path, &mut listing);
        } else {
            listing.transcripts.push(Transcript::File(path));
        }
        return Ok(listing);
    }
    let (stores, files): (Vec<PathBuf>, Vec<PathBuf>) = transcript_paths(&path)
        .map_err(IngestError::Io)?
        .into_iter()
        .partition(|p| is_sqlite_name(p));
    listing.transcripts = files.into_iter().map(Transcript::File).collect();
    for store in stores {
        add_store(&store, &mut listing);
    }
    Ok(listing)
}

/// The `*.jsonl` and `*.sqlite` files under `dir`, recursive and sorted;
/// links are not followed (a link back up would never end).
fn transcript_paths(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
        // A file that goes while it is read (a rotation) is left out.
        for entry in entries.flatten() {
            let p = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(p);
            } else if kind.is_file() && p.extension().is_some_and(|e| e == "jsonl" || e == "sqlite")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Adds a store's sessions, or why they cannot be listed; a SQLite file
/// that is no OpenClaw store adds nothing.
fn add_store(store: &Path, listing: &mut Listing) {
    match is_store(store).and_then(|yes| if yes { sessions(store) } else { Ok(Vec::new()) }) {
        Ok(sessions) => listing.transcripts.extend(sessions),
        Err(e) => listing
            .unreadable
            .push((store.to_string_lossy().into_owned(), e.to_string())),
    }
}

fn is_sqlite_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "sqlite")
}

/// When the transcripts at `path` were last written, one time per file
/// or store, in milliseconds: a store's is its own or its write-ahead
/// log's, whichever is newer (OpenClaw writes through the log). Links
/// are not followed.
pub fn modified_times(path: &Path, out: &mut Vec<u64>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        out.push(newest_of(path, &meta));
        return Ok(());
    }
    for p in transcript_paths(path)? {
        // A file that went since it was listed is not counted.
        if let Ok(meta) = std::fs::metadata(&p) {
            out.push(newest_of(&p, &meta));
        }
    }
    Ok(())
}

fn newest_of(path: &Path, meta: &std::fs::Metadata) -> u64 {
    let own = mtime_ms(meta);
    if !is_sqlite_name(path) {
        return own;
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    // An empty log is one a reader left (a read-only connection creates
    // it): no write of OpenClaw's.
    std::fs::metadata(PathBuf::from(wal))
        .ok()
        .filter(|m| m.len() > 0)
        .map_or(own, |m| mtime_ms(&m).max(own))
}

fn mtime_ms(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// A stored time in milliseconds (one under 10^11 is taken as seconds).
fn epoch_ms(t: i64) -> u64 {
    let t = t.max(0) as u64;
    if t < 100_000_000_000 {
        t * 1000
    } else {
        t
    }
}

/// What a transcript's key says: the agent (from `agents/<agentId>/`) and,
/// for a store's session, the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyParts {
    /// The agent, when the path is laid out as OpenClaw lays it out.
    pub agent: Option<String>,
    /// The session: a store's session id, or a JSONL file's stem (OpenClaw
    /// names them `<sessionId>.jsonl`).
    pub session: Option<String>,
    /// Whether the key names a store's session (whose id is then the
    /// session, whatever its events say).
    pub in_store: bool,
}

/// Reads a transcript's key (see [`Transcript::key`]).
pub fn key_parts(key: &str) -> KeyParts {
    let (path, session) = match key.find(".sqlite#") {
        Some(at) if at + 8 < key.len() => (&key[..at + 7], Some(key[at + 8..].to_string())),
        _ => (key, None),
    };
    let in_store = session.is_some();
    let parts: Vec<&str> = path.split(['/', '\\']).collect();
    let agent = parts
        .windows(2)
        .rev()
        .find(|w| w[0] == "agents" && !w[1].is_empty())
        .map(|w| w[1].to_string());
    let session = session.or_else(|| {
        let name = parts.last()?;
        name.strip_suffix(".jsonl")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    });
    KeyParts {
        agent,
        session,
        in_store,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// When the test stores' events were written (2023: long finished).
    pub const STORE_TIME: i64 = 1_700_000_000_000;

    /// Creates an OpenClaw agent store with the schema it has had since
    /// agent schema 23 (its transcript table only), and the given events:
    /// `(session, seq, json, compressed)`.
    pub fn write_store(path: &Path, events: &[(&str, i64, &str, bool)]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS transcript_events (
               session_id TEXT NOT NULL,
               seq INTEGER NOT NULL,
               event_json TEXT,
               created_at INTEGER NOT NULL,
               event_zstd BLOB,
               event_utf8_bytes INTEGER,
               navigation_json TEXT,
               PRIMARY KEY (session_id, seq)
             ) STRICT;",
        )
        .unwrap();
        for (session, seq, json, compressed) in events {
            if *compressed {
                let blob = zstd::bulk::compress(json.as_bytes(), 1).unwrap();
                conn.execute(
                    "INSERT INTO transcript_events VALUES (?1, ?2, NULL, ?3, ?4, ?5, '{}')",
                    params![session, seq, STORE_TIME, blob, json.len() as i64],
                )
                .unwrap();
            } else {
                conn.execute(
                    "INSERT INTO transcript_events VALUES (?1, ?2, ?3, ?4, NULL, ?5, NULL)",
                    params![session, seq, json, STORE_TIME, json.len() as i64],
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn a_store_session_reads_as_the_jsonl_it_would_be() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("agents/alfred/agent").join(STORE_FILE);
        let a = r#"{"type":"session","id":"s1"}"#;
        let b = r#"{"type":"message","id":"m1","message":{"role":"user","content":"hi"}}"#;
        let c = r#"{"type":"message","id":"m2","message":{"role":"assistant","content":"hello"}}"#;
        write_store(
            &store,
            &[
                ("s1", 0, a, false),
                ("s1", 1, b, true),
                ("s1", 2, c, false),
                ("s2", 0, a, false),
            ],
        );
        std::fs::write(
            dir.path().join("agents/alfred/agent/other.sqlite"),
            "not sqlite",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("legacy")).unwrap();
        std::fs::write(dir.path().join("legacy/x.jsonl"), "{}\n").unwrap();
        let all = transcripts(dir.path()).unwrap().transcripts;
        let names: Vec<String> = all.iter().map(Transcript::short_name).collect();
        assert_eq!(
            names,
            [
                "x.jsonl",
                "openclaw-agent.sqlite#s1",
                "openclaw-agent.sqlite#s2"
            ]
        );
        let s1 = &all[1];
        let whole = format!("{a}\n{b}\n{c}\n");
        let stat = s1.stat().unwrap();
        assert_eq!(stat.len, whole.len() as u64);
        assert_eq!(stat.modified_ms, STORE_TIME as u64);
        assert_eq!(s1.read_range(0, 1 << 20).unwrap(), whole.as_bytes());
        // From a line's start, and in pieces of whole lines.
        let second = a.len() as u64 + 1;
        assert_eq!(
            s1.read_range(second, 1 << 20).unwrap(),
            &whole.as_bytes()[second as usize..]
        );
        assert_eq!(
            s1.read_range(second, b.len() + 2).unwrap(),
            format!("{b}\n").as_bytes()
        );
        // One line longer than the piece: the line whole.
        assert_eq!(s1.read_range(0, 3).unwrap(), format!("{a}\n").as_bytes());
        assert!(s1.read_range(whole.len() as u64, 100).unwrap().is_empty());
        // The key names the agent and the session.
        let parts = key_parts(&s1.key());
        assert_eq!(parts.agent.as_deref(), Some("alfred"));
        assert_eq!(parts.session.as_deref(), Some("s1"));
        // A store named directly is its sessions.
        assert_eq!(transcripts(&store).unwrap().transcripts.len(), 2);
    }

    #[test]
    fn an_event_the_store_cannot_give_is_one_bad_line_and_the_rest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join(STORE_FILE);
        let a = r#"{"type":"session","id":"s"}"#;
        let big = format!(r#"{{"type":"custom","data":"{}"}}"#, "x".repeat(1100));
        let c = r#"{"type":"message","message":{"role":"user","content":"hi"}}"#;
        write_store(
            &store,
            &[("s", 0, a, false), ("s", 1, &big, true), ("s", 2, c, false)],
        );
        let conn = Connection::open(&store).unwrap();
        conn.execute(
            "UPDATE transcript_events SET event_utf8_bytes = 1000 WHERE seq = 1",
            [],
        )
        .unwrap();
        drop(conn);
        let s = Transcript::Session {
            store: store.clone(),
            session: "s".into(),
        };
        let bytes = s.read_range(0, 1 << 20).unwrap();
        assert_eq!(bytes.len() as u64, s.stat().unwrap().len);
        assert!(bytes.ends_with(format!("{c}\n").as_bytes()));
        let parsed = super::super::corpus::parse(&bytes, &Default::default(), true);
        assert_eq!(parsed.malformed.len(), 1, "{:?}", parsed.malformed);
        assert_eq!(parsed.malformed[0].line, 2);
        assert!(
            parsed.malformed[0]
                .error
                .starts_with("event 1 of session `s` in the store"),
            "{:?}",
            parsed.malformed
        );
        // Too short for the marker: a line that is not JSON. With no size
        // at all, the session cannot be read, and says so.
        let conn = Connection::open(&store).unwrap();
        conn.execute(
            "UPDATE transcript_events SET event_utf8_bytes = 20 WHERE seq = 1",
            [],
        )
        .unwrap();
        drop(conn);
        let bytes = s.read_range(0, 1 << 20).unwrap();
        assert_eq!(bytes.len() as u64, s.stat().unwrap().len);
        let parsed = super::super::corpus::parse(&bytes, &Default::default(), true);
        assert_eq!(parsed.malformed.len(), 1, "{:?}", parsed.malformed);
        assert!(
            parsed.malformed[0].error.starts_with("not JSON"),
            "{:?}",
            parsed.malformed
        );
        let conn = Connection::open(&store).unwrap();
        conn.execute(
            "UPDATE transcript_events SET event_utf8_bytes = NULL WHERE seq = 1",
            [],
        )
        .unwrap();
        drop(conn);
        let err = s.read_range(0, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("event 1 of session `s` in the store"), "{err}");
        // A store whose table is not OpenClaw's is listed as unreadable;
        // the rest of the directory is still listed.
        let other = dir.path().join("agents/x/agent").join(STORE_FILE);
        std::fs::create_dir_all(other.parent().unwrap()).unwrap();
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE transcript_events (id INTEGER)")
            .unwrap();
        let listing = transcripts(dir.path()).unwrap();
        assert_eq!(listing.transcripts.len(), 1);
        assert_eq!(listing.unreadable.len(), 1, "{:?}", listing.unreadable);
        assert!(
            listing.unreadable[0].1.contains("session_id"),
            "{:?}",
            listing.unreadable
        );
    }

    #[test]
    fn keys_name_agents_and_sessions_as_openclaw_lays_them_out() {
        let jsonl = key_parts("/home/u/.openclaw/agents/bruce/sessions/abc-1.jsonl");
        assert_eq!(jsonl.agent.as_deref(), Some("bruce"));
        assert_eq!(jsonl.session.as_deref(), Some("abc-1"));
        let plain = key_parts("/tmp/export.ndjson");
        assert_eq!(plain, KeyParts::default());
        let hash_in_name = key_parts("/data/agents/a/notes#1.jsonl");
        assert_eq!(hash_in_name.session.as_deref(), Some("notes#1"));
        let store = key_parts("/h/agents/a/agent/openclaw-agent.sqlite#s#2");
        assert_eq!(
            (store.session.as_deref(), store.in_store),
            (Some("s#2"), true)
        );
    }
}
