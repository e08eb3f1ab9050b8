//! Small state files the sidecar keeps in the data directory (function libraries,
//! the database map): replaced whole, so a crash leaves the old file or the new one.

use std::io;
use std::path::Path;

/// Replaces `path` with `bytes`: written beside it, synced, renamed over it, and the
/// directory synced so the rename itself survives a crash.
pub fn replace_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("STATE");
        replace_durably(&path, b"one").expect("first");
        replace_durably(&path, b"two").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}
