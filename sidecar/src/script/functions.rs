//! Function libraries (FUNCTION LOAD and friends): each library's code and the
//! functions it registered, kept in the data directory's `FUNCTIONS` file so they
//! survive a restart. The VMs load a library's code when they first need it after a
//! change (a generation counter tells them).

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One registered function.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionMeta {
    /// Its name (unique over all libraries).
    pub name: String,
    /// `description`, if given.
    pub description: Option<String>,
    /// Its flags (`no-writes`, ...).
    pub flags: Vec<String>,
}

impl FunctionMeta {
    /// Whether it may only read (callable with FCALL_RO; writes are refused).
    pub fn no_writes(&self) -> bool {
        self.flags.iter().any(|f| f == "no-writes")
    }
}

/// One library.
#[derive(Debug)]
pub struct Library {
    /// The name its `#!lua name=...` shebang gives.
    pub name: String,
    /// The code, shebang included.
    pub code: Bytes,
    /// What it registered.
    pub functions: Vec<FunctionMeta>,
}

/// How FUNCTION RESTORE treats libraries that exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// Refuse if any exists (the default).
    Append,
    /// Replace those that exist.
    Replace,
    /// Drop every library first.
    Flush,
}

/// Every library, and where they are kept.
pub struct Functions {
    libs: Mutex<BTreeMap<String, Arc<Library>>>,
    generation: AtomicU64,
    file: Option<PathBuf>,
}

const MAGIC: &[u8; 8] = b"CASKFN1\n";

/// The library name of `code`'s shebang.
fn library_name(code: &[u8]) -> Result<String, String> {
    let end = code.iter().position(|&b| b == b'\n').unwrap_or(code.len());
    let line = String::from_utf8_lossy(&code[..end]).into_owned();
    let Some(rest) = line.strip_prefix("#!") else {
        return Err("ERR Missing library metadata".into());
    };
    let mut words = rest.split_ascii_whitespace();
    let engine = words.next().unwrap_or("");
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    let mut name = None;
    for w in words {
        match w.strip_prefix("name=") {
            Some(n) => name = Some(n.to_string()),
            None => return Err(format!("ERR Invalid metadata value given: {w}")),
        }
    }
    let name = name.ok_or("ERR Library name was not given")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(
            "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"
                .into(),
        );
    }
    Ok(name)
}

/// The payload of FUNCTION DUMP and of the `FUNCTIONS` file: the magic, then each
/// library's code (4-byte length, bytes), then a CRC32 of all before it.
fn encode(libs: &BTreeMap<String, Arc<Library>>) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    for lib in libs.values() {
        b.extend_from_slice(&(lib.code.len() as u32).to_le_bytes());
        b.extend_from_slice(&lib.code);
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Result<Vec<Bytes>, String> {
    let bad = || "ERR payload version or checksum are wrong".to_string();
    if b.len() < MAGIC.len() + 4 || &b[..MAGIC.len()] != MAGIC {
        return Err(bad());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad());
    }
    let mut out = Vec::new();
    let mut at = MAGIC.len();
    while at < body.len() {
        let len = body
            .get(at..at + 4)
            .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .ok_or_else(bad)?;
        at += 4;
        let code = body.get(at..at + len).ok_or_else(bad)?;
        out.push(Bytes::copy_from_slice(code));
        at += len;
    }
    Ok(out)
}

