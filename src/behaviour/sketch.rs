//! Fixed-size sketches of what a user has done before: the addresses it
//! wrote to (a two-generation Bloom filter) and the networks it sent from
//! (a small least-recently-seen table). Both are hashed, so the stored
//! profile holds no addresses, and both have a fixed size whatever the
//! user does.

/// Bytes of one Bloom generation (3584 bits).
pub const GEN_BYTES: usize = 448;
/// Entries after which the current generation becomes the previous one:
/// at 300 entries and 3 probes the false "known" rate is about 1%.
pub const GEN_ENTRIES: u16 = 300;
const PROBES: u64 = 3;
/// Networks remembered per user.
pub const NETS: usize = 8;

/// FNV-1a, 64 bits: stable across Rust versions (the sketches are stored).
pub fn hash(data: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x100_0000_01b3);
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    // Final mix so that nearby inputs spread over the bit positions.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The addresses a user wrote to, remembered as two Bloom generations:
/// a lookup checks both, an insert goes into the current one, and when it
/// is full it replaces the previous one. So the filter stays accurate and
/// remembers roughly the last 300 to 600 distinct contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contacts {
    pub current: [u8; GEN_BYTES],
    pub previous: [u8; GEN_BYTES],
    pub current_entries: u16,
}

impl Default for Contacts {
    fn default() -> Self {
        Contacts {
            current: [0; GEN_BYTES],
            previous: [0; GEN_BYTES],
            current_entries: 0,
        }
    }
}

fn bits(address: &str) -> [usize; PROBES as usize] {
    let a = address.to_ascii_lowercase();
    let h1 = hash(a.as_bytes(), 1);
    let h2 = hash(a.as_bytes(), 2) | 1;
    let n = (GEN_BYTES * 8) as u64;
    let mut out = [0usize; PROBES as usize];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (h1.wrapping_add((i as u64).wrapping_mul(h2)) % n) as usize;
    }
    out
}

fn has(filter: &[u8; GEN_BYTES], b: &[usize]) -> bool {
    b.iter().all(|&i| filter[i / 8] & (1 << (i % 8)) != 0)
}

impl Contacts {
    pub fn knows(&self, address: &str) -> bool {
        let b = bits(address);
        has(&self.current, &b) || has(&self.previous, &b)
    }

    pub fn add(&mut self, address: &str) {
        let b = bits(address);
        if has(&self.current, &b) {
            return;
        }
        if self.current_entries >= GEN_ENTRIES {
            self.previous = self.current;
            self.current = [0; GEN_BYTES];
            self.current_entries = 0;
        }
        for i in b {
            self.current[i / 8] |= 1 << (i % 8);
        }
        self.current_entries += 1;
    }
}

/// The network a client address belongs to, as a hash: the /24 of an
/// IPv4 address, the /48 of an IPv6 one (what one site or ISP customer
/// usually holds).
pub fn network_of(ip: std::net::IpAddr) -> u32 {
    let key: Vec<u8> = match ip {
        std::net::IpAddr::V4(v4) => v4.octets()[..3].to_vec(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets()[..3].to_vec(),
            None => v6.octets()[..6].to_vec(),
        },
    };
    (hash(&key, 3) as u32).max(1)
}

/// An address as a non-zero hash (zero marks an empty slot).
pub fn address_of(ip: std::net::IpAddr) -> u32 {
    (hash(ip.to_string().as_bytes(), 4) as u32).max(1)
}

/// Networks seen: (hash, first day, last day). A network counts as known
/// from the day after it was first used, so an attacker's network stays
/// "new" for the whole day of the attack even after its first message got
/// through. The least recently used slot is replaced when the table is full.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks {
    pub slots: [(u32, u32, u32); NETS],
}

impl Networks {
    /// Any network first used before `today`.
    pub fn any_before(&self, today: u32) -> bool {
        self.slots.iter().any(|s| s.0 != 0 && s.1 < today)
    }

    /// Used on a day before `today`.
    pub fn knows(&self, net: u32, today: u32) -> bool {
        self.slots.iter().any(|s| s.0 == net && s.1 < today)
    }

    pub fn note(&mut self, net: u32, day: u32) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.0 == net) {
            s.2 = day;
            return;
        }
        if let Some(s) = self.slots.iter_mut().min_by_key(|s| (s.0 != 0, s.2)) {
            *s = (net, day, day);
        }
    }
}

/// A small set of non-zero hashes that stops growing when full (it then
/// reports its capacity, which is enough to say "at least this many").
pub fn insert_distinct(set: &mut [u32], h: u32) {
    if set.contains(&h) {
        return;
    }
    if let Some(slot) = set.iter_mut().find(|s| **s == 0) {
        *slot = h;
    }
}

pub fn distinct(set: &[u32]) -> u32 {
    set.iter().filter(|s| **s != 0).count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_remember_and_rotate() {
        let mut c = Contacts::default();
        for i in 0..250 {
            c.add(&format!("friend{i}@example.org"));
        }
        assert!((0..250).all(|i| c.knows(&format!("Friend{i}@example.org"))));
        let strangers = (0..1000)
            .filter(|i| c.knows(&format!("stranger{i}@elsewhere.test")))
            .count();
        assert!(
            strangers < 30,
            "false known rate too high: {strangers}/1000"
        );
        // Two more generations push the first contacts out.
        for i in 0..700 {
            c.add(&format!("later{i}@example.org"));
        }
        let kept = (0..250)
            .filter(|i| c.knows(&format!("friend{i}@example.org")))
            .count();
        assert!(kept < 30, "old contacts should age out, {kept} kept");
        assert!(c.knows("later699@example.org"));
    }

    #[test]
    fn networks_replace_least_recent() {
        let mut n = Networks::default();
        for i in 0..NETS as u32 {
            n.note(100 + i, i);
        }
        n.note(100, 50); // refreshed
        n.note(999, 60);
        assert!(n.knows(100, 61) && n.knows(999, 61) && !n.knows(101, 61));
        // Not known on the day it was first used.
        assert!(!n.knows(999, 60));
    }

    #[test]
    fn networks_group_addresses() {
        let a = network_of("192.0.2.7".parse().unwrap());
        assert_eq!(a, network_of("192.0.2.200".parse().unwrap()));
        assert_ne!(a, network_of("198.51.100.7".parse().unwrap()));
        assert_eq!(a, network_of("::ffff:192.0.2.9".parse().unwrap()));
    }
}
