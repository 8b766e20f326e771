//! Per-user usage counters in the store (the `usage` table). The
//! counters themselves, each tagged with its window, are
//! `policy::usage::Usage`.

use redb::ReadableTable;

use super::{Result, Store, USAGE, from_json};
pub use crate::policy::usage::Usage;

impl Store {
    pub fn usage(&self, name: &str) -> Result<Usage> {
        let txn = self.read()?;
        let table = txn.open_table(USAGE)?;
        Ok(table
            .get(name)?
            .map(|v| from_json(v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every user's counters (the fleet adds them to the shared store).
    pub fn all_usage(&self) -> Result<Vec<(String, Usage)>> {
        let txn = self.read()?;
        let table = txn.open_table(USAGE)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), from_json(v.value())?));
        }
        Ok(out)
    }

    /// This box's random name in a fleet, made once and kept.
    pub fn fleet_box_id(&self) -> Result<u64> {
        const KEY: &str = "fleet_box_id";
        if let Some(id) = self.read()?.open_table(super::META)?.get(KEY)? {
            return Ok(id.value());
        }
        let id = {
            use rand::TryRngCore;
            rand::rngs::OsRng
                .try_next_u64()
                .map_err(|e| super::StoreError(format!("no randomness: {e}")))?
                | 1
        };
        let txn = self.write()?;
        txn.open_table(super::META)?.insert(KEY, id)?;
        txn.commit()?;
        Ok(id)
    }
}
