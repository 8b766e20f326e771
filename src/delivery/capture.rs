//! Capture mode (`[delivery] mode = "capture"`): each message is written
//! to `<data_dir>/capture/<queue id>.eml` instead of being sent, with its
//! envelope in two header lines on top, and counted delivered. `--dev`
//! and the unprovisioned appliance use it, so trying Outguard never looks
//! anything up or connects anywhere.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::queue_id;

/// Writes one message (synced, then renamed into place, so a file that
/// exists is whole) and returns its path.
pub fn write(
    dir: &Path,
    id: u64,
    sender: &str,
    recipients: &[String],
    body: &[u8],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.eml", queue_id(id)));
    let tmp = dir.join(format!(".{}.tmp", queue_id(id)));
    let mut f = std::fs::File::create(&tmp)?;
    write!(
        f,
        "Return-Path: <{sender}>\r\nX-Outguard-Captured-For: {}\r\n",
        recipients
            .iter()
            .map(|r| format!("<{r}>"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    f.write_all(body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_envelope_and_body() {
        let dir = std::env::temp_dir().join(format!("og-capture-{}", std::process::id()));
        let p = super::write(
            &dir,
            7,
            "a@x.example",
            &["b@y.example".into()],
            b"Subject: t\r\n\r\nhi\r\n",
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "Return-Path: <a@x.example>\r\nX-Outguard-Captured-For: <b@y.example>\r\nSubject: t\r\n\r\nhi\r\n"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