impl Functions {
    /// The libraries kept in `file` (none if it is missing; a damaged file is logged
    /// and set aside, so the server still starts).
    pub fn open(file: Option<PathBuf>) -> Functions {
        let f = Functions {
            libs: Mutex::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            file,
        };
        let Some(path) = &f.file else {
            return f;
        };
        let Ok(bytes) = std::fs::read(path) else {
            return f;
        };
        match decode(&bytes) {
            Ok(codes) => {
                let mut libs = f.libs.lock();
                for code in codes {
                    match Self::build(&code) {
                        Ok(lib) => {
                            libs.insert(lib.name.clone(), Arc::new(lib));
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "a kept function library no longer loads; dropped")
                        }
                    }
                }
            }
            Err(_) => {
                tracing::error!(path = %path.display(), "the function libraries file is damaged; starting without libraries");
            }
        }
        f
    }

    fn build(code: &Bytes) -> Result<Library, String> {
        let name = library_name(code)?;
        let functions = super::vm::register_library(code)?;
        Ok(Library {
            name,
            code: code.clone(),
            functions,
        })
    }

    /// Bumped on every change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self, libs: &BTreeMap<String, Arc<Library>>) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let Some(path) = &self.file else {
            return;
        };
        if let Err(e) = crate::files::replace_durably(path, &encode(libs)) {
            tracing::error!(path = %path.display(), error = %e, "could not keep the function libraries; they last until a restart");
        }
    }

    /// Checks a library against the others (its name, its functions' names).
    fn admit(
        libs: &BTreeMap<String, Arc<Library>>,
        lib: &Library,
        replace: bool,
    ) -> Result<(), String> {
        if libs.contains_key(&lib.name) && !replace {
            return Err(format!("ERR Library '{}' already exists", lib.name));
        }
        for f in &lib.functions {
            let taken = libs.values().any(|other| {
                other.name != lib.name && other.functions.iter().any(|g| g.name == f.name)
            });
            if taken {
                return Err(format!("ERR Function {} already exists", f.name));
            }
        }
        Ok(())
    }

    /// FUNCTION LOAD [REPLACE]: the library's name.
    pub fn load(&self, code: &Bytes, replace: bool) -> Result<String, String> {
        let lib = Self::build(code)?;
        let mut libs = self.libs.lock();
        Self::admit(&libs, &lib, replace)?;
        let name = lib.name.clone();
        libs.insert(name.clone(), Arc::new(lib));
        self.changed(&libs);
        Ok(name)
    }

    /// FUNCTION DELETE.
    pub fn delete(&self, name: &str) -> Result<(), String> {
        let mut libs = self.libs.lock();
        if libs.remove(name).is_none() {
            return Err("ERR Library not found".into());
        }
        self.changed(&libs);
        Ok(())
    }

    /// FUNCTION FLUSH.
    pub fn flush(&self) {
        let mut libs = self.libs.lock();
        libs.clear();
        self.changed(&libs);
    }

    /// FUNCTION DUMP.
    pub fn dump(&self) -> Vec<u8> {
        encode(&self.libs.lock())
    }

    /// FUNCTION RESTORE: every library of `payload` or none.
    pub fn restore(&self, payload: &[u8], how: Restore) -> Result<(), String> {
        let built = decode(payload)?
            .iter()
            .map(Self::build)
            .collect::<Result<Vec<_>, _>>()?;
        let mut libs = self.libs.lock();
        let mut next = if how == Restore::Flush {
            BTreeMap::new()
        } else {
            libs.clone()
        };
        for lib in built {
            Self::admit(&next, &lib, how != Restore::Append)?;
            next.insert(lib.name.clone(), Arc::new(lib));
        }
        *libs = next;
        self.changed(&libs);
        Ok(())
    }

    /// The function called `name` and its library.
    pub fn find(&self, name: &str) -> Option<(Arc<Library>, FunctionMeta)> {
        self.libs.lock().values().find_map(|lib| {
            let f = lib.functions.iter().find(|f| f.name == name)?;
            Some((lib.clone(), f.clone()))
        })
    }

    /// Every library, by name.
    pub fn list(&self) -> Vec<Arc<Library>> {
        self.libs.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(name: &str, func: &str) -> Bytes {
        Bytes::from(format!(
            "#!lua name={name}\nredis.register_function('{func}', function(keys, args) return 1 end)"
        ))
    }

    #[test]
    fn libraries_load_replace_delete_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("FUNCTIONS");
        let f = Functions::open(Some(file.clone()));
        assert_eq!(f.load(&lib("a", "fa"), false), Ok("a".into()));
        assert_eq!(
            f.load(&lib("a", "fa"), false),
            Err("ERR Library 'a' already exists".into())
        );
        assert_eq!(
            f.load(&lib("b", "fa"), false),
            Err("ERR Function fa already exists".into())
        );
        assert_eq!(f.load(&lib("a", "fa2"), true), Ok("a".into()));
        assert!(f.find("fa").is_none() && f.find("fa2").is_some());
        assert_eq!(
            f.load(&Bytes::from_static(b"return 1"), false),
            Err("ERR Missing library metadata".into())
        );
        let again = Functions::open(Some(file.clone()));
        assert!(again.find("fa2").is_some(), "kept across a restart");
        let dump = again.dump();
        again.flush();
        assert!(again.list().is_empty());
        again.restore(&dump, Restore::Append).expect("restore");
        assert!(again.find("fa2").is_some());
        assert!(
            again.restore(&dump, Restore::Append).is_err(),
            "exists already"
        );
        assert!(again.restore(b"junk", Restore::Flush).is_err());
        assert_eq!(again.delete("zz"), Err("ERR Library not found".into()));
        assert_eq!(again.delete("a"), Ok(()));
    }
}
