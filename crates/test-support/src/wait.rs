//! Waiting for a condition, polled, with a deadline: tests await what they
//! expect instead of sleeping a guessed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long [`until`] waits before it fails the test.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` every 20 ms until it gives `Some`, and returns that; panics
/// with `what` (and the last thing `check` saw, via `Err`) after [`DEADLINE`].
pub async fn until<T, E, F, Fut>(what: &str, mut check: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last seen: {seen:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
