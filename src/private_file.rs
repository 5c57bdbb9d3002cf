//! Files only their owner may read (signing keys, client secrets in folder mode), written
//! so that a crash or a concurrent writer never leaves a partial or world-readable file.

use std::path::Path;

/// Creates `path` (0600) with `bytes` unless it exists; false when another process won.
/// The content appears atomically: readers never see a partial file.
pub fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let tmp = write_temp(path, bytes)?;
    // link(2) fails if the target exists: an atomic create-if-absent.
    let created = match std::fs::hard_link(&tmp, path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::remove_file(&tmp)?;
    Ok(created)
}

/// Writes a file readable only by its owner (0600), atomically (temp file + rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A synced 0600 temporary file beside `path`, with a name no other process uses.
fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp-{}-{}", std::process::id(), crate::secrets::random_token(6)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(tmp)
}
