//! The background sender of the mail outbox: it claims due mails, delivers
//! each within `mail_send_timeout`, retries failures with exponential backoff
//! (`mail_retry_delay` doubling, at most an hour apart) and, after
//! `mail_max_attempts`, leaves the mail as a dead letter (logged, listed by
//! [`crate::Admin::dead_mails`]). Instances sharing a database share the
//! outbox: a claim is a conditional update, so each mail goes out once.
//!
//! An instance whose deliveries all failed in a pass (its SMTP server is
//! down, say) stands back: it claims nothing until two poll intervals after
//! its last failed mail is due again, and ignores wake-ups meanwhile. Other
//! instances, polling as usual, claim that retry and the new mails first,
//! so one instance's broken mail server does not use up the attempts of
//! mail a healthy one could deliver. A single instance retries as before,
//! two poll intervals late at most.

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
            let pass = match self.pass(mailer.as_ref(), &clock).await {
                Ok(p) => p,
                Err(e) => {
                    log::error!("reading the mail outbox failed: {e}");
                    Pass::default()
                }
            };
            // Nothing delivered and something failed: stand back.
            let stand_back = pass
                .retry_in
                .filter(|_| pass.delivered == 0)
                .map(|d| d + 2 * self.settings.poll_interval);
            if stand_back.is_none() && pass.claimed == BATCH as usize {
                continue;
            }
            let wait = stand_back.unwrap_or(self.settings.poll_interval);
            tokio::select! {
                () = self.notify.notified(), if stand_back.is_none() => {}
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Delivers the mails due now.
    async fn pass(
        &self,
        mailer: &dyn Mailer,
        clock: &Clock,
    ) -> Result<Pass, crate::datastore::DatastoreError> {
        let s = self.settings;
        let lease = s.send_timeout.as_secs() as i64 + 30;
        let due = self.store.claim_due(clock.now_secs(), lease, BATCH).await?;
        let mut pass = Pass {
            claimed: due.len(),
            ..Pass::default()
        };
        for queued in due {
            match self.deliver(mailer, clock, queued).await? {
                None => pass.delivered += 1,
                Some(retry) => pass.retry_in = Some(retry),
            }
        }
        Ok(pass)
    }

    /// Delivers one mail: `None` when it went out, else how long until it
    /// is due again (zero for a dead letter).
    async fn deliver(
        &self,
        mailer: &dyn Mailer,
        clock: &Clock,
        queued: QueuedMail,
    ) -> Result<Option<Duration>, crate::datastore::DatastoreError> {
        let s = self.settings;
        let QueuedMail {
            id, mail, attempts, ..
        } = queued;
        let to = mail.to.clone();
        let error = match tokio::time::timeout(s.send_timeout, mailer.send(mail)).await {
            Ok(Ok(())) => return self.store.delivered(id).await.map(|()| None),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", s.send_timeout),
        };
        let attempts = attempts + 1;
        if attempts >= s.max_attempts {
            log::error!("mail {id} to {to} is a dead letter after {attempts} attempts: {error}");
            return self
                .store
                .failed(id, &error, None)
                .await
                .map(|()| Some(Duration::ZERO));
        }
        let delay = s
            .retry_delay
            .saturating_mul(1i64 << (attempts - 1).min(20))
            .min(MAX_BACKOFF);
        log::warn!("mail {id} to {to} failed (attempt {attempts}), retried in {delay} s: {error}");
        self.store
            .failed(id, &error, Some(clock.now_secs() + delay))
            .await?;
        Ok(Some(Duration::from_secs(delay.unsigned_abs())))
    }
}

/// What one pass did.
#[derive(Debug, Default)]
struct Pass {
    claimed: usize,
    delivered: usize,
    /// When a mail failed: how long until the last one that failed is due
    /// again.
    retry_in: Option<Duration>,
}
