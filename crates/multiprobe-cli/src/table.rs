//! Plain-text tables: columns sized to their widest cell, numbers aligned right.

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table being built row by row.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table { columns: columns.iter().map(|(h, a)| (h.to_string(), *a)).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are blank, extra ones are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row after the header (none when every header is
    /// blank), each ending in a newline. Trailing spaces are trimmed, so a blank last column
    /// leaves none.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|(h, _)| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.clone()).collect();
        let headless = header.iter().all(String::is_empty);
        for cells in std::iter::once(&header).skip(usize::from(headless)).chain(&self.rows) {
            let mut line = String::new();
            for (i, (width, (_, align))) in widths.iter().zip(&self.columns).enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = width - cell.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_the_widest_cell_and_numbers_align_right() {
        let mut t = Table::new(&[("FUNCTION", Align::Left), ("MODULE", Align::Left), ("CALLS", Align::Right)]);
        t.row(vec!["vfs_read".into(), "vmlinux".into(), "1234".into()]);
        t.row(vec!["bm_status_read".into(), "binfmt_misc".into(), "7".into()]);
        t.row(vec!["TOTAL".into(), String::new(), "1241".into()]);
        assert_eq!(
            t.render(),
            "FUNCTION        MODULE       CALLS\n\
             vfs_read        vmlinux       1234\n\
             bm_status_read  binfmt_misc      7\n\
             TOTAL                         1241\n"
        );
    }

    #[test]
    fn short_rows_and_blank_last_columns_leave_no_trailing_space() {
        let mut t = Table::new(&[("A", Align::Left), ("B", Align::Left)]);
        t.row(vec!["x".into()]);
        t.row(vec!["long".into(), "y".into(), "dropped".into()]);
        assert_eq!(t.render(), "A     B\nx\nlong  y\n");
        let mut t = Table::new(&[("", Align::Left), ("", Align::Right)]);
        t.row(vec!["yes".into(), "1".into()]);
        assert_eq!(t.render(), "yes  1\n", "no header line when every header is blank");
    }
}
