//! The two backends' migrations stay in step: both directories hold the same names, and a pair
//! differs only when `migrations/dialect-specific.txt` says it may.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};

const BACKENDS: [&str; 2] = ["sqlite", "postgres"];
const ALLOWED: &str = "dialect-specific.txt";

/// Checks `root/migrations`; says every problem at once.
pub fn check(root: &Path) -> Result<usize> {
    let dir = root.join("migrations");
    let [sqlite, postgres] = BACKENDS.map(|backend| names(&dir.join(backend)));
    let (sqlite, postgres) = (sqlite?, postgres?);
    let listed = std::fs::read_to_string(dir.join(ALLOWED)).with_context(|| format!("reading migrations/{ALLOWED}"))?;
    let allowed: BTreeSet<&str> =
        listed.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();

    let mut problems = vec![];
    for name in sqlite.symmetric_difference(&postgres) {
        let [has, lacks] = if sqlite.contains(name) { BACKENDS } else { [BACKENDS[1], BACKENDS[0]] };
        problems.push(format!("{name} is in migrations/{has} but not in migrations/{lacks}"));
    }
    for name in sqlite.intersection(&postgres) {
        let same = std::fs::read(dir.join("sqlite").join(name))? == std::fs::read(dir.join("postgres").join(name))?;
        match (same, allowed.contains(name.as_str())) {
            (false, false) => problems.push(format!(
                "{name} differs between the backends: make them the same, or list it in migrations/{ALLOWED} \
                 and say why in its first lines"
            )),
            (true, true) => problems.push(format!("{name} is listed in migrations/{ALLOWED} but is the same on both")),
            _ => {}
        }
    }
    for name in allowed.iter().filter(|n| !sqlite.contains(**n) && !postgres.contains(**n)) {
        problems.push(format!("migrations/{ALLOWED} lists {name}, which is no migration"));
    }
    if !problems.is_empty() {
        bail!("the migrations are out of step:\n  {}", problems.join("\n  "));
    }
    Ok(sqlite.len())
}

fn names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".sql") {
            names.insert(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)], allowed: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for backend in BACKENDS {
            std::fs::create_dir_all(root.path().join("migrations").join(backend)).unwrap();
        }
        for (path, text) in files {
            std::fs::write(root.path().join("migrations").join(path), text).unwrap();
        }
        std::fs::write(root.path().join("migrations").join(ALLOWED), allowed).unwrap();
        root
    }

    #[test]
    fn identical_pairs_and_listed_differences_pass() {
        let root = tree(
            &[("sqlite/1.sql", "a"), ("postgres/1.sql", "a"), ("sqlite/2.sql", "b"), ("postgres/2.sql", "c")],
            "# why\n2.sql\n",
        );
        assert_eq!(check(root.path()).unwrap(), 2);
    }

    #[test]
    fn drift_a_missing_twin_and_a_stale_listing_are_each_named() {
        let root = tree(
            &[("sqlite/1.sql", "a"), ("postgres/1.sql", "a "), ("sqlite/2.sql", "b"), ("postgres/2.sql", "b"), ("postgres/3.sql", "")],
            "2.sql\n9.sql\n",
        );
        let error = format!("{:#}", check(root.path()).unwrap_err());
        assert!(error.contains("1.sql differs between the backends"), "{error}");
        assert!(error.contains("3.sql is in migrations/postgres but not in migrations/sqlite"), "{error}");
        assert!(error.contains("2.sql is listed"), "{error}");
        assert!(error.contains("lists 9.sql"), "{error}");
    }
}
