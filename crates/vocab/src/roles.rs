//! What an account may do.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::vocabulary;

vocabulary! {
    /// What an account may do.
    pub enum Role {
        /// A member of this plan: brings records from a previous plan, sees their own things.
        Member = "member",
        /// Enrollment staff: the staff console.
        Staff = "staff",
        /// Staff allowed to reveal sensitive records (each reveal is audited).
        Privacy = "privacy",
        /// Administrators: audit log, configuration.
        Admin = "admin",
    }
}

/// The roles of one account, stored as a space-separated list (`"staff admin"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles(BTreeSet<Role>);

impl Roles {
    pub fn of(roles: impl IntoIterator<Item = Role>) -> Self {
        Self(roles.into_iter().collect())
    }

    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// Staff pages are open to staff and admins.
    pub fn is_staff(&self) -> bool {
        self.has(Role::Staff) || self.has(Role::Admin)
    }

    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }

    /// The stored form, e.g. `"staff admin"`.
    pub fn to_stored(&self) -> String {
        self.0.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" ")
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_stored())
    }
}

impl FromStr for Roles {
    type Err = crate::UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split_whitespace().map(Role::from_str).collect::<Result<BTreeSet<_>, _>>().map(Roles)
    }
}

#[cfg(feature = "sqlx")]
mod sql {
    use super::Roles;

    impl<DB: sqlx::Database> sqlx::Type<DB> for Roles
    where
        str: sqlx::Type<DB>,
    {
        fn type_info() -> DB::TypeInfo {
            <str as sqlx::Type<DB>>::type_info()
        }

        fn compatible(ty: &DB::TypeInfo) -> bool {
            <str as sqlx::Type<DB>>::compatible(ty)
        }
    }

    impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for Roles
    where
        String: sqlx::Encode<'q, DB>,
    {
        fn encode_by_ref(
            &self,
            buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
        ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
            <String as sqlx::Encode<'q, DB>>::encode(self.to_stored(), buf)
        }
    }

    impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for Roles
    where
        &'r str: sqlx::Decode<'r, DB>,
    {
        fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
            Ok(<&'r str as sqlx::Decode<'r, DB>>::decode(value)?.parse()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_stored_form() {
        let roles = Roles::of([Role::Admin, Role::Staff]);
        assert_eq!(roles.to_stored(), "staff admin");
        assert_eq!("staff admin".parse::<Roles>().unwrap(), roles);
        assert!(roles.is_staff());
        assert!(!Roles::of([Role::Member]).is_staff());
        assert!(Roles::of([Role::Admin]).is_staff(), "admins see staff pages");
        assert!("member superuser".parse::<Roles>().unwrap_err().to_string().contains("superuser"));
    }
}
