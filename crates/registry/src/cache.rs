//! A bounded cache for hot data the engine can always fetch again.

use std::collections::HashMap;
use std::hash::Hash;

/// A map that holds at most about `2 * generation` entries: entries live in
/// a young and an old generation; a hit in the old one moves the entry to
/// the young one, and when the young one is full the old one is dropped.
/// So recently used entries stay, and memory never grows with the number
/// of keys ever seen. Nothing in it is authoritative: a miss means "go and
/// fetch it".
#[derive(Debug)]
pub(crate) struct Generations<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    generation: usize,
}

impl<K: Eq + Hash, V> Generations<K, V> {
    /// A cache of generations of `generation` entries (at least 1).
    pub fn new(generation: usize) -> Generations<K, V> {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
            generation: generation.max(1),
        }
    }

    /// The entry for `key`, refreshed.
    pub fn get(&mut self, key: &K) -> Option<&V>
    where
        K: Clone,
    {
        if !self.young.contains_key(key) {
            let value = self.old.remove(key)?;
            self.insert(key.clone(), value);
        }
        self.young.get(key)
    }

    /// The entry for `key` without refreshing it.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.young.get(key).or_else(|| self.old.get(key))
    }

    /// Adds or replaces the entry for `key`.
    pub fn insert(&mut self, key: K, value: V) {
        if self.young.len() >= self.generation && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.old.remove(&key);
        self.young.insert(key, value);
    }

    /// Removes the entry for `key`.
    pub fn remove(&mut self, key: &K) {
        self.young.remove(key);
        self.old.remove(key);
    }

    /// How many entries it holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_two_generations_and_keeps_what_is_used() {
        let mut cache = Generations::new(4);
        for i in 0..100 {
            cache.insert(i, i * 10);
            // Key 0 is used all the time, so it stays.
            assert_eq!(cache.get(&0), Some(&0));
            assert!(cache.len() <= 8, "{} entries", cache.len());
        }
        assert_eq!(cache.peek(&99), Some(&990));
        assert_eq!(cache.peek(&1), None, "an old entry unused was dropped");
        assert_eq!(cache.get(&1000), None);
    }
}
