//! Persistence of the system settings.

use super::{Result, SETTINGS, Store, from_json, to_json};
use crate::settings::SystemSettings;

const KEY: &str = "system";

impl Store {
    /// The stored settings, or the defaults on a new store.
    pub fn settings(&self) -> Result<SystemSettings> {
        let txn = self.read()?;
        let table = txn.open_table(SETTINGS)?;
        match table.get(KEY)? {
            Some(v) => from_json(v.value()),
            None => Ok(SystemSettings::default()),
        }
    }

    pub fn put_settings(&self, s: &SystemSettings) -> Result<()> {
        self.write_settings(s)?;
        self.changed(super::Change::Settings);
        Ok(())
    }

    /// Stores settings another box of the fleet changed, without telling
    /// the observer.
    pub fn write_settings(&self, s: &SystemSettings) -> Result<()> {
        let txn = self.write()?;
        txn.open_table(SETTINGS)?
            .insert(KEY, to_json(s)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }
}
