//! One SQLite connection, used from async code without blocking a worker.
//!
//! A SQLite call can take as long as the disk: a large row, a checkpoint, a
//! busy wait on another process's lock. On an async worker that time is
//! taken from every other request the worker serves, so every call of the
//! host's databases (state, embedded board, embedded fleet registry) goes
//! through [`Db::call`], which runs it on tokio's blocking pool.

use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A SQLite connection behind a mutex, shared by clones.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    /// Taken before a call goes to the blocking pool: calls queue here,
    /// asleep, rather than as blocking threads waiting on the connection.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Db {
    /// Opens (or creates) the database at `path` in WAL mode, with a busy
    /// timeout, and runs `setup` on it (the schema). Blocking: call it at
    /// start-up or from a blocking thread.
    pub fn open(
        path: &Path,
        setup: impl FnOnce(&mut Connection) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<Self> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        setup(&mut conn)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            turn: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<R, F>(&self, f: F) -> R
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let _turn = self.turn.lock().await;
        let conn = self.conn.clone();
        match tokio::task::spawn_blocking(move || f(&mut lock(&conn))).await {
            Ok(result) => result,
            // A panic in `f` is a bug: let it reach the caller as one.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a database call was cancelled: {e}"),
        }
    }

    /// Runs `f` with the connection on this thread: for code that already
    /// runs on a blocking thread, and for tests.
    pub fn blocking<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut lock(&self.conn))
    }
}

fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave SQLite inconsistent: an
    // open transaction is rolled back when it drops.
    conn.lock().unwrap_or_else(|p| p.into_inner())
}
