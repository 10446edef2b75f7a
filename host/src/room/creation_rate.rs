//! Room creation per client address (`room_creations_per_minute`): a token
//! bucket per address, so one client cannot churn the room table however
//! many connections or requests it opens.
//!
//! IPv6 addresses count per /64 (one subscriber's block). The table of
//! addresses is bounded: full buckets are forgotten first, and an address
//! that finds the table full of busy ones is let through rather than locked
//! out with everyone else.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

/// Addresses tracked at once.
const MAX_ADDRESSES: usize = 65_536;

/// Token buckets of room creations, per address.
pub(crate) struct CreationRate {
    per_minute: f64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_address: HashMap<IpAddr, Bucket>,
    /// When full buckets were last forgotten: a sweep walks the whole
    /// table, so it runs at most once per [`PRUNE_EVERY`].
    pruned: Option<Instant>,
}

/// How often a full table may be swept for forgettable buckets.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl CreationRate {
    /// Allows `per_minute` creations per address per minute, all at once
    /// when the bucket is full.
    pub(crate) fn new(per_minute: usize) -> CreationRate {
        CreationRate {
            per_minute: per_minute as f64,
            buckets: Mutex::new(Buckets {
                by_address: HashMap::new(),
                pruned: None,
            }),
        }
    }

    /// Takes one creation for `address` at `now`; false when its bucket is
    /// empty.
    pub(crate) fn try_take(&self, address: IpAddr, now: Instant) -> bool {
        let key = key(address);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Buckets { by_address, pruned } = &mut *buckets;
        if !by_address.contains_key(&key) && by_address.len() >= MAX_ADDRESSES {
            if pruned.is_none_or(|last| now.saturating_duration_since(last) >= PRUNE_EVERY) {
                *pruned = Some(now);
                by_address.retain(|_, bucket| self.refilled(*bucket, now) < self.per_minute);
            }
            if by_address.len() >= MAX_ADDRESSES {
                tracing::debug!("room creation rate table full; not limiting a new address");
                return true;
            }
        }
        let bucket = by_address.entry(key).or_insert(Bucket {
            tokens: self.per_minute,
            updated: now,
        });
        let tokens = self.refilled(*bucket, now);
        if tokens < 1.0 {
            return false;
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            updated: now,
        };
        true
    }

    /// The bucket's tokens at `now`.
    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute)
    }
}

/// IPv4 (also when mapped into IPv6) as is; IPv6 by its /64.
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_empties_and_refills_at_the_rate() {
        let rate = CreationRate::new(2);
        let start = Instant::now();
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let two: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(rate.try_take(one, start));
        assert!(rate.try_take(one, start));
        assert!(!rate.try_take(one, start));
        assert!(rate.try_take(two, start), "other addresses have their own");
        // Two per minute: one more after 30 s.
        let later = start + Duration::from_secs(30);
        assert!(rate.try_take(one, later));
        assert!(!rate.try_take(one, later));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let rate = CreationRate::new(1);
        let now = Instant::now();
        assert!(rate.try_take("2001:db8::1".parse().unwrap(), now));
        assert!(!rate.try_take("2001:db8::ffff:2".parse().unwrap(), now));
        assert!(rate.try_take("2001:db8:0:1::1".parse().unwrap(), now));
        assert!(rate.try_take("::ffff:10.0.0.9".parse().unwrap(), now));
        assert!(!rate.try_take("10.0.0.9".parse().unwrap(), now));
    }
}
