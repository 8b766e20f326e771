//! What the admin face keeps: the admin password hash and the audit log
//! of admin actions (who, what, when), numbered in order.

use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Result, Store, from_json, to_json};

/// `"password" -> argon2id PHC string`
const ADMIN: TableDefinition<&str, &str> = TableDefinition::new("admin");
/// `sequence -> AuditEntry (JSON)`
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

const PASSWORD: &str = "password";
/// Audit entries kept; the oldest are dropped past this.
const AUDIT_KEEP: u64 = 100_000;

/// One audit entry (`GET /v1/audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub struct AuditEntry {
    #[serde(default)]
    #[cfg_attr(test, schema(required = true))]
    pub id: u64,
    #[cfg_attr(test, schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// `admin@<address>` on the LAN face, `root@control-socket` locally.
    pub who: String,
    /// `METHOD /path` or an event such as `login`.
    pub action: String,
    pub status: u16,
    /// Error message or a short summary; empty when nothing to add.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

pub(super) fn create(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(ADMIN)?;
    txn.open_table(AUDIT)?;
    Ok(())
}

impl Store {
    pub fn admin_password(&self) -> Result<Option<String>> {
        let txn = self.read()?;
        let t = txn.open_table(ADMIN)?;
        Ok(t.get(PASSWORD)?.map(|v| v.value().to_string()))
    }

    pub fn set_admin_password(&self, phc: &str) -> Result<()> {
        let txn = self.write()?;
        txn.open_table(ADMIN)?.insert(PASSWORD, phc)?;
        txn.commit()?;
        Ok(())
    }

    pub fn audit(&self, mut entry: AuditEntry) -> Result<u64> {
        let txn = self.write()?;
        let id = {
            let mut t = txn.open_table(AUDIT)?;
            let id = t.last()?.map_or(1, |(k, _)| k.value() + 1);
            entry.id = id;
            t.insert(id, to_json(&entry)?.as_slice())?;
            if id > AUDIT_KEEP {
                t.retain_in(..id - AUDIT_KEEP, |_, _| false)?;
            }
            id
        };
        txn.commit()?;
        Ok(id)
    }

    /// Up to `limit` audit entries older than the id `after`, newest
    /// first, those whose who, action or detail contain `filter`.
    pub fn audit_page(
        &self,
        filter: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<super::Page<AuditEntry, u64>> {
        let txn = self.read()?;
        let t = txn.open_table(AUDIT)?;
        let filter = filter.map(str::to_lowercase);
        super::paging::by_number(&t, after, true, limit, |v| {
            let e: AuditEntry = from_json(v)?;
            let hit = filter.as_deref().is_none_or(|f| {
                [&e.who, &e.action, &e.detail]
                    .iter()
                    .any(|s| s.to_lowercase().contains(f))
            });
            Ok(hit.then_some(e))
        })
    }
}
