//! The database: employees in a SQLite file, and the repository whose
//! queries are cached with `#[cached]` and whose update invalidates with
//! `#[invalidates]`.
//!
//! rusqlite is blocking, so every query runs on Tokio's blocking pool
//! (`spawn_blocking`) over one connection behind a mutex. The file is in WAL
//! mode with a busy timeout, so several processes (the instances of a
//! multi-instance deployment) can share it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_core::{cached, invalidates};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// How many employees an empty database is seeded with.
pub const SEED_EMPLOYEES: i64 = 200;

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One employee, as stored and as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employee {
    /// Primary key.
    pub id: i64,
    /// Full name.
    pub name: String,
    /// Work e-mail address.
    pub email: String,
    /// Job title.
    pub title: String,
    /// Department.
    pub department: String,
    /// Hire date, `YYYY-MM-DD`.
    pub hired_on: String,
}

/// One page of employees, ordered by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The page number, from 1.
    pub page: u32,
    /// The page size asked for.
    pub size: u32,
    /// Employees in the database.
    pub total: i64,
    /// This page's employees (empty past the last page).
    pub items: Vec<Employee>,
}

/// The fields an update replaces (already validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployeeUpdate {
    /// New full name.
    pub name: String,
    /// New job title.
    pub title: String,
    /// New department.
    pub department: String,
}

/// What a database operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No employee has this id (updates only: reads answer `None`).
    #[error("employee {0} not found")]
    NotFound(i64),
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A previous query panicked while holding the connection.
    #[error("database connection poisoned by an earlier failure")]
    Poisoned,
    /// The blocking task did not complete (the runtime is shutting down).
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The database directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The employee database: one SQLite connection, used from the blocking pool.
#[derive(Debug, Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the database at `path`, in WAL mode, and
    /// seeds it with [`SEED_EMPLOYEES`] employees if it has none.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, created or seeded.
    pub async fn open(path: &Path) -> Result<Db, DbError> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&path)).await??;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| DbError::Poisoned)?;
            f(&mut conn)
        })
        .await?
    }
}

fn open_blocking(path: &Path) -> Result<Connection, DbError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DbError::Dir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers in one process do not block a writer in another.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS employees (
            id         INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            email      TEXT NOT NULL,
            title      TEXT NOT NULL,
            department TEXT NOT NULL,
            hired_on   TEXT NOT NULL
        )",
    )?;
    seed(&mut conn)?;
    Ok(conn)
}

const FIRST_NAMES: [&str; 10] = [
    "Ada", "Grace", "Alan", "Barbara", "Edsger", "Frances", "Donald", "Margaret", "Ken", "Radia",
];
const LAST_NAMES: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Liskov", "Dijkstra", "Allen", "Knuth", "Hamilton", "Thompson",
    "Perlman",
];
const TITLES: [&str; 5] = [
    "Engineer",
    "Senior Engineer",
    "Staff Engineer",
    "Engineering Manager",
    "Analyst",
];
const DEPARTMENTS: [&str; 4] = ["Platform", "Payments", "Data", "People"];

/// The seed row for `id` (1-based): deterministic, so every instance that
/// seeds an empty file writes the same rows.
fn seed_row(id: i64) -> Employee {
    let i = usize::try_from(id - 1).unwrap_or(0);
    let first = FIRST_NAMES[i % FIRST_NAMES.len()];
    let last = LAST_NAMES[(i / FIRST_NAMES.len()) % LAST_NAMES.len()];
    Employee {
        id,
        name: format!("{first} {last}"),
        email: format!(
            "{}.{}{id}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        title: TITLES[i % TITLES.len()].to_owned(),
        department: DEPARTMENTS[i % DEPARTMENTS.len()].to_owned(),
        hired_on: format!("20{:02}-{:02}-{:02}", 10 + i % 15, 1 + i % 12, 1 + i % 28),
    }
}

/// Seeds an empty table. `BEGIN IMMEDIATE` takes the write lock before
/// counting, so two processes starting on the same new file seed it once.
fn seed(conn: &mut Connection) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let count: i64 = tx.query_row("SELECT COUNT(*) FROM employees", [], |r| r.get(0))?;
    if count == 0 {
        let mut insert = tx.prepare(
            "INSERT INTO employees (id, name, email, title, department, hired_on)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for id in 1..=SEED_EMPLOYEES {
            let e = seed_row(id);
            insert.execute(params![
                e.id,
                e.name,
                e.email,
                e.title,
                e.department,
                e.hired_on
            ])?;
        }
        drop(insert);
        tracing::info!(employees = SEED_EMPLOYEES, "seeded an empty database");
    }
    tx.commit()?;
    Ok(())
}

