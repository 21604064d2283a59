//! API accounting: every REST and SOAP call counts against a rolling 24-hour
//! limit, kept in one-minute buckets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const BUCKET: Duration = Duration::from_secs(60);
const WINDOW_BUCKETS: usize = 24 * 60;

#[derive(Debug)]
pub struct ApiUsage {
    limit: u64,
    /// (bucket start, calls in it), oldest first.
    buckets: VecDeque<(Instant, u64)>,
    used: u64,
}

impl ApiUsage {
    pub fn new(limit: u64) -> ApiUsage {
        ApiUsage {
            limit,
            buckets: VecDeque::new(),
            used: 0,
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((start, n)) = self.buckets.front().copied() {
            if now.duration_since(start) >= BUCKET * WINDOW_BUCKETS as u32 {
                self.buckets.pop_front();
                self.used -= n;
            } else {
                break;
            }
        }
    }

    /// Counts one call if the limit allows it. Returns false when the limit is used up.
    pub fn try_count(&mut self, now: Instant) -> bool {
        self.expire(now);
        if self.used >= self.limit {
            return false;
        }
        match self.buckets.back_mut() {
            Some((start, n)) if now.duration_since(*start) < BUCKET => *n += 1,
            _ => self.buckets.push_back((now, 1)),
        }
        self.used += 1;
        true
    }

    pub fn used(&mut self, now: Instant) -> u64 {
        self.expire(now);
        self.used
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    pub fn set_used(&mut self, used: u64, now: Instant) {
        self.buckets.clear();
        if used > 0 {
            self.buckets.push_back((now, used));
        }
        self.used = used;
    }

    /// The `Sforce-Limit-Info` header value.
    pub fn header(&mut self, now: Instant) -> String {
        format!("api-usage={}/{}", self.used(now), self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_until_the_limit_then_refuses() {
        let mut u = ApiUsage::new(3);
        let t = Instant::now();
        assert!(u.try_count(t));
        assert!(u.try_count(t));
        assert!(u.try_count(t));
        assert!(!u.try_count(t));
        assert_eq!(u.header(t), "api-usage=3/3");
    }

    #[test]
    fn calls_older_than_a_day_roll_off() {
        let mut u = ApiUsage::new(2);
        let t = Instant::now();
        assert!(u.try_count(t));
        assert!(u.try_count(t + Duration::from_secs(3600)));
        assert!(!u.try_count(t + Duration::from_secs(7200)));
        let next_day = t + Duration::from_secs(24 * 3600 + 1);
        assert_eq!(u.used(next_day), 1);
        assert!(u.try_count(next_day));
    }
}
