use std::fmt;

use thiserror::Error;

/// A sign-in name: trimmed, lower case, 3–64 characters of `a-z 0-9 . _ - @ +`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UsernameError {
    #[error("enter a username")]
    Empty,
    #[error("a username has 3 to 64 characters")]
    Length,
    #[error("a username may contain only letters, digits and . _ - @ +")]
    Characters,
}

impl Username {
    pub fn parse(input: &str) -> Result<Self, UsernameError> {
        let normalised = input.trim().to_lowercase();
        if normalised.is_empty() {
            return Err(UsernameError::Empty);
        }
        let length = normalised.chars().count();
        if !(3..=64).contains(&length) {
            return Err(UsernameError::Length);
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@+".contains(c);
        if !normalised.chars().all(allowed) {
            return Err(UsernameError::Characters);
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised() {
        assert_eq!(Username::parse("  Maria.Garcia@Example.org ").unwrap().as_str(), "maria.garcia@example.org");
    }

    #[test]
    fn bad_usernames_are_refused_with_a_reason() {
        assert_eq!(Username::parse("   "), Err(UsernameError::Empty));
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"a".repeat(65)), Err(UsernameError::Length));
        assert_eq!(Username::parse("maria garcia"), Err(UsernameError::Characters));
        assert_eq!(Username::parse("maría"), Err(UsernameError::Characters));
        assert_eq!(Username::parse("<script>"), Err(UsernameError::Characters));
    }
}
