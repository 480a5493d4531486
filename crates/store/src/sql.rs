//! A tiny SQL text builder for queries whose shape depends on the request (search filters,
//! multi-row writes). Placeholders are numbered (`$1`, `$2`, …) for PostgreSQL and anonymous
//! (`?`) for SQLite: SQLite looks numbered parameters up by name, one linear scan each, which
//! makes a statement of a few thousand parameters quadratic to prepare and to bind.

/// Which SQL the text is for (see `on_pool!`, which names it `DIALECT` in each arm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I64(i64),
    Text(String),
    Bool(bool),
    OptI64(Option<i64>),
    OptText(Option<String>),
}

#[derive(Debug, Default)]
pub(crate) struct SqlBuilder {
    pub sql: String,
    pub args: Vec<Arg>,
    /// The SQLite text (`?` placeholders), made on first use.
    sqlite: std::sync::OnceLock<String>,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        Self { sql: sql.to_owned(), args: Vec::new(), sqlite: Default::default() }
    }

    /// The text for `dialect`.
    pub fn text(&self, dialect: Dialect) -> &str {
        match dialect {
            Dialect::Postgres => &self.sql,
            Dialect::Sqlite => self.sqlite.get_or_init(|| anonymous_placeholders(&self.sql, self.args.len())),
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `arg`.
    pub fn arg(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.sql.push('$');
        self.sql.push_str(&self.args.len().to_string());
        self
    }

    /// Appends `(p1, …), (p1, …), …`: one parenthesised group of placeholders per row.
    pub fn rows(&mut self, rows: impl IntoIterator<Item = Vec<Arg>>) -> &mut Self {
        for (i, row) in rows.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.sql.push('(');
            for (j, arg) in row.into_iter().enumerate() {
                if j > 0 {
                    self.sql.push_str(", ");
                }
                self.arg(arg);
            }
            self.sql.push(')');
        }
        self
    }

    /// Appends `(p1, p2, …)` for a non-empty list of text values.
    pub fn text_list<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) -> &mut Self {
        self.sql.push('(');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.arg(Arg::Text(value.to_owned()));
        }
        self.sql.push(')');
        self
    }
}

/// `$1, $2, … $n` → `?`, when they appear exactly in that order (as [`SqlBuilder::arg`] writes
/// them); any other text is returned unchanged (SQLite accepts `$n` too, only slower).
fn anonymous_placeholders(sql: &str, count: usize) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut expected = 1usize;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || rest[at + 1..at + 1 + digits].parse() != Ok(expected) {
            return sql.to_owned();
        }
        out.push_str(&rest[..at]);
        out.push('?');
        expected += 1;
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    if expected - 1 == count { out } else { sql.to_owned() }
}

/// A sqlx query (`sqlx::query`, `query_as`, `query_scalar`) of a builder's text in the
/// `DIALECT` of the surrounding `on_pool!` arm, with every [`Arg`] bound.
macro_rules! bind_args {
    ($make:path, $builder:expr) => {{
        let builder: &$crate::sql::SqlBuilder = &$builder;
        let mut query = $make(builder.text(DIALECT));
        for arg in &builder.args {
            query = match arg {
                $crate::sql::Arg::I64(v) => query.bind(*v),
                $crate::sql::Arg::Text(v) => query.bind(v.as_str()),
                $crate::sql::Arg::Bool(v) => query.bind(*v),
                $crate::sql::Arg::OptI64(v) => query.bind(*v),
                $crate::sql::Arg::OptText(v) => query.bind(v.as_deref()),
            };
        }
        query
    }};
}
pub(crate) use bind_args;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut b = SqlBuilder::new("SELECT * FROM t WHERE a = ");
        b.arg(Arg::I64(1)).push(" AND b IN ").text_list(["x", "y"]);
        assert_eq!(b.text(Dialect::Postgres), "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)");
        assert_eq!(b.text(Dialect::Sqlite), "SELECT * FROM t WHERE a = ? AND b IN (?, ?)");
        assert_eq!(b.args.len(), 3);
    }

    #[test]
    fn sqlite_text_keeps_numbers_unless_they_run_in_order() {
        assert_eq!(anonymous_placeholders("a = $1 AND b = $2", 2), "a = ? AND b = ?");
        assert_eq!(anonymous_placeholders("a = $10", 1), "a = $10");
        assert_eq!(anonymous_placeholders("a = $1 OR b = $1", 1), "a = $1 OR b = $1");
        assert_eq!(anonymous_placeholders("a = $2 AND b = $1", 2), "a = $2 AND b = $1");
        assert_eq!(anonymous_placeholders("a = $1 AND b = '$'", 1), "a = $1 AND b = '$'");
        assert_eq!(anonymous_placeholders("a = $1", 2), "a = $1");
        assert_eq!(anonymous_placeholders("no placeholders", 0), "no placeholders");
    }
}