fn employee_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Employee> {
    Ok(Employee {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        title: row.get(3)?,
        department: row.get(4)?,
        hired_on: row.get(5)?,
    })
}

const SELECT: &str = "SELECT id, name, email, title, department, hired_on FROM employees";

/// The queries the routes use, cached.
///
/// Cache keys: `employee:<id>` for one employee (300 s, the `medium`
/// preset), `employees:page:<page>:size:<size>` for a page (300 s, `list`).
/// An update drops its employee's key and every page.
#[derive(Debug, Clone)]
pub struct Repository {
    db: Db,
}

impl Repository {
    /// A repository over `db`.
    pub fn new(db: Db) -> Repository {
        Repository { db }
    }

    /// One employee, `None` if there is no such id.
    ///
    /// `Ok(None)` is cached like any `Ok` value (a `Result`'s `Ok` is always
    /// stored), so repeated lookups of an unknown id do not reach the
    /// database either; an update of that id would drop it.
    ///
    /// # Errors
    ///
    /// When the query fails (never cached).
    #[cached(ttl = "medium", key = "employee:<id>")]
    pub async fn employee(&self, id: i64) -> Result<Option<Employee>, DbError> {
        self.db
            .run(move |conn| {
                let sql = format!("{SELECT} WHERE id = ?1");
                Ok(conn.query_row(&sql, [id], employee_from_row).optional()?)
            })
            .await
    }

    /// Page `page` (from 1) of `size` employees, by id.
    ///
    /// # Errors
    ///
    /// When the query fails (never cached).
    #[cached(ttl = "list", key = "employees:page:<page>:size:<size>")]
    pub async fn employees(&self, page: u32, size: u32) -> Result<Page, DbError> {
        self.db
            .run(move |conn| {
                let total: i64 =
                    conn.query_row("SELECT COUNT(*) FROM employees", [], |r| r.get(0))?;
                let offset = i64::from(page.saturating_sub(1)) * i64::from(size);
                let sql = format!("{SELECT} ORDER BY id LIMIT ?1 OFFSET ?2");
                let mut stmt = conn.prepare(&sql)?;
                let items = stmt
                    .query_map(params![i64::from(size), offset], employee_from_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Page {
                    page,
                    size,
                    total,
                    items,
                })
            })
            .await
    }

    /// Replaces an employee's name, title and department, and returns the
    /// updated row. On success, drops `employee:<id>` and every cached page
    /// (`employees:*`), in this instance and, with Redis, in every other.
    ///
    /// # Errors
    ///
    /// [`DbError::NotFound`] for an unknown id (nothing is invalidated),
    /// or when the update fails.
    #[invalidates("employee:<id>", "employees:*")]
    pub async fn update_employee(
        &self,
        id: i64,
        update: EmployeeUpdate,
    ) -> Result<Employee, DbError> {
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                let changed = tx.execute(
                    "UPDATE employees SET name = ?1, title = ?2, department = ?3 WHERE id = ?4",
                    params![update.name, update.title, update.department, id],
                )?;
                if changed == 0 {
                    return Err(DbError::NotFound(id));
                }
                let sql = format!("{SELECT} WHERE id = ?1");
                let employee = tx.query_row(&sql, [id], employee_from_row)?;
                tx.commit()?;
                Ok(employee)
            })
            .await
    }

    /// Whether the database answers (for `/healthz`).
    ///
    /// # Errors
    ///
    /// When it does not.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.db
            .run(|conn| {
                Ok(conn
                    .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                    .map(drop)?)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_rows_are_distinct_and_deterministic() {
        let a: Vec<Employee> = (1..=SEED_EMPLOYEES).map(seed_row).collect();
        let b: Vec<Employee> = (1..=SEED_EMPLOYEES).map(seed_row).collect();
        assert_eq!(a, b);
        let mut emails: Vec<&str> = a.iter().map(|e| e.email.as_str()).collect();
        emails.sort_unstable();
        emails.dedup();
        assert_eq!(emails.len(), a.len());
    }
}
