//! Persistence of outgoing users and the index of IP-authorised ones.

use std::net::IpAddr;

use ipnet::IpNet;
use redb::{ReadableTable, WriteTransaction};

use super::{NETWORKS, Result, Store, USAGE, USERS, from_json, to_json};
use crate::users::{User, UserName};

/// Outcome of a bulk import.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportOutcome {
    pub added: Vec<String>,
    /// Users that already existed and were kept as they are.
    pub existing: Vec<String>,
}

impl Store {
    pub fn user(&self, name: &str) -> Result<Option<User>> {
        let txn = self.read()?;
        let table = txn.open_table(USERS)?;
        table.get(name)?.map(|v| from_json(v.value())).transpose()
    }

    pub fn users(&self) -> Result<Vec<User>> {
        let txn = self.read()?;
        let table = txn.open_table(USERS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(from_json(v.value())?);
        }
        Ok(out)
    }

    /// Up to `limit` users after the name `after`, in name order, those
    /// `keep` takes (see `paging`).
    pub fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&User) -> bool,
    ) -> Result<super::Page<User, String>> {
        let txn = self.read()?;
        let table = txn.open_table(USERS)?;
        super::paging::by_name(&table, after, limit, |v| {
            let u: User = from_json(v)?;
            Ok(keep(&u).then_some(u))
        })
    }

    /// Which of `names` are users already, in one read transaction.
    pub fn present(&self, names: &[String]) -> Result<Vec<bool>> {
        let txn = self.read()?;
        let table = txn.open_table(USERS)?;
        names
            .iter()
            .map(|n| Ok(table.get(n.as_str())?.is_some()))
            .collect()
    }

    /// Adds a user; `Ok(false)` if the name is taken.
    pub fn add_user(&self, user: &User) -> Result<bool> {
        let txn = self.write()?;
        let added = insert_new(&txn, user)?;
        txn.commit()?;
        if added {
            self.changed(super::Change::User(user.name.clone()));
        }
        Ok(added)
    }

    /// Adds every user whose name is free, in one transaction.
    pub fn import_users(&self, users: &[User]) -> Result<ImportOutcome> {
        let txn = self.write()?;
        let mut out = ImportOutcome::default();
        for u in users {
            if insert_new(&txn, u)? {
                out.added.push(u.name.clone());
            } else {
                out.existing.push(u.name.clone());
            }
        }
        txn.commit()?;
        for name in &out.added {
            self.changed(super::Change::User(name.clone()));
        }
        Ok(out)
    }

    /// Changes a user in place; `Ok(None)` if there is no such user.
    pub fn update_user(&self, name: &str, change: impl FnOnce(&mut User)) -> Result<Option<User>> {
        let txn = self.write()?;
        let updated = {
            let mut table = txn.open_table(USERS)?;
            let current: Option<User> =
                table.get(name)?.map(|v| from_json(v.value())).transpose()?;
            match current {
                None => None,
                Some(mut user) => {
                    change(&mut user);
                    table.insert(name, to_json(&user)?.as_slice())?;
                    Some(user)
                }
            }
        };
        txn.commit()?;
        if updated.is_some() {
            self.changed(super::Change::User(name.to_string()));
        }
        Ok(updated)
    }

    /// Deletes a user and its counters; `Ok(false)` if there was none.
    pub fn delete_user(&self, name: &str) -> Result<bool> {
        let txn = self.write()?;
        let existed = txn.open_table(USERS)?.remove(name)?.is_some();
        txn.open_table(USAGE)?.remove(name)?;
        txn.open_table(NETWORKS)?.remove(name)?;
        txn.open_table(super::behaviour::BEHAVIOUR)?.remove(name)?;
        txn.commit()?;
        if existed {
            self.changed(super::Change::User(name.to_string()));
        }
        Ok(existed)
    }

    /// The IP-authorised user covering `ip`, the most specific network first.
    pub fn network_user(&self, ip: IpAddr) -> Result<Option<User>> {
        let txn = self.read()?;
        let nets = txn.open_table(NETWORKS)?;
        let mut best: Option<(u8, String)> = None;
        for row in nets.iter()? {
            let (k, _) = row?;
            let name = k.value();
            let Some(net) = UserName::parse(name).ok().and_then(|n| n.network()) else {
                continue;
            };
            if net_contains(&net, ip) && best.as_ref().is_none_or(|(p, _)| net.prefix_len() > *p) {
                best = Some((net.prefix_len(), name.to_string()));
            }
        }
        drop(nets);
        let Some((_, name)) = best else {
            return Ok(None);
        };
        let users = txn.open_table(USERS)?;
        users
            .get(name.as_str())?
            .map(|v| from_json(v.value()))
            .transpose()
    }
}

/// An IPv4 client may arrive as an IPv4-mapped IPv6 address.
fn net_contains(net: &IpNet, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    net.contains(&ip)
}

impl Store {
    /// Writes a user record as another box of the fleet has it (`None`:
    /// deleted there), without telling the observer (it came from there).
    /// Returns whether anything changed.
    pub fn apply_remote_user(&self, name: &str, user: Option<&User>) -> Result<bool> {
        let txn = self.write()?;
        let changed = {
            let mut users = txn.open_table(USERS)?;
            let current = users.get(name)?.map(|v| v.value().to_vec());
            match user {
                None if current.is_none() => false,
                None => {
                    users.remove(name)?;
                    txn.open_table(USAGE)?.remove(name)?;
                    txn.open_table(NETWORKS)?.remove(name)?;
                    txn.open_table(super::behaviour::BEHAVIOUR)?.remove(name)?;
                    true
                }
                Some(u) => {
                    let json = to_json(u)?;
                    if current.as_deref() == Some(json.as_slice()) {
                        false
                    } else {
                        users.insert(name, json.as_slice())?;
                        if u.is_network() {
                            txn.open_table(NETWORKS)?.insert(name, ())?;
                        }
                        true
                    }
                }
            }
        };
        txn.commit()?;
        Ok(changed)
    }
}

fn insert_new(txn: &WriteTransaction, user: &User) -> Result<bool> {
    let mut users = txn.open_table(USERS)?;
    if users.get(user.name.as_str())?.is_some() {
        return Ok(false);
    }
    users.insert(user.name.as_str(), to_json(user)?.as_slice())?;
    if user.is_network() {
        txn.open_table(NETWORKS)?.insert(user.name.as_str(), ())?;
    }
    Ok(true)
}
