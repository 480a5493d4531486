use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A member of this plan: brings records from a previous plan, sees their own things.
    Member,
    /// Enrollment staff: the staff console.
    Staff,
    /// Staff allowed to reveal sensitive records (each reveal is audited).
    Privacy,
    /// Administrators: audit log, configuration.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Member, Role::Staff, Role::Privacy, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Staff => "staff",
            Role::Privacy => "privacy",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (expected member, staff, privacy or admin)"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles of one account, stored as a space-separated list.
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

impl FromStr for Roles {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split_whitespace().map(Role::from_str).collect::<Result<BTreeSet<_>, _>>().map(Roles)
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
        assert!("member superuser".parse::<Roles>().unwrap_err().contains("superuser"));
    }
}
