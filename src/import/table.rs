//! CSV reading of the reference-data files (spec §5): bytes in, rows of
//! trimmed text cells out, each with the line it starts on.
//!
//! `;`-separated, UTF-8 with an optional BOM, a header row naming the
//! columns in any order. The header is matched against the columns the kind
//! expects: an unknown, missing or repeated column refuses the whole file
//! (the rows cannot be read without it). Row problems (not UTF-8, wrong
//! number of cells) are collected, not fatal, so that the error can list
//! every bad row at once.

use std::fmt;

/// One bad row (or cell): `line N: column X: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Line of the file where the row starts (the header is line 1).
    pub line: u64,
    /// Column name, when the problem is one cell.
    pub column: Option<String>,
    pub reason: String,
}

impl RowError {
    pub fn row(line: u64, reason: impl Into<String>) -> RowError {
        RowError {
            line,
            column: None,
            reason: reason.into(),
        }
    }

    pub fn cell(line: u64, column: &str, reason: impl Into<String>) -> RowError {
        RowError {
            line,
            column: Some(column.to_string()),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}: column {}: {}", self.line, c, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// A data row: cells in the order of the expected columns.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: u64,
    cells: Vec<String>,
}

impl Row {
    /// The trimmed cell of expected column `i`.
    pub fn get(&self, i: usize) -> &str {
        self.cells.get(i).map(String::as_str).unwrap_or("")
    }
}

/// What a file gave: its readable rows and the problems found so far.
#[derive(Debug, Default)]
pub struct Table {
    pub rows: Vec<Row>,
    pub errors: Vec<RowError>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `bytes` as a `;` CSV whose header holds exactly `columns`.
pub fn read(bytes: &[u8], columns: &[&str]) -> Table {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let mut t = Table::default();
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = rdr.byte_records();

    // Header: the first record.
    let header = match records.next() {
        None => {
            t.errors.push(RowError::row(
                1,
                format!("the file is empty: expected a header row with {}", columns.join(";")),
            ));
            return t;
        }
        Some(Err(e)) => {
            t.errors.push(RowError::row(1, format!("unreadable CSV: {e}")));
            return t;
        }
        Some(Ok(h)) => h,
    };
    // Line numbers are counted from byte offsets: the csv crate's own line
    // counter misses the blank lines it skips.
    let mut lines = LineCounter::new(bytes);
    let hline = header.position().map(|p| lines.line_at(p.byte())).unwrap_or(1);
    // For each column of the file, the index of the expected column it fills.
    let mut map: Vec<Option<usize>> = Vec::with_capacity(header.len());
    let mut seen = vec![false; columns.len()];
    for raw in header.iter() {
        let name = match std::str::from_utf8(raw) {
            Ok(s) => s.trim().to_ascii_lowercase(),
            Err(_) => {
                t.errors.push(RowError::row(
                    hline,
                    "the header is not UTF-8 text (save the file as CSV UTF-8)",
                ));
                map.push(None);
                continue;
            }
        };
        match columns.iter().position(|c| *c == name) {
            Some(i) if seen[i] => {
                t.errors
                    .push(RowError::cell(hline, &name, "column appears twice in the header"));
                map.push(None);
            }
            Some(i) => {
                seen[i] = true;
                map.push(Some(i));
            }
            None if name.is_empty() => {
                t.errors.push(RowError::row(hline, "the header has an unnamed column"));
                map.push(None);
            }
            None => {
                t.errors.push(RowError::cell(
                    hline,
                    &name,
                    format!("unknown column (expected {})", columns.join(";")),
                ));
                map.push(None);
            }
        }
    }
    for (i, c) in columns.iter().enumerate() {
        if !seen[i] {
            t.errors.push(RowError::cell(hline, c, "missing column in the header"));
        }
    }
    if !t.errors.is_empty() {
        return t;
    }

    for rec in records {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| lines.line_at(p.byte())).unwrap_or(0);
                t.errors.push(RowError::row(line, format!("unreadable CSV: {e}")));
                continue;
            }
        };
        let line = rec.position().map(|p| lines.line_at(p.byte())).unwrap_or(0);
        // A row of empty cells (trailing `;;;;` lines of spreadsheet exports) is no row.
        if rec.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        if rec.len() != map.len() {
            t.errors.push(RowError::row(
                line,
                format!("has {} cells, the header has {}", rec.len(), map.len()),
            ));
            continue;
        }
        let mut cells = vec![String::new(); columns.len()];
        let mut ok = true;
        for (raw, slot) in rec.iter().zip(&map) {
            let Some(i) = *slot else { continue };
            match std::str::from_utf8(raw) {
                Ok(s) => cells[i] = s.trim().to_string(),
                Err(_) => {
                    t.errors.push(RowError::cell(
                        line,
                        columns[i],
                        "not UTF-8 text (save the file as CSV UTF-8)",
                    ));
                    ok = false;
                }
            }
        }
        if ok {
            t.rows.push(Row { line, cells });
        }
    }
    t
}

