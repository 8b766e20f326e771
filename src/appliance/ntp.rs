//! The NTP servers set on the admin page: kept in `<data_dir>/ntp-servers`,
//! one per line, which the image's NTP script (root) reads, preferring it
//! to the provisioned list. An empty list removes the file: provisioning's
//! servers (or none) apply again.

use std::path::Path;

use crate::datadir::DataDir;

pub const FILE: &str = "ntp-servers";
pub const MAX_SERVERS: usize = 8;

/// A host name or an IP address: what OpenNTPD's `server` takes, and no
/// character the root-side script or its config file would treat specially.
pub fn check(server: &str) -> Result<(), String> {
    let ok_chars = server
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
    if server.is_empty() || server.len() > 253 {
        return Err("an NTP server is a host name or an IP address of 1 to 253 characters".into());
    }
    if !ok_chars || !server.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(format!(
            "'{server}' is not a host name or an IP address (letters, digits, '.', '-', ':')"
        ));
    }
    Ok(())
}

pub fn check_all(servers: &[String]) -> Result<(), String> {
    if servers.len() > MAX_SERVERS {
        return Err(format!("at most {MAX_SERVERS} NTP servers"));
    }
    servers.iter().try_for_each(|s| check(s))
}

pub fn load(data: &DataDir) -> Result<Vec<String>, String> {
    let Some(raw) = data.read_file(Path::new(FILE), 64 * 1024)? else {
        return Ok(Vec::new());
    };
    Ok(String::from_utf8_lossy(&raw)
        .lines()
        .map(str::trim)
        .filter(|l| check(l).is_ok())
        .map(String::from)
        .collect())
}

pub fn save(data: &DataDir, servers: &[String]) -> Result<(), String> {
    check_all(servers)?;
    if servers.is_empty() {
        return data.remove(Path::new(FILE));
    }
    let text: String = servers.iter().map(|s| format!("{s}\n")).collect();
    data.write_file(Path::new(FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_checked() {
        assert!(check("pool.ntp.org").is_ok());
        assert!(check("192.0.2.1").is_ok());
        assert!(check("2001:db8::1").is_ok());
        for bad in ["", "-x", ".x", "a b", "a;reboot", "x\nserver y", "a/b"] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
        let nine: Vec<String> = (0..9).map(|i| format!("ntp{i}.example")).collect();
        assert!(check_all(&nine).is_err());
    }

    #[test]
    fn saved_list_reads_back_and_empty_removes_it() {
        let dir = std::env::temp_dir().join(format!("og-ntp-{}", std::process::id()));
        let data = DataDir::open(&dir, None).unwrap();
        let list = vec!["ntp1.example".to_string(), "192.0.2.5".to_string()];
        save(&data, &list).unwrap();
        assert_eq!(load(&data).unwrap(), list);
        save(&data, &[]).unwrap();
        assert!(load(&data).unwrap().is_empty());
        assert!(!dir.join(FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
