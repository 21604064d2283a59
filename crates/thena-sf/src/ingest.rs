//! Group commit: webhook handlers hand their events to one writer, which
//! commits everything waiting in one transaction and then answers each
//! handler. Durability is unchanged (nobody hears 2xx before the commit); a
//! burst costs one fsync per group instead of one per event.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::ingest::{IngestItem, Ingested};
use crate::store::Store;

/// The most events committed together.
const MAX_GROUP: usize = 1000;

/// An event, shared with its handler (which keeps it for the spool should
/// the commit be late), and where its result goes.
type Job = (Arc<IngestItem>, oneshot::Sender<Result<Ingested, String>>);

#[derive(Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<Job>,
}

impl Ingestor {
    pub fn start(store: Store) -> Ingestor {
        let (tx, mut rx) = mpsc::channel::<Job>(8 * MAX_GROUP);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
                let group: Vec<&IngestItem> = items.iter().map(|i| &**i).collect();
                match store.ingest_group(&group).await {
                    Ok(results) => {
                        for (reply, r) in replies.into_iter().zip(results) {
                            let _ = reply.send(Ok(r));
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(msg.clone()));
                        }
                    }
                }
            }
        });
        Ingestor { tx }
    }

    /// Stores one event; returns once it is committed.
    pub async fn submit(&self, item: Arc<IngestItem>) -> Result<Ingested, String> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((item, reply))
            .await
            .map_err(|_| "the store writer has stopped".to_string())?;
        wait.await
            .map_err(|_| "the store writer has stopped".to_string())?
    }
}
