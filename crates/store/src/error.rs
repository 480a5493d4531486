use thiserror::Error;

/// What can go wrong in the store. Callers map it once to their own layer's error.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("already exists: {0}")]
    Conflict(Unique),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid request to the store: {0}")]
    Invalid(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Which uniqueness a write broke, told by the constraint (PostgreSQL names it; SQLite names
/// its `table.column`s), so that callers never read the database's message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unique {
    #[error("an account with that username")]
    AccountUsername,
    #[error("an account with that member id")]
    AccountMemberId,
    #[error("{0}")]
    Other(String),
}

impl Unique {
    fn of(db: &dyn sqlx::error::DatabaseError) -> Self {
        // PostgreSQL: the constraint's name. SQLite: "UNIQUE constraint failed: t.c[, t.c]".
        let key = db
            .constraint()
            .map(str::to_owned)
            .unwrap_or_else(|| db.message().rsplit("constraint failed: ").next().unwrap_or_default().to_owned());
        match key.as_str() {
            "account_username_key" | "account.username" => Unique::AccountUsername,
            "account_member_id_key" | "account.member_id" => Unique::AccountMemberId,
            _ => Unique::Other(key),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db.is_unique_violation()
        {
            return StoreError::Conflict(Unique::of(db.as_ref()));
        }
        StoreError::Database(error)
    }
}
