//! The caches' bounds (issue 23): every cache is bounded by the bytes of what it holds as
//! well as by a count, whatever the size of its entries, and an entry is never returned past
//! its time to live.

use std::time::Duration;

use gatehouse::decide::cache::{Budget, Expiring, Weight};
use proptest::prelude::*;

/// A value of a given weight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sized(u64, u8);

impl Weight for Sized {
    fn weight(&self) -> u64 {
        self.0
    }
}

#[test]
fn an_entry_is_returned_within_its_time_to_live_and_never_after() {
    let kept = Expiring::new(Budget::new(4, 1 << 20), Duration::from_secs(3600));
    kept.insert([1; 32], Sized(10, 7));
    assert_eq!(kept.get(&[1; 32]), Some(Sized(10, 7)));
    assert_eq!(kept.get(&[2; 32]), None);
    let expired = Expiring::new(Budget::new(4, 1 << 20), Duration::ZERO);
    expired.insert([1; 32], Sized(10, 7));
    assert_eq!(expired.get(&[1; 32]), None);
    assert!(expired.is_empty(), "an expired entry met is removed");
}

#[test]
fn a_budget_of_nothing_keeps_nothing() {
    for budget in [Budget::NONE, Budget::new(0, 1 << 20), Budget::new(16, 0)] {
        let none = Expiring::new(budget, Duration::from_secs(3600));
        none.insert([1; 32], Sized(1, 7));
        assert_eq!(none.get(&[1; 32]), None, "{budget:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the entries weigh, a cache holds at most its count and its bytes, and what
    /// it returns is what was stored under that key.
    #[test]
    fn a_cache_keeps_to_its_count_and_its_bytes(
        count in 1u64..64,
        bytes in 1u64..(1 << 20),
        weights in prop::collection::vec(0u64..(1 << 18), 1..400),
    ) {
        let cache = Expiring::new(Budget::new(count, bytes), Duration::from_secs(3600));
        let key = |i: usize| {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            key
        };
        for (i, weight) in weights.iter().enumerate() {
            cache.insert(key(i), Sized(*weight, (i % 256) as u8));
            if let Some(found) = cache.get(&key(i)) {
                prop_assert_eq!(found, Sized(*weight, (i % 256) as u8));
            }
        }
        // What is held, weighed here rather than by the cache's own account.
        let held: Vec<Sized> = (0..weights.len()).filter_map(|i| cache.get(&key(i))).collect();
        let held_bytes: u64 = held.iter().map(|s| s.0).sum();
        prop_assert!(held.len() as u64 <= count, "{} entries of {count}", held.len());
        prop_assert!(held_bytes <= bytes, "{held_bytes} bytes of {bytes}");
    }
}
