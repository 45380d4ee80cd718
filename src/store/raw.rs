//! A prepared statement run without rusqlite's per-value work: the batched
//! INSERT of accepted lines binds their text without a copy, and the outbox
//! reads them back column by column without rusqlite's checks.
//!
//! rusqlite binds every string as `SQLITE_TRANSIENT`: SQLite allocates and
//! copies it, and frees the copy at the next bind — six strings a line, a
//! few percent of the CPU time of a 100 000-line file. Here the text is
//! bound as `SQLITE_STATIC` (SQLite reads the caller's bytes in place), which
//! is sound because [`Prepared::execute`] steps the statement to its end and
//! clears the bindings before it returns, while the bound strings are still
//! borrowed: SQLite never keeps a pointer to them past that call.
//! [`Prepared::for_each_row`] hands each row to a closure, which cannot keep
//! the row's text past the next step; a [`Row`] checks every column index
//! against the row's column count before it asks SQLite for the value, so
//! a wrong index is an error, not a read SQLite must guard.

use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::ptr;

use anyhow::{bail, Result};
use rusqlite::{ffi, Connection};

/// A value bound to a parameter of the next [`Prepared::execute`].
#[derive(Clone, Copy)]
pub enum Value<'t> {
    Int(i64),
    Text(&'t str),
}

/// One prepared statement of `conn`, finalized when dropped.
pub struct Prepared<'c> {
    db: *mut ffi::sqlite3,
    st: *mut ffi::sqlite3_stmt,
    _conn: PhantomData<&'c Connection>,
}

