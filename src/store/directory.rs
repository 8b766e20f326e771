//! The directory of protected (incoming) domains and their incoming
//! users. It only names them: 'Import from incoming users' turns them into
//! outgoing users in one step.

use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Result, Store, from_json, to_json};

/// `domain -> Incoming (JSON)`
const DOMAINS: TableDefinition<&str, &[u8]> = TableDefinition::new("incoming_domains");
/// `local@domain -> Incoming (JSON)`
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("incoming_users");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    pub name: String,
    pub added: Timestamp,
}

/// What a bulk change did.
#[derive(Debug, Default, Serialize)]
pub struct DirectoryOutcome {
    pub added: Vec<String>,
    pub existing: Vec<String>,
    pub domains_added: Vec<String>,
}

pub(super) fn create(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(DOMAINS)?;
    txn.open_table(USERS)?;
    Ok(())
}

fn list(txn: &redb::ReadTransaction, def: TableDefinition<&str, &[u8]>) -> Result<Vec<Incoming>> {
    let t = txn.open_table(def)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(from_json(row?.1.value())?);
    }
    Ok(out)
}

impl Store {
    pub fn incoming_domains(&self) -> Result<Vec<Incoming>> {
        list(&self.read()?, DOMAINS)
    }

    pub fn incoming_users(&self) -> Result<Vec<Incoming>> {
        list(&self.read()?, USERS)
    }

    /// How many protected domains and users there are (redb keeps the
    /// lengths).
    pub fn incoming_counts(&self) -> Result<(u64, u64)> {
        use redb::ReadableTableMetadata;
        let txn = self.read()?;
        Ok((
            txn.open_table(DOMAINS)?.len()?,
            txn.open_table(USERS)?.len()?,
        ))
    }

    /// Up to `limit` protected domains after `after`, in name order.
    pub fn incoming_domains_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<super::Page<Incoming, String>> {
        let txn = self.read()?;
        let t = txn.open_table(DOMAINS)?;
        super::paging::by_name(&t, after, limit, |v| Ok(Some(from_json(v)?)))
    }

    /// Up to `limit` incoming users after `after`, in name order.
    pub fn incoming_users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<super::Page<Incoming, String>> {
        let txn = self.read()?;
        let t = txn.open_table(USERS)?;
        super::paging::by_name(&t, after, limit, |v| Ok(Some(from_json(v)?)))
    }

    /// Adds a domain; `Ok(false)` if it is already there.
    pub fn add_incoming_domain(&self, domain: &str, now: Timestamp) -> Result<bool> {
        let txn = self.write()?;
        let added = {
            let mut t = txn.open_table(DOMAINS)?;
            let fresh = t.get(domain)?.is_none();
            if fresh {
                let v = Incoming {
                    name: domain.into(),
                    added: now,
                };
                t.insert(domain, to_json(&v)?.as_slice())?;
            }
            fresh
        };
        txn.commit()?;
        Ok(added)
    }

    /// Deletes a domain and its incoming users; `None` if it was not there,
    /// else how many users went with it.
    pub fn delete_incoming_domain(&self, domain: &str) -> Result<Option<usize>> {
        let txn = self.write()?;
        let gone = {
            if txn.open_table(DOMAINS)?.remove(domain)?.is_none() {
                None
            } else {
                let suffix = format!("@{domain}");
                let mut users = txn.open_table(USERS)?;
                let mut gone = 0usize;
                users.retain(|k, _| {
                    let keep = !k.ends_with(&suffix);
                    gone += usize::from(!keep);
                    keep
                })?;
                Some(gone)
            }
        };
        txn.commit()?;
        Ok(gone)
    }

    /// Adds incoming users (canonical `local@domain`) in one transaction;
    /// their domains are added too when `add_domains`, else a user of an
    /// unknown domain is an error naming it.
    pub fn add_incoming_users(
        &self,
        names: &[String],
        add_domains: bool,
        now: Timestamp,
    ) -> Result<std::result::Result<DirectoryOutcome, String>> {
        let txn = self.write()?;
        let mut out = DirectoryOutcome::default();
        {
            let mut domains = txn.open_table(DOMAINS)?;
            let mut users = txn.open_table(USERS)?;
            for name in names {
                let domain = name.rsplit_once('@').map_or("", |(_, d)| d);
                if domains.get(domain)?.is_none() {
                    if !add_domains {
                        return Ok(Err(format!(
                            "{domain} is not a protected domain: add it first"
                        )));
                    }
                    let v = Incoming {
                        name: domain.into(),
                        added: now,
                    };
                    domains.insert(domain, to_json(&v)?.as_slice())?;
                    out.domains_added.push(domain.into());
                }
                if users.get(name.as_str())?.is_some() {
                    out.existing.push(name.clone());
                    continue;
                }
                let v = Incoming {
                    name: name.clone(),
                    added: now,
                };
                users.insert(name.as_str(), to_json(&v)?.as_slice())?;
                out.added.push(name.clone());
            }
        }
        txn.commit()?;
        Ok(Ok(out))
    }

    pub fn delete_incoming_user(&self, name: &str) -> Result<bool> {
        let txn = self.write()?;
        let gone = txn.open_table(USERS)?.remove(name)?.is_some();
        txn.commit()?;
        Ok(gone)
    }
}
