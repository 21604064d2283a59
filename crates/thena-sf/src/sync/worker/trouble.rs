//! What a failed call means for the records it carried (retry later, dead
//! letter, pause, relink), and re-provisioning when the org's schema moved.

use salesforce::Action;
use tracing::warn;

use super::{Worker, PERMANENT_CALL_TRIES};
use crate::provision::{self};
use crate::store::queue::Claimed;
use crate::store::ConnStatus;

impl Worker {
    /// A whole call failed: pause, wait for a reconnect, repair the schema or back off.
    pub(super) async fn on_call_error(&mut self, batch: &[Claimed], e: salesforce::Error) {
        let text = e.to_string();
        let code = e.code().unwrap_or("");
        match e.action() {
            Action::Reconnect => {
                warn!(connection = %self.name, code, error = %text, "reconnect needed; the queue waits");
                let _ = self
                    .store
                    .set_status(&self.name, ConnStatus::ReconnectNeeded, Some(&text))
                    .await;
            }
            Action::PauseForDay => {
                warn!(connection = %self.name, code, error = %text, "daily API limit reached; pausing");
                let _ = self
                    .store
                    .set_status(&self.name, ConnStatus::Paused, Some(&text))
                    .await;
            }
            Action::FixSchema => {
                warn!(connection = %self.name, code, error = %text, "schema problem; provisioning again");
                self.reprovision().await;
                for c in batch {
                    let _ = self
                        .store
                        .retry_later(&self.name, c, self.backoff(c.attempts), &text)
                        .await;
                }
            }
            action @ (Action::Retry | Action::RefreshAuth | Action::GiveUp) => {
                // A call that fails with a permanent error is not retried for
                // ever: after a few tries (the batch around a record may be
                // what fails) its records go to the dead letters with the
                // call's error. Passing errors (an outage, a maintenance
                // window) keep their records queued, however long they last.
                let limit = if action == Action::GiveUp {
                    PERMANENT_CALL_TRIES
                } else {
                    i64::MAX
                };
                warn!(
                    connection = %self.name,
                    code,
                    error = %text,
                    records = batch.len(),
                    action = ?action,
                    "a Salesforce call failed"
                );
                let code = e.code().unwrap_or("CALL_FAILED").to_string();
                for c in batch {
                    if c.attempts + 1 >= limit {
                        self.count("failed", 1);
                        let _ = self
                            .store
                            .dead_letter(&self.name, c, &code, &text, &[])
                            .await;
                    } else {
                        let _ = self
                            .store
                            .retry_later(&self.name, c, self.backoff(c.attempts), &text)
                            .await;
                    }
                }
            }
        }
    }

    pub(super) async fn reprovision(&mut self) {
        self.client.invalidate_describes();
        let cats = self
            .store
            .category_fields(&self.name)
            .await
            .unwrap_or_default();
        if let Err(e) = provision::provision(&self.client, &cats, &self.user_id).await {
            warn!(connection = %self.name, error = %e, "provisioning failed");
        }
        // What provisioning could not repair (a required field, a locked
        // layout) shows on the connection's page.
        if let Err(e) = provision::check_and_record(
            &self.client,
            &self.store,
            &self.name,
            &cats,
            self.settings.budget_share,
        )
        .await
        {
            warn!(connection = %self.name, error = %e, "the doctor's result was not stored");
        }
    }
}
