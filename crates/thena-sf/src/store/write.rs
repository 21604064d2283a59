//! Write transactions, taken in turn.
//!
//! SQLite has one writer at a time, and a connection that finds the write
//! lock taken sleeps and tries again (the busy timeout), with no queue: under
//! a steady stream of acknowledgements (a group commit every few
//! milliseconds) the worker's `BEGIN IMMEDIATE` lost that race for up to a
//! quarter of a second at 600 events/s, and the records arriving meanwhile
//! went past the latency budget. This process's writers therefore wait in
//! line (a fair, first-come lock) before they ask SQLite for its lock; other
//! processes (the CLI) still meet the busy timeout. PostgreSQL locks rows,
//! not the database: no line there.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Any, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The line this process's SQLite writers wait in.
#[derive(Debug, Default, Clone)]
pub struct WriteLine(Arc<Mutex<()>>);

impl WriteLine {
    /// A turn to write. After `patience` (the busy timeout) without one, the
    /// writer goes ahead and lets SQLite's own lock decide.
    pub async fn turn(&self, patience: Duration) -> Option<OwnedMutexGuard<()>> {
        tokio::time::timeout(patience, self.0.clone().lock_owned())
            .await
            .ok()
    }
}

/// A write transaction, holding its turn in the line until it ends.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(super) fn new(tx: Transaction<'static, Any>, turn: Option<OwnedMutexGuard<()>>) -> Self {
        WriteTx { tx, _turn: turn }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for WriteTx {
    type Target = Transaction<'static, Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writers get their turns in the order they asked: one that came while
    /// others wrote is next after those before it, however many come later.
    #[tokio::test(flavor = "current_thread")]
    async fn turns_go_in_the_order_asked() {
        let line = WriteLine::default();
        let first = line.turn(Duration::from_secs(10)).await.unwrap();
        let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for w in 0..4 {
            let (line, order) = (line.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _turn = line.turn(Duration::from_secs(10)).await.unwrap();
                order.lock().push(w);
                tokio::task::yield_now().await;
            }));
            // Each asks before the next is started.
            tokio::task::yield_now().await;
        }
        drop(first);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock(), [0, 1, 2, 3]);
    }

    /// A writer that waited the busy timeout goes ahead without a turn (SQLite's lock decides).
    #[tokio::test(flavor = "current_thread")]
    async fn after_its_patience_a_writer_goes_ahead_without_a_turn() {
        let line = WriteLine::default();
        let _held = line.turn(Duration::from_secs(10)).await.unwrap();
        assert!(line.turn(Duration::from_millis(5)).await.is_none());
    }
}
