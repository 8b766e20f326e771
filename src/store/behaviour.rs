//! The `behaviour` table: one fixed-size profile per user
//! (`behaviour::Profile`), written in the transaction that accepts or
//! holds a message, and when delivery reports failed recipients.

use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{Result, Store};
use crate::behaviour::{Profile, assess};

/// `user name -> Profile` (fixed binary layout, `behaviour::record::ENCODED_LEN`).
pub(super) const BEHAVIOUR: TableDefinition<&str, &[u8]> = TableDefinition::new("behaviour");

pub(super) fn create(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(BEHAVIOUR)?;
    Ok(())
}

pub(super) fn load(txn: &WriteTransaction, user: &str) -> Result<Profile> {
    Ok(txn
        .open_table(BEHAVIOUR)?
        .get(user)?
        .map(|v| Profile::decode(v.value()))
        .unwrap_or_default())
}

pub(super) fn save(txn: &WriteTransaction, user: &str, p: &Profile) -> Result<()> {
    txn.open_table(BEHAVIOUR)?
        .insert(user, p.encode().as_slice())?;
    Ok(())
}

/// A released message: its recipients join the user's contacts and its
/// text is vouched for (`Profile::release`).
pub(super) fn learn_release(
    txn: &WriteTransaction,
    user: &str,
    recipients: &[String],
    text: u128,
) -> Result<()> {
    if txn.open_table(BEHAVIOUR)?.get(user)?.is_none() {
        return Ok(());
    }
    let mut p = load(txn, user)?;
    for r in recipients {
        p.contacts.add(r);
    }
    p.release(text);
    save(txn, user, &p)
}

impl Store {
    /// The user's behaviour profile, if it has sent anything.
    pub fn behaviour_profile(&self, user: &str) -> Result<Option<Profile>> {
        let txn = self.read()?;
        Ok(txn
            .open_table(BEHAVIOUR)?
            .get(user)?
            .map(|v| Profile::decode(v.value())))
    }

    /// Counts recipients of `user` that failed or bounced. Not fsynced on
    /// its own (a lost count after a crash only weakens one signal); the
    /// next durable commit carries it.
    pub fn note_failed_recipients(&self, user: &str, n: u32, now: Timestamp) -> Result<()> {
        let mut txn = self.write()?;
        if txn.open_table(super::USERS)?.get(user)?.is_none() {
            return Ok(());
        }
        let mut p = load(&txn, user)?;
        assess::failed(&mut p, n, now);
        save(&txn, user, &p)?;
        txn.set_durability(redb::Durability::None);
        txn.commit()?;
        self.changed(super::Change::Profile(
            user.to_string(),
            super::ProfileChange::Failed(n, now),
        ));
        Ok(())
    }

    /// Forgets the user's recent holds (an admin unlocked it at `now`, so
    /// the evidence has been reviewed).
    pub fn clear_holds(&self, user: &str, now: Timestamp) -> Result<()> {
        let txn = self.write()?;
        let found = txn.open_table(BEHAVIOUR)?.get(user)?.is_some();
        if found {
            let mut p = load(&txn, user)?;
            p.holds = Default::default();
            save(&txn, user, &p)?;
        }
        txn.commit()?;
        if found {
            self.changed(super::Change::Profile(
                user.to_string(),
                super::ProfileChange::ClearHolds(now),
            ));
        }
        Ok(())
    }
}
