//! DKIM keys per sender domain (`dkim_keys`: domain -> DomainKeys JSON).
//! Private keys live here, in the store file the daemon alone can read
//! (the data directory is the run user's, the file 0600), so they share
//! its backups and its crash safety.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{Result, Store, from_json, to_json};
use crate::dkim::DomainKeys;

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("dkim_keys");

pub(super) fn create(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(KEYS)?;
    Ok(())
}

impl Store {
    pub fn dkim_keys(&self, domain: &str) -> Result<Option<DomainKeys>> {
        let txn = self.read()?;
        let t = txn.open_table(KEYS)?;
        t.get(domain)?.map(|v| from_json(v.value())).transpose()
    }

    /// Up to `limit` domains' keys after `after`, in domain order.
    pub fn dkim_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<super::Page<DomainKeys, String>> {
        let txn = self.read()?;
        let t = txn.open_table(KEYS)?;
        super::paging::by_name(&t, after, limit, |v| Ok(Some(from_json(v)?)))
    }

    /// Reads, changes and writes one domain's keys in one transaction;
    /// `change` gets the current keys (or None) and returns the new ones
    /// (None deletes), or an error that leaves the store as it was.
    pub fn dkim_update<E>(
        &self,
        domain: &str,
        change: impl FnOnce(Option<DomainKeys>) -> std::result::Result<Option<DomainKeys>, E>,
    ) -> Result<std::result::Result<Option<DomainKeys>, E>> {
        let txn = self.write()?;
        let out = {
            let mut t = txn.open_table(KEYS)?;
            let current = t.get(domain)?.map(|v| from_json(v.value())).transpose()?;
            match change(current) {
                Err(e) => return Ok(Err(e)),
                Ok(Some(keys)) => {
                    t.insert(domain, to_json(&keys)?.as_slice())?;
                    Some(keys)
                }
                Ok(None) => {
                    t.remove(domain)?;
                    None
                }
            }
        };
        txn.commit()?;
        Ok(Ok(out))
    }
}
