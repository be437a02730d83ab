//! The session-name rule of PROTOCOL section 1, and the one injective mapping
//! from a session name to the names it takes in tmux and on disk. Never
//! builds a path or a tmux target from a name any other way.

use std::fmt;
use std::str::FromStr;

/// The longest session name the protocol allows.
pub const MAX_LEN: usize = 64;

/// A valid session name: `^[A-Za-z0-9_.-]{1,64}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionName(String);

/// Why a session name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionNameError {
    #[error("session name is empty")]
    Empty,
    #[error("session name is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("session name may hold only A-Z, a-z, 0-9, '_', '.' and '-'")]
    BadChar,
}

impl SessionName {
    /// Checks `s` against the rule.
    pub fn new(s: &str) -> Result<SessionName, SessionNameError> {
        if s.is_empty() {
            return Err(SessionNameError::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(SessionNameError::TooLong);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(SessionNameError::BadChar);
        }
        Ok(SessionName(s.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's key in tmux and on disk. tmux rewrites `.` and `:` to `_`,
    /// and `.`/`..` are special in paths, so `_` becomes `__` and `.` becomes
    /// `_d`: injective, free of dots, and the same length class.
    pub fn key(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 4);
        for c in self.0.chars() {
            match c {
                '_' => out.push_str("__"),
                '.' => out.push_str("_d"),
                c => out.push(c),
            }
        }
        out
    }

    /// The inverse of [`SessionName::key`]; `None` for anything `key` cannot produce.
    pub fn from_key(key: &str) -> Option<SessionName> {
        let mut out = String::with_capacity(key.len());
        let mut it = key.chars();
        while let Some(c) = it.next() {
            match c {
                '_' => match it.next() {
                    Some('_') => out.push('_'),
                    Some('d') => out.push('.'),
                    _ => return None,
                },
                '.' => return None,
                c => out.push(c),
            }
        }
        SessionName::new(&out).ok()
    }

    /// The per-user session of the Go service: `<prefix>-<first 8 chars of the UUID>`.
    pub fn for_user(prefix: &str, user: &uuid::Uuid) -> Result<SessionName, SessionNameError> {
        let id = user.hyphenated().to_string();
        SessionName::new(&format!("{prefix}-{}", &id[..8]))
    }
}

impl FromStr for SessionName {
    type Err = SessionNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionName::new(s)
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_rule_and_nothing_else() {
        for ok in [
            "a",
            "paliad-paliadin-0123abcd",
            "A.b_c-9",
            &"x".repeat(64),
            "..",
            "-",
        ] {
            assert!(SessionName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            &"x".repeat(65),
            "a b",
            "a/b",
            "a:b",
            "ä",
            "a\n",
            "a\0",
            "$(x)",
        ] {
            assert!(SessionName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_is_injective_dot_free_and_reversible() {
        let names = [
            "a.b", "a_b", "a_db", "a__b", "a._", "..", ".", "_", "__", "_d",
        ];
        let mut keys = std::collections::HashSet::new();
        for n in names {
            let s = SessionName::new(n).unwrap();
            let k = s.key();
            assert!(!k.contains('.') && !k.contains(':'), "{k}");
            assert!(keys.insert(k.clone()), "collision on {k}");
            assert_eq!(SessionName::from_key(&k).unwrap(), s);
        }
        assert_eq!(SessionName::from_key("a_x"), None);
    }

    #[test]
    fn user_session_matches_the_go_service() {
        let u: uuid::Uuid = "0123abcd-0000-4000-8000-000000000000".parse().unwrap();
        assert_eq!(
            SessionName::for_user("paliad-paliadin", &u)
                .unwrap()
                .as_str(),
            "paliad-paliadin-0123abcd"
        );
    }
}
