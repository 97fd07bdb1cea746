//! A bounded least-recently-used map from statement text to its analysis, so
//! a statement seen before costs one hash lookup.
//!
//! Entries live in a slab linked into a recency list by index: lookups,
//! inserts and evictions are O(1) and nothing is allocated once the slab is
//! full. The key is shared between the index and the slab through an `Arc`.

use std::collections::HashMap;
use std::sync::Arc;

const NIL: usize = usize::MAX;

struct Slot<V> {
    key: Arc<str>,
    value: V,
    /// Towards the most recently used end.
    newer: usize,
    /// Towards the least recently used end.
    older: usize,
}

pub(crate) struct Lru<V> {
    index: HashMap<Arc<str>, usize>,
    slots: Vec<Slot<V>>,
    newest: usize,
    oldest: usize,
    capacity: usize,
}

impl<V: Clone> Lru<V> {
    pub(crate) fn new(capacity: usize) -> Lru<V> {
        Lru {
            index: HashMap::new(),
            slots: Vec::new(),
            newest: NIL,
            oldest: NIL,
            capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The value for `key`, which becomes the most recently used.
    pub(crate) fn get(&mut self, key: &str) -> Option<V> {
        let slot = *self.index.get(key)?;
        self.touch(slot);
        Some(self.slots[slot].value.clone())
    }

    /// Caches `value` under `key` unless another caller got there first, and
    /// returns whichever value is now cached, so every caller shares one.
    pub(crate) fn insert(&mut self, key: &str, value: V) -> V {
        if let Some(existing) = self.get(key) {
            return existing;
        }
        if self.capacity == 0 {
            return value;
        }
        let key: Arc<str> = Arc::from(key);
        let slot = if self.slots.len() < self.capacity {
            self.slots.push(Slot {
                key: key.clone(),
                value: value.clone(),
                newer: NIL,
                older: NIL,
            });
            self.slots.len() - 1
        } else {
            // Full: the least recently used slot takes the new entry.
            let slot = self.oldest;
            self.unlink(slot);
            let old = std::mem::replace(&mut self.slots[slot].key, key.clone());
            self.index.remove(&old);
            self.slots[slot].value = value.clone();
            slot
        };
        self.index.insert(key, slot);
        self.push_newest(slot);
        value
    }

    fn touch(&mut self, slot: usize) {
        if self.newest != slot {
            self.unlink(slot);
            self.push_newest(slot);
        }
    }

    fn unlink(&mut self, slot: usize) {
        let (newer, older) = (self.slots[slot].newer, self.slots[slot].older);
        match newer {
            NIL => self.newest = older,
            n => self.slots[n].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.slots[o].newer = newer,
        }
        self.slots[slot].newer = NIL;
        self.slots[slot].older = NIL;
    }

    fn push_newest(&mut self, slot: usize) {
        self.slots[slot].older = self.newest;
        self.slots[slot].newer = NIL;
        match self.newest {
            NIL => self.oldest = slot,
            n => self.slots[n].newer = slot,
        }
        self.newest = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.get("a"), Some(1));
        lru.insert("c", 3);
        assert_eq!(lru.get("b"), None);
        assert_eq!(lru.get("a"), Some(1));
        assert_eq!(lru.get("c"), Some(3));
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn first_insert_wins() {
        let mut lru = Lru::new(2);
        assert_eq!(lru.insert("a", 1), 1);
        assert_eq!(lru.insert("a", 2), 1);
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let mut lru = Lru::new(0);
        assert_eq!(lru.insert("a", 1), 1);
        assert_eq!(lru.get("a"), None);
        assert_eq!(lru.len(), 0);
    }

    #[test]
    fn capacity_one_and_long_churn_stay_consistent() {
        let mut lru = Lru::new(1);
        for i in 0..100 {
            lru.insert(&i.to_string(), i);
            assert_eq!(lru.get(&i.to_string()), Some(i));
            assert_eq!(lru.len(), 1);
        }
        let mut lru = Lru::new(8);
        for i in 0..1000u32 {
            let key = (i % 13).to_string();
            let value = lru.get(&key).unwrap_or_else(|| lru.insert(&key, i % 13));
            assert_eq!(value, i % 13);
            assert!(lru.len() <= 8);
        }
    }
}
