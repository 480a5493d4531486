//! A tiny SQL text builder whose placeholders (`$1`, `$2`, …) both backends accept, for
//! queries whose shape depends on the request (search filters).

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
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        Self { sql: sql.to_owned(), args: Vec::new() }
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

/// Binds every [`Arg`] of a builder to a sqlx query (of either backend).
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
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
        assert_eq!(b.sql, "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)");
        assert_eq!(b.args.len(), 3);
    }
}
