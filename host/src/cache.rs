//! The evaluator's output cache: node results by cache key, held within a byte budget. When an insert takes the
//! cache over its budget, the least recently used entries go first; a result larger than the whole budget is not
//! kept at all (the run that made it still uses it). Sizes count tensor storage (element count x element size),
//! once per storage within an entry; scalars, text and models count nothing.

use crate::exec::Outputs;
use std::collections::{HashMap, HashSet};
use subspace_sdk::Value;

pub type Key = [u8; 32];

/// Default budget: enough for the demo's sampled images and fits several times over, far below a workstation's RAM.
pub const DEFAULT_BUDGET: u64 = 4 << 30;

struct Entry {
    outputs: Outputs,
    bytes: u64,
    last_used: u64,
}

/// What the cache holds after a run, and what it let go during it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: u64,
    pub budget: u64,
    /// Entries evicted (or not kept because too large) since the counter was last taken.
    pub evicted: u64,
    /// The disk cache's figures, when the evaluator has one.
    pub disk: Option<crate::disk_cache::DiskStats>,
}

pub struct OutputCache {
    entries: HashMap<Key, Entry>,
    budget: u64,
    bytes: u64,
    clock: u64,
    evicted: u64,
}

impl OutputCache {
    pub fn new(budget: u64) -> Self {
        OutputCache { entries: HashMap::new(), budget, bytes: 0, clock: 0, evicted: 0 }
    }

    pub fn set_budget(&mut self, budget: u64) {
        self.budget = budget;
        self.evict_to(budget);
    }

    /// The outputs cached under `key`, marked as just used.
    pub fn get(&mut self, key: &Key) -> Option<Outputs> {
        self.clock += 1;
        let now = self.clock;
        self.entries.get_mut(key).map(|e| {
            e.last_used = now;
            e.outputs.clone()
        })
    }

    /// Keeps `outputs` under `key`, evicting least recently used entries to stay within the budget.
    pub fn insert(&mut self, key: Key, outputs: Outputs) {
        let bytes = outputs_bytes(&outputs);
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.bytes;
        }
        if bytes > self.budget {
            self.evicted += 1;
            return;
        }
        self.evict_to(self.budget - bytes);
        self.clock += 1;
        self.bytes += bytes;
        self.entries.insert(key, Entry { outputs, bytes, last_used: self.clock });
    }

    fn evict_to(&mut self, limit: u64) {
        if self.bytes <= limit {
            return;
        }
        let mut by_age: Vec<(u64, Key)> = self.entries.iter().map(|(k, e)| (e.last_used, *k)).collect();
        by_age.sort_unstable();
        for (_, k) in by_age {
            if self.bytes <= limit {
                break;
            }
            if let Some(e) = self.entries.remove(&k) {
                self.bytes -= e.bytes;
                self.evicted += 1;
            }
        }
    }

    /// Current contents, and the evictions counted since the last call (the counter restarts).
    pub fn take_stats(&mut self) -> CacheStats {
        let evicted = std::mem::take(&mut self.evicted);
        CacheStats { entries: self.entries.len(), bytes: self.bytes, budget: self.budget, evicted, disk: None }
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.entries.contains_key(key)
    }
}

/// Bytes of tensor storage an output list holds, each storage counted once.
pub fn outputs_bytes(outputs: &Outputs) -> u64 {
    let mut seen = HashSet::new();
    // Views of one storage (a node passing its input on) are counted once.
    let mut storage = |t: &subspace_sdk::TensorRef| -> u64 {
        let t = t.tensor();
        let bytes = (t.numel() as u64).saturating_mul(t.kind().elt_size_in_bytes() as u64);
        if seen.insert((t.data_ptr() as usize, bytes)) {
            bytes
        } else {
            0
        }
    };
    outputs
        .iter()
        .map(|v| match &v.value {
            Value::Tensor(t) | Value::Latents(t) | Value::Images(t) => storage(t),
            Value::Labels(l) => storage(&l.probs),
            Value::Bundle(b) => b.tensors.iter().map(|nt| storage(&nt.tensor)).fold(0u64, u64::saturating_add),
            Value::Text(s) => s.len() as u64,
            Value::Float(_) | Value::Int(_) | Value::Bool(_) | Value::Model(_) => 0,
        })
        .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use subspace_sdk::{NamedValue, TensorRef};
    use tch::{Kind, Tensor};

    fn floats(n: i64) -> Outputs {
        Arc::new(vec![NamedValue::new(
            "t",
            Value::Tensor(TensorRef::new(Tensor::zeros([n], (Kind::Float, tch::Device::Cpu)))),
        )])
    }

    #[test]
    fn sizes_count_storage_once() {
        let t = Tensor::zeros([100], (Kind::Float, tch::Device::Cpu));
        let two_views = Arc::new(vec![
            NamedValue::new("a", Value::Tensor(TensorRef::new(t.shallow_clone()))),
            NamedValue::new("b", Value::Latents(TensorRef::new(t))),
        ]);
        assert_eq!(outputs_bytes(&two_views), 400);
        assert_eq!(outputs_bytes(&floats(10)), 40);
    }

    #[test]
    fn least_recently_used_goes_first_and_the_budget_holds() {
        let mut c = OutputCache::new(1000);
        c.insert([1; 32], floats(100)); // 400 bytes
        c.insert([2; 32], floats(100));
        assert!(c.get(&[1; 32]).is_some()); // 1 is now more recent than 2
        c.insert([3; 32], floats(100)); // 1200 > 1000: 2 goes
        assert!(c.contains(&[1; 32]) && !c.contains(&[2; 32]) && c.contains(&[3; 32]));
        let s = c.take_stats();
        assert_eq!((s.entries, s.bytes, s.budget, s.evicted), (2, 800, 1000, 1));
        // Too large for the whole budget: not kept, counted as evicted, nothing else lost.
        c.insert([4; 32], floats(1000));
        assert!(!c.contains(&[4; 32]) && c.contains(&[1; 32]));
        assert_eq!(c.take_stats().evicted, 1);
        c.set_budget(400);
        let s = c.take_stats();
        assert_eq!((s.entries, s.bytes), (1, 400));
        assert!(c.contains(&[3; 32]), "the most recent entry stays");
    }
}
