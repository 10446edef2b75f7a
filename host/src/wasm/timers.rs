//! A room's pending timers: set, replace, cancel by id, fire in deadline order.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use roomhost_rules::checks;
use tokio::time::Instant;

/// A timer id chosen by the plugin.
pub type TimerId = u64;

/// Why a timer could not be set (the rules' error, shared with the SDK's
/// harness).
pub use roomhost_rules::checks::TooManyTimers;

/// The pending timers of one room, bounded in number.
#[derive(Debug, Clone)]
pub struct Timers {
    deadlines: HashMap<TimerId, Instant>,
    queue: BTreeSet<(Instant, TimerId)>,
    limit: usize,
}

impl Timers {
    /// An empty set that holds at most `limit` timers.
    pub fn new(limit: usize) -> Timers {
        Timers {
            deadlines: HashMap::new(),
            queue: BTreeSet::new(),
            limit,
        }
    }

    /// Sets timer `id` to fire `delay` from now, replacing a pending one.
    pub fn set(&mut self, id: TimerId, delay: Duration) -> Result<(), TooManyTimers> {
        checks::timer_fits(
            self.deadlines.contains_key(&id),
            self.deadlines.len(),
            self.limit,
        )?;
        self.cancel(id);
        let deadline = Instant::now() + delay.min(roomhost_rules::limits::MAX_TIMER_DELAY);
        self.deadlines.insert(id, deadline);
        self.queue.insert((deadline, id));
        Ok(())
    }

    /// Cancels timer `id` if it is pending.
    pub fn cancel(&mut self, id: TimerId) {
        if let Some(deadline) = self.deadlines.remove(&id) {
            self.queue.remove(&(deadline, id));
        }
    }

    /// The earliest deadline, if any timer is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.first().map(|(deadline, _)| *deadline)
    }

    /// Removes and returns the earliest timer due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerId> {
        let &(deadline, id) = self.queue.first()?;
        if deadline > now {
            return None;
        }
        self.queue.remove(&(deadline, id));
        self.deadlines.remove(&id);
        Some(id)
    }

    /// The most timers this set holds.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_order_and_replaces_by_id() {
        let mut timers = Timers::new(8);
        timers.set(1, Duration::from_millis(30)).unwrap();
        timers.set(2, Duration::from_millis(10)).unwrap();
        timers.set(1, Duration::from_millis(5)).unwrap();
        let later = Instant::now() + Duration::from_millis(50);
        assert_eq!(timers.pop_due(later), Some(1));
        assert_eq!(timers.pop_due(later), Some(2));
        assert_eq!(timers.pop_due(later), None);
        assert!(timers.is_empty());
    }

    #[test]
    fn cancel_removes_and_limit_is_enforced() {
        let mut timers = Timers::new(2);
        timers.set(1, Duration::from_secs(1)).unwrap();
        timers.set(2, Duration::from_secs(1)).unwrap();
        assert_eq!(
            timers.set(3, Duration::from_secs(1)),
            Err(TooManyTimers { limit: 2 })
        );
        timers.set(2, Duration::from_secs(2)).unwrap();
        timers.cancel(1);
        timers.set(3, Duration::from_secs(1)).unwrap();
        assert!(timers.pop_due(Instant::now()).is_none());
        assert!(timers.next_deadline().is_some());
    }

    #[test]
    fn huge_delays_are_clamped() {
        let mut timers = Timers::new(1);
        timers.set(7, Duration::MAX).unwrap();
        assert!(timers.next_deadline().is_some());
    }
}
