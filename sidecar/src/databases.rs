//! Which engine namespace holds each database (SWAPDB exchanges two entries instead
//! of moving their keys), kept in the data directory's `DATABASES` file. Every
//! database number a client names goes through [`Databases::physical`] before it
//! reaches the engine.

/// How many databases (and engine namespaces) there are.
const COUNT: usize = caskade_engine::NAMESPACES as usize;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

/// Where the map is kept, in the data directory.
pub const DATABASES_FILE: &str = "DATABASES";

/// Why the map could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatabasesError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not a `source`: a report of the chain says it once).
        error: std::io::Error,
    },
    /// The file is not a map of every database to its own namespace.
    #[error(
        "{path}, line 1: expected {COUNT} distinct namespace numbers below {COUNT}, found {found:?}"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What it holds.
        found: String,
    },
}

/// The database → namespace map.
pub struct Databases {
    map: [AtomicU8; COUNT],
    file: Option<PathBuf>,
    /// Serialises swaps (each writes the file).
    swapping: Mutex<()>,
}

impl Default for Databases {
    /// Every database in its own namespace, kept nowhere (tests).
    fn default() -> Self {
        Databases {
            map: std::array::from_fn(|i| AtomicU8::new(i as u8)),
            file: None,
            swapping: Mutex::new(()),
        }
    }
}

impl Databases {
    /// The map kept in `dir` (each database in its own namespace if there is no file).
    pub fn open(dir: &Path) -> Result<Databases, DatabasesError> {
        let path = dir.join(DATABASES_FILE);
        let mut dbs = Databases {
            file: Some(path.clone()),
            ..Databases::default()
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(dbs),
            Err(error) => return Err(DatabasesError::Read { path, error }),
        };
        let found: Vec<Option<u8>> = text.split_whitespace().map(|w| w.parse().ok()).collect();
        let mut seen = [false; COUNT];
        let valid = found.len() == COUNT
            && found.iter().all(|n| match n {
                Some(n) if usize::from(*n) < COUNT && !seen[usize::from(*n)] => {
                    seen[usize::from(*n)] = true;
                    true
                }
                _ => false,
            });
        if !valid {
            return Err(DatabasesError::Invalid {
                path,
                found: text.trim().to_string(),
            });
        }
        for (slot, n) in dbs.map.iter_mut().zip(found) {
            *slot.get_mut() = n.unwrap_or_default();
        }
        Ok(dbs)
    }

    /// The engine namespace that holds database `db`.
    pub fn physical(&self, db: u8) -> u8 {
        self.map
            .get(usize::from(db))
            .map_or(db, |n| n.load(Ordering::Acquire))
    }

    /// The database that engine namespace `ns` holds (the inverse of [`physical`]).
    ///
    /// [`physical`]: Databases::physical
    pub fn logical(&self, ns: u8) -> u8 {
        (0..COUNT as u8)
            .find(|&db| self.physical(db) == ns)
            .unwrap_or(ns)
    }

    /// Exchanges databases `a` and `b`; the new map is on disk before it is used.
    /// The caller holds every key stripe, so no command sees the map change under it.
    pub fn swap(&self, a: u8, b: u8) -> std::io::Result<()> {
        let _one = self.swapping.lock();
        let mut next: Vec<u8> = (0..COUNT as u8).map(|d| self.physical(d)).collect();
        next.swap(usize::from(a), usize::from(b));
        if let Some(path) = &self.file {
            let text: Vec<String> = next.iter().map(u8::to_string).collect();
            crate::files::replace_durably(path, format!("{}\n", text.join(" ")).as_bytes())?;
        }
        for (slot, n) in self.map.iter().zip(next) {
            slot.store(n, Ordering::Release);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_are_kept_and_a_bad_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().expect("dir");
        let dbs = Databases::open(dir.path()).expect("no file yet");
        assert_eq!(dbs.physical(3), 3);
        dbs.swap(0, 3).expect("swap");
        dbs.swap(3, 5).expect("swap");
        assert_eq!(
            (dbs.physical(0), dbs.physical(3), dbs.physical(5)),
            (3, 5, 0)
        );
        assert_eq!(
            (dbs.logical(dbs.physical(0)), dbs.logical(dbs.physical(3))),
            (0, 3)
        );
        let again = Databases::open(dir.path()).expect("reopen");
        assert_eq!(
            (again.physical(0), again.physical(3), again.physical(5)),
            (3, 5, 0)
        );
        std::fs::write(dir.path().join(DATABASES_FILE), "0 0 1\n").expect("write");
        let err = Databases::open(dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("DATABASES, line 1") && err.contains("0 0 1"),
            "{err}"
        );
    }
}