/// 1-based line of a byte offset, for offsets asked in increasing order.
struct LineCounter<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter { bytes, pos: 0, line: 1 }
    }

    fn line_at(&mut self, offset: u64) -> u64 {
        let mut end = usize::try_from(offset).unwrap_or(usize::MAX).min(self.bytes.len());
        // The csv crate may report a record at the end of the previous line
        // (its `\n` after a `\r`); a record never starts with a line break,
        // so step over any to reach its first byte.
        while end < self.bytes.len() && matches!(self.bytes[end], b'\r' | b'\n') {
            end += 1;
        }
        if end > self.pos {
            // A line ends with `\n`, `\r\n` or a lone `\r`.
            let chunk = &self.bytes[self.pos..end];
            self.line += memchr::memchr2_iter(b'\n', b'\r', chunk)
                .filter(|&i| chunk[i] == b'\n' || chunk.get(i + 1) != Some(&b'\n'))
                .count() as u64;
            self.pos = end;
        }
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: &[&str] = &["a", "b", "c"];

    #[test]
    fn header_in_any_order_with_bom_and_spaces() {
        let t = read(b"\xEF\xBB\xBF c ;A; b\r\n3;1;2\r\n\r\n;;\r\n 6 ;4;5\r\n", COLS);
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(t.rows.len(), 2);
        assert_eq!((t.rows[0].get(0), t.rows[0].get(1), t.rows[0].get(2)), ("1", "2", "3"));
        assert_eq!(t.rows[1].line, 5);
        assert_eq!(t.rows[1].get(2), "6");
    }

    #[test]
    fn line_numbers_count_blank_and_quoted_lines() {
        for eol in ["\n", "\r\n", "\r"] {
            let text = ["a;b;c", "", "1;\"x", "y\";3", "", "", "4;5;6", ""].join(eol);
            let t = read(text.as_bytes(), COLS);
            assert!(t.errors.is_empty(), "{:?}", t.errors);
            let lines: Vec<u64> = t.rows.iter().map(|r| r.line).collect();
            assert_eq!(lines, vec![3, 7], "{eol:?}");
        }
    }

    #[test]
    fn unknown_missing_and_repeated_columns_are_named() {
        let t = read(b"a;x;a\n1;2;3\n", COLS);
        let msgs: Vec<String> = t.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            msgs.contains(&"line 1: column x: unknown column (expected a;b;c)".to_string()),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(&"line 1: column a: column appears twice in the header".to_string()),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(&"line 1: column b: missing column in the header".to_string()),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(&"line 1: column c: missing column in the header".to_string()),
            "{msgs:?}"
        );
        assert!(t.rows.is_empty());
    }

    #[test]
    fn bad_rows_are_collected_not_fatal() {
        let t = read(b"a;b;c\n1;2\n\"x\ny\";\xE9;3\n7;8;9\n", COLS);
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.rows[0].line, 5);
        let msgs: Vec<String> = t.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs[0], "line 2: has 2 cells, the header has 3");
        assert!(msgs[1].starts_with("line 3: column b: not UTF-8"), "{msgs:?}");
    }

    #[test]
    fn empty_file_is_refused() {
        let t = read(b"", COLS);
        assert!(t.errors[0].to_string().contains("empty"));
        let t = read(b"\xEF\xBB\xBF", COLS);
        assert!(t.errors[0].to_string().contains("empty"));
    }
}