impl<'c> Prepared<'c> {
    pub fn prepare(conn: &'c Connection, sql: &str) -> Result<Prepared<'c>> {
        // SAFETY: the handle of a connection borrowed for 'c, used only on
        // this thread (Prepared is neither Send nor Sync: raw pointers).
        let db = unsafe { conn.handle() };
        let mut st = ptr::null_mut();
        let len = c_int::try_from(sql.len())?;
        // SAFETY: `sql` is valid for `len` bytes; `st` receives the statement.
        let rc = unsafe { ffi::sqlite3_prepare_v2(db, sql.as_ptr().cast(), len, &mut st, ptr::null_mut()) };
        if rc != ffi::SQLITE_OK || st.is_null() {
            bail!("cannot prepare a statement: {}", errmsg(db, rc));
        }
        Ok(Prepared {
            db,
            st,
            _conn: PhantomData,
        })
    }

    /// Binds `values` to parameters 1, 2, … and runs the statement once.
    pub fn execute(&mut self, values: &[Value<'_>]) -> Result<()> {
        let r = self.bind_and_step(values);
        // SAFETY: a statement of this connection; after this, it holds no
        // pointer to the borrowed text.
        unsafe {
            ffi::sqlite3_reset(self.st);
            ffi::sqlite3_clear_bindings(self.st);
        }
        r
    }

    /// Binds `values` to parameters 1, 2, … and hands each row to `f`.
    pub fn for_each_row(&mut self, values: &[Value<'_>], mut f: impl FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
        let r = (|| {
            self.bind(values)?;
            loop {
                // SAFETY: a prepared statement of this connection, every parameter bound.
                match unsafe { ffi::sqlite3_step(self.st) } {
                    ffi::SQLITE_ROW => f(&Row {
                        st: self.st,
                        // SAFETY: the statement is on a row. Asked at each
                        // row: SQLite re-prepares a statement after a schema
                        // change, and `SELECT *` may then have more or fewer.
                        columns: unsafe { ffi::sqlite3_data_count(self.st) },
                        _row: PhantomData,
                    })?,
                    ffi::SQLITE_DONE => return Ok(()),
                    rc => {
                        return Err(
                            rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(errmsg(self.db, rc))).into(),
                        )
                    }
                }
            }
        })();
        // SAFETY: as in `execute`.
        unsafe {
            ffi::sqlite3_reset(self.st);
            ffi::sqlite3_clear_bindings(self.st);
        }
        r
    }

    fn bind_and_step(&mut self, values: &[Value<'_>]) -> Result<()> {
        self.bind(values)?;
        // SAFETY: a prepared statement of this connection, every parameter bound.
        let rc = unsafe { ffi::sqlite3_step(self.st) };
        if rc != ffi::SQLITE_DONE {
            return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(errmsg(self.db, rc))).into());
        }
        Ok(())
    }

    fn bind(&mut self, values: &[Value<'_>]) -> Result<()> {
        for (i, v) in values.iter().enumerate() {
            let n = c_int::try_from(i + 1)?;
            // SAFETY: the text outlives this call, which clears the bindings
            // before returning (see the module's documentation).
            let rc = unsafe {
                match *v {
                    Value::Int(x) => ffi::sqlite3_bind_int64(self.st, n, x),
                    Value::Text(s) => ffi::sqlite3_bind_text(
                        self.st,
                        n,
                        s.as_ptr().cast(),
                        c_int::try_from(s.len())?,
                        ffi::SQLITE_STATIC(),
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                bail!("cannot bind parameter {n}: {}", errmsg(self.db, rc));
            }
        }
        Ok(())
    }
}

/// The current row of [`Prepared::for_each_row`]. Columns are numbered
/// from 0; an index that is not a column of the row is an error.
pub struct Row<'s> {
    st: *mut ffi::sqlite3_stmt,
    /// Columns of the row (`sqlite3_data_count`).
    columns: c_int,
    _row: PhantomData<&'s ()>,
}

impl Row<'_> {
    /// `i` if it is a column of the row.
    fn column(&self, i: c_int) -> Result<c_int> {
        if (0..self.columns).contains(&i) {
            Ok(i)
        } else {
            bail!("column {i} asked of a row of {} column(s)", self.columns)
        }
    }

    /// Column `i` as an integer (0 for NULL).
    pub fn int(&self, i: c_int) -> Result<i64> {
        let i = self.column(i)?;
        // SAFETY: the statement is on a row and `i` is one of its columns.
        Ok(unsafe { ffi::sqlite3_column_int64(self.st, i) })
    }

    /// Whether column `i` is NULL.
    pub fn is_null(&self, i: c_int) -> Result<bool> {
        let i = self.column(i)?;
        // SAFETY: the statement is on a row and `i` is one of its columns.
        Ok(unsafe { ffi::sqlite3_column_type(self.st, i) == ffi::SQLITE_NULL })
    }

    /// Column `i` as text bytes (empty for NULL).
    pub fn bytes(&self, i: c_int) -> Result<&[u8]> {
        let i = self.column(i)?;
        // SAFETY: the statement is on a row and `i` is one of its columns;
        // the text first, then its length (SQLite's documented order);
        // valid until the next step, which the borrow outlives not.
        unsafe {
            let p = ffi::sqlite3_column_text(self.st, i);
            if p.is_null() {
                return Ok(&[]);
            }
            let n = ffi::sqlite3_column_bytes(self.st, i);
            Ok(std::slice::from_raw_parts(p, usize::try_from(n).unwrap_or(0)))
        }
    }
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized once, here.
        unsafe {
            ffi::sqlite3_finalize(self.st);
        }
    }
}

fn errmsg(db: *mut ffi::sqlite3, rc: c_int) -> String {
    // SAFETY: the connection's last error message, copied at once.
    let msg = unsafe { ffi::sqlite3_errmsg(db) };
    if msg.is_null() {
        return format!("SQLite error {rc}");
    }
    // SAFETY: a NUL-terminated string owned by SQLite.
    unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_text_in_place_and_reports_errors() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys = ON; CREATE TABLE p (id INTEGER PRIMARY KEY); INSERT INTO p VALUES (1);
                         CREATE TABLE t (p INTEGER REFERENCES p(id), a TEXT, b TEXT);",
        )
        .unwrap();
        let mut st = Prepared::prepare(&c, "INSERT INTO t VALUES (?1, ?2, ?3), (?1, ?3, ?2)").unwrap();
        let text = String::from("Lefèvre<&>");
        st.execute(&[Value::Int(1), Value::Text(&text[..7]), Value::Text("")])
            .unwrap();
        drop(text);
        let e = st
            .execute(&[Value::Int(2), Value::Text("x"), Value::Text("y")])
            .unwrap_err();
        assert!(e.to_string().contains("FOREIGN KEY"), "{e}");
        st.execute(&[Value::Int(1), Value::Text("x"), Value::Text("y")])
            .unwrap();
        let rows: Vec<(String, String)> = c
            .prepare("SELECT a, b FROM t ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(rows, [s("Lefèvr", ""), s("", "Lefèvr"), s("x", "y"), s("y", "x")]);
        assert!(Prepared::prepare(&c, "INSERT INTO nowhere VALUES (1)").is_err());
    }

    #[test]
    fn a_column_index_outside_the_row_is_an_error() {
        let c = Connection::open_in_memory().unwrap();
        let mut st = Prepared::prepare(&c, "SELECT 7, 'abc' UNION ALL SELECT NULL, NULL").unwrap();
        let mut rows = Vec::new();
        st.for_each_row(&[], |r| {
            rows.push((r.int(0)?, r.is_null(0)?, r.bytes(1)?.to_vec()));
            for i in [2, 3, -1, c_int::MIN, c_int::MAX] {
                let e = r.int(i).unwrap_err().to_string();
                assert_eq!(e, format!("column {i} asked of a row of 2 column(s)"));
                assert!(r.bytes(i).is_err() && r.is_null(i).is_err());
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, [(7, false, b"abc".to_vec()), (0, true, Vec::new())]);
    }
}
