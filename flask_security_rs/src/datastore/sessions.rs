//! Server-side session records: what makes a session revocable. The session
//! cookie names a record by a random id; the database keeps only the id's
//! SHA-256, so a leaked table cannot be replayed as cookies. Logout deletes
//! the record, which ends the session and its remember cookie everywhere at
//! once, whatever copies of the cookies exist.

/// One session, as the store keeps it and as "your devices" pages list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The record's id: the SHA-256 (hex) of the cookie's session id. Safe to
    /// show: it cannot be turned back into a cookie.
    pub id: String,
    /// The user signed in.
    pub user_id: i64,
    /// When the session started (epoch seconds).
    pub created_at: i64,
    /// When it was last used (epoch seconds; updated at most once a minute).
    pub last_seen_at: i64,
    /// When it ends unless used again (epoch seconds).
    pub expires_at: i64,
    /// Until when its remember cookie may restore it (epoch seconds).
    pub remember_until: Option<i64>,
    /// The browser's `User-Agent` at sign-in.
    pub user_agent: Option<String>,
    /// The client address at sign-in.
    pub ip: Option<String>,
}

impl SessionInfo {
    /// Whether the session may still be used at `now`: by its cookie before
    /// `expires_at`, by its remember cookie before `remember_until`.
    pub fn is_live(&self, now: i64, by_remember: bool) -> bool {
        if by_remember {
            self.remember_until.is_some_and(|r| now < r)
        } else {
            now < self.expires_at
        }
    }
}

/// Storage of session records, offered through
/// [`UserDatastore::extensions`](super::UserDatastore::extensions). Without
/// it, sessions live in the cookie alone and cannot be revoked (a warning is
/// logged at start).
#[rocket::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new record (and drops the records that have ended).
    async fn create_session(&self, record: SessionInfo) -> Result<(), super::DatastoreError>;
    /// The record with this id.
    async fn find_session(&self, id: &str) -> Result<Option<SessionInfo>, super::DatastoreError>;
    /// Marks the record used at `now`, now ending at `expires_at`.
    async fn touch_session(
        &self,
        id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), super::DatastoreError>;
    /// Deletes one record (only if it belongs to `user_id`, when given);
    /// whether it existed.
    async fn delete_session(
        &self,
        id: &str,
        user_id: Option<i64>,
    ) -> Result<bool, super::DatastoreError>;
    /// The user's records, newest first.
    async fn user_sessions(&self, user_id: i64) -> Result<Vec<SessionInfo>, super::DatastoreError>;
    /// Deletes the user's records but `keep`; how many went.
    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, super::DatastoreError>;
    /// The record `id` and the user whose `fs_uniquifier` is `uniquifier`
    /// (with roles) in one round trip; the record is `None` when it does not
    /// exist or belongs to another user. Without it
    /// ([`DatastoreError::Unsupported`](super::DatastoreError::Unsupported),
    /// the default) the library asks [`find_session`](Self::find_session)
    /// and the user datastore separately.
    async fn find_session_user(
        &self,
        id: &str,
        uniquifier: &str,
    ) -> Result<(Option<SessionInfo>, Option<super::User>), super::DatastoreError> {
        let _ = (id, uniquifier);
        Err(super::DatastoreError::Unsupported("joined session lookups"))
    }
}

/// The record id of a cookie's session id.
pub(crate) fn record_id(session_id: &str) -> String {
    use sha2::Digest;
    crate::util::hex(&sha2::Sha256::digest(session_id.as_bytes()))
}

/// A new random session id (256 bits, hex).
pub(crate) fn new_session_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    crate::util::hex(&b)
}
