//! A watched file as the source of a document: read again each poll, and
//! reported unchanged when its bytes are, so an unchanged bundle costs a
//! read and a hash, not a parse.

use std::path::Path;

use super::http::Fetched;
use crate::error::FetchError;

/// Reads `path` (at most `max_bytes`) on the blocking pool, where a slow
/// or hung file system stalls no request; `etag` is the digest of the
/// bytes read last time.
pub(super) async fn read(
    path: &Path,
    etag: Option<&str>,
    max_bytes: usize,
) -> Result<Fetched, FetchError> {
    let (owned, etag) = (path.to_path_buf(), etag.map(str::to_owned));
    let read = move || read_now(&owned, etag.as_deref(), max_bytes);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(read).await.unwrap_or_else(|e| {
            Err(FetchError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        }),
        Err(_) => read(),
    }
}

fn read_now(path: &Path, etag: Option<&str>, max_bytes: usize) -> Result<Fetched, FetchError> {
    let error = |message: String| FetchError::File {
        path: path.display().to_string(),
        message,
    };
    // The size is checked first so that a huge or endless file (a FIFO,
    // /dev/zero) is never read whole.
    let meta = std::fs::metadata(path).map_err(|e| error(e.to_string()))?;
    if !meta.is_file() {
        return Err(error("not a regular file".into()));
    }
    if meta.len() > max_bytes as u64 {
        return Err(FetchError::TooLarge {
            url: format!("file:{}", path.display()),
            limit: max_bytes,
        });
    }
    let body = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    if body.len() > max_bytes {
        return Err(FetchError::TooLarge {
            url: format!("file:{}", path.display()),
            limit: max_bytes,
        });
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
    let digest = svcauth_core::b64::encode(digest.as_ref());
    if etag == Some(digest.as_str()) {
        return Ok(Fetched::NotModified { max_age: None });
    }
    Ok(Fetched::Body {
        body,
        max_age: None,
        etag: Some(digest),
    })
}
