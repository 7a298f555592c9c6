//! The background sender of the mail outbox: it claims due mails, delivers
//! each within `mail_send_timeout`, retries failures with exponential backoff
//! (`mail_retry_delay` doubling, at most an hour apart) and, after
//! `mail_max_attempts`, leaves the mail as a dead letter (logged, listed by
//! [`crate::Admin::dead_mails`]). Instances sharing a database share the
//! outbox: a claim is a conditional update, so each mail goes out once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::Mailer;
use crate::clock::Clock;
use crate::datastore::{OutboxStore, QueuedMail};

/// How many mails one pass claims.
const BATCH: u64 = 16;
/// The longest wait between two attempts.
const MAX_BACKOFF: i64 = 3600;

/// The outbox a running app delivers from.
#[derive(Clone)]
pub(crate) struct Outbox {
    pub store: Arc<dyn OutboxStore>,
    notify: Arc<Notify>,
    settings: Settings,
}

/// Delivery settings (`mail_*` keys).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Limit on one delivery, connection included.
    pub send_timeout: Duration,
    /// Attempts before a mail is dead.
    pub max_attempts: u32,
    /// First retry delay (seconds); doubles each time.
    pub retry_delay: i64,
    /// How often the outbox is looked at without a wake-up (retries, mails
    /// queued by other instances).
    pub poll_interval: Duration,
}

impl Outbox {
    pub(crate) fn new(store: Arc<dyn OutboxStore>, settings: Settings) -> Self {
        Outbox {
            store,
            notify: Arc::new(Notify::new()),
            settings,
        }
    }

    /// Tells the sender that mail is waiting.
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    /// Runs the sender until `shutdown` resolves.
    pub(crate) async fn run(
        self,
        mailer: Arc<dyn Mailer>,
        clock: Clock,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        loop {
            let full = match self.pass(mailer.as_ref(), &clock).await {
                Ok(n) => n == BATCH as usize,
                Err(e) => {
                    log::error!("reading the mail outbox failed: {e}");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                () = self.notify.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Delivers the mails due now; how many were claimed.
    async fn pass(
        &self,
        mailer: &dyn Mailer,
        clock: &Clock,
    ) -> Result<usize, crate::datastore::DatastoreError> {
        let s = self.settings;
        let lease = s.send_timeout.as_secs() as i64 + 30;
        let due = self.store.claim_due(clock.now_secs(), lease, BATCH).await?;
        let n = due.len();
        for queued in due {
            self.deliver(mailer, clock, queued).await?;
        }
        Ok(n)
    }

    async fn deliver(
        &self,
        mailer: &dyn Mailer,
        clock: &Clock,
        queued: QueuedMail,
    ) -> Result<(), crate::datastore::DatastoreError> {
        let s = self.settings;
        let QueuedMail {
            id, mail, attempts, ..
        } = queued;
        let to = mail.to.clone();
        let error = match tokio::time::timeout(s.send_timeout, mailer.send(mail)).await {
            Ok(Ok(())) => return self.store.delivered(id).await,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", s.send_timeout),
        };
        let attempts = attempts + 1;
        if attempts >= s.max_attempts {
            log::error!("mail {id} to {to} is a dead letter after {attempts} attempts: {error}");
            return self.store.failed(id, &error, None).await;
        }
        let delay = s
            .retry_delay
            .saturating_mul(1i64 << (attempts - 1).min(20))
            .min(MAX_BACKOFF);
        log::warn!("mail {id} to {to} failed (attempt {attempts}), retried in {delay} s: {error}");
        self.store
            .failed(id, &error, Some(clock.now_secs() + delay))
            .await
    }
}
