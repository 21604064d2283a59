//! When to send: the wait chosen from the arrival rate and the latency budget.
//!
//! Every record must be in Salesforce within the budget of its
//! acknowledgement (default 500 ms). Within that, the fewer calls the
//! better: a call carries up to 200 records, so the worker waits as long as
//! the budget allows when more events are expected in the meantime, and
//! sends at once when they are not (a trickle) or when a call is full.
//! Above the flood rate (config `flood_events_per_second`, 1,500 by
//! default: a backlog replayed, an import) holding the budget would write
//! each request once per version: the worker then waits for the flood to
//! pass, so that each request's versions coalesce into one write.
//!
//! The wait leaves room for the lookup and the write that follow it (the
//! slowest recent ones) and a margin for what the estimates miss. The
//! margin learns from what was written: a step whose oldest record landed
//! late (past 90% of the budget) widens it at once; steps well within the
//! budget (under 75%) narrow it a little at a time, down to a floor. So on a
//! quick machine the worker waits longer and each call carries more, and on
//! a busy one it waits less and keeps the budget.
//!
//! Pure: the worker feeds it the arrival counter, the duration of each
//! step and how late its records were written, and asks it what to do.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the worker does next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Claim and send now.
    Send,
    /// Wait at most this long (sooner if a call's worth arrives), then ask again.
    Wait(Duration),
    /// Arrivals outpace what the connection can write: wait for the flood to pass.
    Flood,
}

/// How quickly the arrival rate forgets (seconds).
const RATE_TAU: f64 = 0.5;
/// Steps remembered for the step-time estimate.
const STEPS: usize = 16;
/// How late a turn may see a deadline (the worker looks every 20 ms).
const TURN: Duration = Duration::from_millis(25);

#[derive(Debug)]
pub struct Pace {
    budget: Duration,
    batch: usize,
    /// Events per second, smoothed.
    rate: f64,
    last: Option<(Instant, u64)>,
    /// How long recent steps took (claim to recorded), newest last.
    steps: VecDeque<Duration>,
    /// The same steps' times per API call they made.
    per_call: VecDeque<Duration>,
    /// How long recent warms that asked Salesforce took, newest last.
    warms: VecDeque<Duration>,
    /// Events per second from which it is a flood.
    flood_rate: f64,
    /// Room kept for what the estimates miss; learnt from [`Pace::wrote`].
    margin: Duration,
}

impl Pace {
    pub fn new(budget: Duration, batch: usize, flood_rate: f64) -> Pace {
        Pace {
            budget,
            batch: batch.max(1),
            rate: 0.0,
            last: None,
            steps: VecDeque::with_capacity(STEPS),
            per_call: VecDeque::with_capacity(STEPS),
            warms: VecDeque::with_capacity(STEPS),
            flood_rate,
            margin: budget / 5,
        }
    }

    /// The oldest record a step wrote waited this long since its
    /// acknowledgement. Lateness far past the budget says nothing of the
    /// pace (a flood coalescing, a retry after an outage) and is ignored.
    pub fn wrote(&mut self, oldest: Duration) {
        let b = self.budget;
        if oldest > b * 2 {
            return;
        }
        self.margin = if oldest > b * 9 / 10 {
            (self.margin + b / 10).min(b / 2)
        } else if oldest < b * 3 / 4 {
            self.margin.saturating_sub(b / 50).max(b / 20)
        } else {
            self.margin
        };
    }

    /// Events accepted so far (a counter that only grows), read at `now`.
    pub fn arrivals(&mut self, total: u64, now: Instant) {
        if let Some((t, n)) = self.last {
            let dt = now.duration_since(t).as_secs_f64();
            if dt < 0.005 {
                return;
            }
            let inst = total.saturating_sub(n) as f64 / dt;
            let a = 1.0 - (-dt / RATE_TAU).exp();
            self.rate += a * (inst - self.rate);
        }
        self.last = Some((now, total));
    }

    /// A step took this long, from claim to its results recorded, and
    /// made `calls` API calls.
    pub fn step_took(&mut self, d: Duration, calls: u64) {
        if self.steps.len() == STEPS {
            self.steps.pop_front();
            self.per_call.pop_front();
        }
        self.steps.push_back(d);
        self.per_call
            .push_back(d / calls.clamp(1, u32::MAX as u64) as u32);
    }

    /// A warm (the gathered requestors resolved before their step) took this long.
    pub fn warm_took(&mut self, d: Duration) {
        if self.warms.len() == STEPS {
            self.warms.pop_front();
        }
        self.warms.push_back(d);
    }

    /// A warm's time to allow for: the slowest of the recent ones (before
    /// any, a step's: both are a call).
    fn warm_estimate(&self) -> Duration {
        self.warms
            .iter()
            .max()
            .copied()
            .unwrap_or_else(|| self.step_estimate())
    }

