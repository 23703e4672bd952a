//! A map keyed by u32 ids (relation OIDs, type OIDs, xids): a Vec sorted by id.
//!
//! Why not `HashMap`: these maps hold a few to a few hundred entries, are read by binary search
//! (once per row, for the relation) and written only when a Relation, Type or streamed
//! transaction arrives. Each `HashMap` value type instantiates hashbrown's table code again in
//! the .wasm (four copies of its rehash alone were ~4 KB); this is one small loop per type.

/// A map from u32 ids to `V`, in id order.
#[derive(Debug, Clone)]
#[doc(hidden)] // public for walcast-wasm's maps
pub struct IdMap<V> {
    entries: Vec<(u32, V)>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            entries: Vec::new(),
        }
    }
}

impl<V> IdMap<V> {
    fn slot(&self, id: u32) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |e| e.0)
    }

    pub fn get(&self, id: &u32) -> Option<&V> {
        self.slot(*id).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, id: &u32) -> Option<&mut V> {
        self.slot(*id).ok().map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, id: &u32) -> bool {
        self.slot(*id).is_ok()
    }

    /// Inserts or replaces; returns the value it replaced.
    pub fn insert(&mut self, id: u32, value: V) -> Option<V> {
        match self.slot(id) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (id, value));
                None
            }
        }
    }

    pub fn remove(&mut self, id: &u32) -> Option<V> {
        self.slot(*id).ok().map(|i| self.entries.remove(i).1)
    }

    /// The value for `id`, inserted as `V::default()` first if absent.
    pub fn get_or_default(&mut self, id: u32) -> &mut V
    where
        V: Default,
    {
        let i = match self.slot(id) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (id, V::default()));
                i
            }
        };
        &mut self.entries[i].1
    }

    pub fn keys(&self) -> impl Iterator<Item = &u32> {
        self.entries.iter().map(|e| &e.0)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|e| &e.1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<V> Extend<(u32, V)> for IdMap<V> {
    fn extend<I: IntoIterator<Item = (u32, V)>>(&mut self, items: I) {
        for (id, value) in items {
            self.insert(id, value);
        }
    }
}

impl<V> IntoIterator for IdMap<V> {
    type Item = (u32, V);
    type IntoIter = std::vec::IntoIter<(u32, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::IdMap;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Any sequence of inserts, removes and lookups does what a BTreeMap does.
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec((0u8..4, 0u32..64, any::<u16>()), 0..200)) {
            let mut ours = IdMap::default();
            let mut model = BTreeMap::new();
            for (op, id, v) in ops {
                match op {
                    0 => prop_assert_eq!(ours.insert(id, v), model.insert(id, v)),
                    1 => prop_assert_eq!(ours.remove(&id), model.remove(&id)),
                    2 => {
                        *ours.get_or_default(id) += 1u16.min(v);
                        *model.entry(id).or_default() += 1u16.min(v);
                    }
                    _ => prop_assert_eq!(ours.get(&id), model.get(&id)),
                }
                prop_assert_eq!(ours.len(), model.len());
            }
            let pairs: Vec<(u32, u16)> = ours.into_iter().collect();
            prop_assert_eq!(pairs, model.into_iter().collect::<Vec<_>>());
        }
    }
}
