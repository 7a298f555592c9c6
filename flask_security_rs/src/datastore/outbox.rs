//! Storage of the mail outbox: mails are written in the same transaction as
//! the change that causes them (a registration, a password change), then
//! delivered by a background sender with retries, so that no request waits on
//! SMTP and no mail is lost while it is down.

use crate::mail::Email;

/// A mail in the outbox.
#[derive(Debug, Clone)]
pub struct QueuedMail {
    /// Row id.
    pub id: i64,
    /// The mail.
    pub mail: Email,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// When it was queued (epoch seconds).
    pub created_at: i64,
    /// Whether it stopped being retried (a dead letter).
    pub dead: bool,
}

/// Outbox storage, offered through
/// [`UserDatastore::extensions`](super::UserDatastore::extensions). A
/// datastore that offers it must also queue the `mails` of a [`NewUser`] or [`UserUpdate`](super::UserUpdate) in the same
/// transaction as the write. Without it, mails are sent during the request.
///
/// [`NewUser`]: super::NewUser
#[rocket::async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Queues `mails` (on their own, with no other change).
    async fn enqueue(&self, mails: &[Email], now: i64) -> Result<(), super::DatastoreError>;
    /// Claims up to `limit` mails due at `now` for `lease` seconds (another
    /// instance does not take them meanwhile).
    async fn claim_due(
        &self,
        now: i64,
        lease: i64,
        limit: u64,
    ) -> Result<Vec<QueuedMail>, super::DatastoreError>;
    /// Removes a delivered mail.
    async fn delivered(&self, id: i64) -> Result<(), super::DatastoreError>;
    /// Records a failed attempt: retried at `retry_at`, or dead when `None`.
    async fn failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<(), super::DatastoreError>;
    /// The mails that stopped being retried, oldest first.
    async fn dead_mails(&self) -> Result<Vec<QueuedMail>, super::DatastoreError>;
    /// Makes a dead mail due again at `now`, with no attempts; whether it was
    /// dead.
    async fn revive(&self, id: i64, now: i64) -> Result<bool, super::DatastoreError>;
    /// How many mails wait for delivery (dead ones not counted).
    async fn pending(&self) -> Result<u64, super::DatastoreError>;
}
