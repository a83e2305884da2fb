//! The verification cache. A key holds everything that decides an outcome: the policy's
//! fingerprint (file digest and the authority set with its key material), the repository and the
//! subject digest. Only successes are stored, for `ttl`; registry errors are remembered for a
//! few seconds (`negative_ttl`) so a failing registry is not hammered, and never as a success. A
//! policy change (a new revocation) changes the fingerprint, so the next request misses.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub policy: String,
    pub repository: String,
    pub digest: String,
}

struct Entry<V> {
    value: V,
    expires: Instant,
}

/// A bounded TTL map. When full, expired entries go first, then the entries closest to
/// expiry.
pub struct TtlCache<K, V> {
    map: Mutex<HashMap<K, Entry<V>>>,
    ttl: Duration,
    capacity: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            map: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, k: &K) -> Option<V> {
        self.get_at(k, Instant::now())
    }

    fn get_at(&self, k: &K, now: Instant) -> Option<V> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(k) {
            Some(e) if e.expires > now => Some(e.value.clone()),
            Some(_) => {
                m.remove(k);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, k: K, v: V) {
        self.insert_at(k, v, Instant::now())
    }

    fn insert_at(&self, k: K, value: V, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.capacity && !m.contains_key(&k) {
            m.retain(|_, e| e.expires > now);
            if m.len() >= self.capacity {
                // Drop the eighth closest to expiry (amortises the scan).
                let mut exp: Vec<Instant> = m.values().map(|e| e.expires).collect();
                exp.sort_unstable();
                let cut = exp[(exp.len() / 8).min(exp.len() - 1)];
                m.retain(|_, e| e.expires > cut);
            }
        }
        m.insert(
            k,
            Entry {
                value,
                expires: now + self.ttl,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_stays_bounded() {
        let c: TtlCache<u32, u32> = TtlCache::new(Duration::from_secs(10), 16);
        let t0 = Instant::now();
        c.insert_at(1, 10, t0);
        assert_eq!(c.get_at(&1, t0 + Duration::from_secs(9)), Some(10));
        assert_eq!(c.get_at(&1, t0 + Duration::from_secs(10)), None);
        for i in 0..1000 {
            c.insert_at(i, i, t0 + Duration::from_millis(i as u64));
        }
        assert!(c.len() <= 16, "{}", c.len());
        // The newest survive.
        assert_eq!(c.get_at(&999, t0 + Duration::from_secs(1)), Some(999));
        let off: TtlCache<u32, u32> = TtlCache::new(Duration::ZERO, 16);
        off.insert(1, 1);
        assert!(off.is_empty(), "ttl 0 disables the cache");
    }

    #[test]
    fn key_covers_policy_repository_and_digest() {
        let c: TtlCache<Key, bool> = TtlCache::new(Duration::from_secs(60), 16);
        let k = |p: &str, r: &str, d: &str| Key {
            policy: p.into(),
            repository: r.into(),
            digest: d.into(),
        };
        c.insert(k("p1", "r", "d"), true);
        assert!(c.get(&k("p1", "r", "d")).is_some());
        assert!(c.get(&k("p2", "r", "d")).is_none(), "another policy");
        assert!(c.get(&k("p1", "r2", "d")).is_none(), "another repository");
        assert!(c.get(&k("p1", "r", "d2")).is_none(), "another digest");
    }
}