    /// How young a record whose requestor is not looked up yet must be to
    /// leave it for the next step, its lookup riding in this one's write:
    /// the next step, one step's time later, still writes it in time.
    /// `None` when steps are too slow for rides: a record that arrives
    /// during a step would be too old for one by the next (the worker then
    /// looks requestors up before each step, as it gathered them).
    pub fn ride_limit(&self) -> Option<Duration> {
        // A step that rides is one call; a rare one of several (the first
        // describe, a Contact refused and sent again) says nothing of it.
        let step = self
            .per_call
            .iter()
            .max()
            .copied()
            .unwrap_or_else(|| self.step_estimate());
        let limit = self
            .budget
            .saturating_sub(step + step.max(self.warm_estimate()) + self.margin);
        (limit >= step + TURN * 2).then_some(limit)
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Whether a flood is still on (with some hysteresis).
    pub fn flooding(&self) -> bool {
        self.rate >= self.flood_rate * 0.5
    }

    /// A step's time to allow for: the slowest of the recent ones.
    fn step_estimate(&self) -> Duration {
        self.steps
            .iter()
            .max()
            .copied()
            .unwrap_or(Duration::from_millis(100))
    }

    /// What to do with `queued` records waiting, the oldest for
    /// `oldest_age`; of those not looked up yet (their requestors may need
    /// a lookup call before their write), the oldest for `unlooked_age`.
    pub fn decide(
        &self,
        queued: usize,
        oldest_age: Duration,
        unlooked_age: Option<Duration>,
    ) -> Decision {
        if queued == 0 {
            return Decision::Wait(Duration::from_secs(30));
        }
        if self.rate >= self.flood_rate && queued >= self.batch {
            return Decision::Flood;
        }
        if queued >= self.batch {
            return Decision::Send;
        }
        let write = self.step_estimate() + self.margin;
        let room = |slack: Duration, age: Duration| slack.checked_sub(age);
        let written = room(self.budget.saturating_sub(write), oldest_age);
        // Not looked up: sent while still young enough to ride (a turn's
        // wake-up early), so the step does not need a lookup call first;
        // without rides, in time for a lookup call and the write.
        let unlooked = match self.ride_limit() {
            Some(limit) => limit - TURN,
            None => self.budget.saturating_sub(write + self.warm_estimate()),
        };
        let looked = unlooked_age.map(|age| room(unlooked, age));
        let room = match (written, looked) {
            (Some(w), None) => Some(w),
            (Some(w), Some(Some(l))) => Some(w.min(l)),
            _ => None,
        };
        let Some(room) = room.filter(|r| !r.is_zero()) else {
            return Decision::Send;
        };
        // Waiting pays only if another event is likely before it ends.
        if self.rate * room.as_secs_f64() < 1.0 {
            return Decision::Send;
        }
        Decision::Wait(room)
    }

    /// How many more events fill a call.
    pub fn to_fill(&self, queued: usize) -> usize {
        self.batch.saturating_sub(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_rate(rate: u64, budget_ms: u64) -> Pace {
        let mut p = Pace::new(Duration::from_millis(budget_ms), 200, 1_500.0);
        let t0 = Instant::now();
        for i in 0..=40u64 {
            p.arrivals(rate * i / 10, t0 + Duration::from_millis(100 * i));
        }
        p
    }

    #[test]
    fn a_trickle_is_sent_at_once() {
        // The worker reads the counter when an event wakes it.
        let mut p = Pace::new(Duration::from_millis(500), 200, 1_500.0);
        let t0 = Instant::now();
        for i in 0..10u64 {
            p.arrivals(i, t0 + Duration::from_secs(i));
        }
        assert!(p.rate() > 0.5 && p.rate() < 1.5, "{}", p.rate());
        assert_eq!(
            p.decide(1, Duration::ZERO, Some(Duration::ZERO)),
            Decision::Send
        );
    }

    #[test]
    fn a_steady_rate_waits_within_the_budget() {
        let mut p = at_rate(100, 500);
        p.step_took(Duration::from_millis(150), 1);
        match p.decide(3, Duration::from_millis(20), None) {
            // Looked up: 500 - 150 - 100 (margin) - 20 already waited.
            Decision::Wait(d) => assert_eq!(d, Duration::from_millis(230)),
            other => panic!("{other:?}"),
        }
        // Once the oldest record has used its slack, it goes.
        assert_eq!(
            p.decide(30, Duration::from_millis(300), None),
            Decision::Send
        );
        // A full call goes at once.
        assert_eq!(p.decide(200, Duration::ZERO, None), Decision::Send);
    }

    #[test]
    fn slow_steps_shorten_the_wait_and_never_overrun_it() {
        let mut p = at_rate(100, 500);
        p.step_took(Duration::from_millis(600), 1);
        assert_eq!(
            p.decide(3, Duration::ZERO, Some(Duration::ZERO)),
            Decision::Send
        );
    }

    #[test]
    fn a_flood_waits_and_a_steady_high_rate_does_not() {
        let p = at_rate(4_000, 500);
        assert_eq!(
            p.decide(400, Duration::ZERO, Some(Duration::ZERO)),
            Decision::Flood
        );
        assert!(p.flooding());
        // Below the flood rate a full call goes at once...
        let p = at_rate(1_000, 500);
        assert_eq!(
            p.decide(400, Duration::ZERO, Some(Duration::ZERO)),
            Decision::Send
        );
        // ...and a flood ends below half of it.
        assert!(!at_rate(500, 500).flooding());
    }

    #[test]
    fn the_rate_forgets_a_past_burst() {
        let mut p = at_rate(5_000, 500);
        let t = Instant::now() + Duration::from_secs(10);
        p.arrivals(20_000, t);
        assert!(p.rate() < 10.0, "{}", p.rate());
    }

    #[test]
    fn the_wait_leaves_room_for_the_warm_before_the_step() {
        let mut p = at_rate(100, 500);
        p.step_took(Duration::from_millis(60), 1);
        let Decision::Wait(before) = p.decide(5, Duration::ZERO, Some(Duration::ZERO)) else {
            panic!("a steady stream waits")
        };
        p.warm_took(Duration::from_millis(2));
        p.warm_took(Duration::from_millis(110));
        let Decision::Wait(after) = p.decide(5, Duration::ZERO, Some(Duration::ZERO)) else {
            panic!("a steady stream waits")
        };
        assert_eq!(
            before - after,
            Duration::from_millis(110 - 60),
            "the slowest recent warm, where a step's time stood before any"
        );
    }

    #[test]
    fn records_already_looked_up_wait_for_their_write_alone() {
        let mut p = at_rate(100, 500);
        p.step_took(Duration::from_millis(60), 1);
        p.warm_took(Duration::from_millis(60));
        let age = Duration::from_millis(300);
        // Looked up (their lookups rode in the last write): room for the write.
        assert!(matches!(p.decide(5, age, None), Decision::Wait(_)));
        // Not looked up: room for a lookup too, which 300 ms no longer leaves.
        assert_eq!(p.decide(5, age, Some(age)), Decision::Send);
        let Decision::Wait(w) = p.decide(5, age, Some(Duration::from_millis(100))) else {
            panic!("a young record not looked up still leaves room")
        };
        assert!(w < Duration::from_millis(500 - 60 - 300), "{w:?}");
    }

    #[test]
    fn a_record_may_ride_while_two_steps_fit_in_its_budget() {
        let mut p = at_rate(100, 500);
        p.step_took(Duration::from_millis(60), 1);
        p.warm_took(Duration::from_millis(40));
        // 500 - 60 (this step) - 60 (the next) - the margin (100 at first).
        assert_eq!(p.ride_limit(), Some(Duration::from_millis(280)));
        // A slower lookup than a step counts as the next step's time.
        p.warm_took(Duration::from_millis(90));
        assert_eq!(p.ride_limit(), Some(Duration::from_millis(250)));
        // Steps so slow that a record arriving during one is too old to
        // ride in the next: no rides.
        p.step_took(Duration::from_millis(140), 1);
        assert_eq!(p.ride_limit(), None);
        // A slow step of several calls (the first describe) is not one.
        let mut p = at_rate(100, 500);
        p.step_took(Duration::from_millis(240), 4);
        p.step_took(Duration::from_millis(60), 1);
        p.warm_took(Duration::from_millis(40));
        assert_eq!(p.ride_limit(), Some(Duration::from_millis(280)));
    }

    #[test]
    fn a_late_write_widens_the_margin_and_timely_ones_narrow_it_to_a_floor() {
        let mut p = at_rate(100, 500);
        p.step_took(Duration::from_millis(100), 1);
        let wait = |p: &Pace| match p.decide(3, Duration::ZERO, None) {
            Decision::Wait(d) => d,
            other => panic!("{other:?}"),
        };
        // 500 - 100 (step) - 100 (the first margin).
        assert_eq!(wait(&p), Duration::from_millis(300));
        p.wrote(Duration::from_millis(480));
        assert_eq!(wait(&p), Duration::from_millis(250), "late: 50 ms wider");
        p.wrote(Duration::from_millis(400));
        assert_eq!(
            wait(&p),
            Duration::from_millis(250),
            "near the budget: kept"
        );
        p.wrote(Duration::from_millis(200));
        assert_eq!(
            wait(&p),
            Duration::from_millis(260),
            "timely: 10 ms narrower"
        );
        for _ in 0..100 {
            p.wrote(Duration::from_millis(200));
        }
        assert_eq!(wait(&p), Duration::from_millis(375), "the floor: 25 ms");
        for _ in 0..100 {
            p.wrote(Duration::from_millis(499));
        }
        assert_eq!(
            wait(&p),
            Duration::from_millis(150),
            "the ceiling: half the budget"
        );
        // A flood's or an outage's lateness is not the pace's.
        p.wrote(Duration::from_secs(30));
        p.wrote(Duration::from_millis(200));
        assert_eq!(wait(&p), Duration::from_millis(160));
    }
}
