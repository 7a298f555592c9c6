//! Ceremonies: the state of a sign-in or setup that takes more than one
//! request (a second factor at login, setting up a method), kept server-side
//! in the datastore ([`CeremonyStore`], table `fs_ceremony`), single use and
//! shared by every instance of the application.
//!
//! Flask-Security keeps this state in the client's session cookie, so a
//! copy of the cookie can finish a second sign-in with the same step. Here
//! the client holds only a random reference (in the session cookie, or as a
//! state token in the JSON); the record it names is consumed atomically by
//! the request that completes the ceremony: of N concurrent completions,
//! exactly one wins, and a copied reference is worth nothing afterwards.
//!
//! The table also holds *claims*: markers that a one-time value (a TOTP
//! step of a user) was used, inserted under a unique key, so a second use
//! fails even when it arrives on another instance.

mod store;
mod table;

use serde::{Serialize, de::DeserializeOwned};

use crate::datastore::DatastoreError;
use crate::datastore::sessions::{new_session_id, record_id};

pub use store::CeremonyStore;
pub use table::CreateFsCeremony;

/// The table (see [`table`]).
pub(crate) const TABLE: &str = "fs_ceremony";

/// One stored ceremony (or claim).
#[derive(Clone, PartialEq, Eq)]
pub struct CeremonyRecord {
    /// SHA-256 (hex) of the client's reference: a leaked table names no
    /// usable reference.
    pub id: String,
    /// What the ceremony is (`tf_login`, `tf_setup`, `claim`, ...).
    pub kind: String,
    /// The user it is for.
    pub user_id: i64,
    /// Its state, JSON (owned by the feature that started it).
    pub data: String,
    /// Unix time (seconds) from which it is void.
    pub expires_at: i64,
}

impl std::fmt::Debug for CeremonyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The data may hold an encrypted secret of a method being set up.
        f.debug_struct("CeremonyRecord")
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A ceremony as a feature sees it: its reference, user and typed state.
#[derive(Clone)]
pub(crate) struct Ceremony<T> {
    /// What the client holds.
    pub reference: String,
    pub user_id: i64,
    pub state: T,
    /// The stored form of `state`, the precondition of a change.
    stored: String,
    pub expires_at: i64,
}

impl<T> std::fmt::Debug for Ceremony<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ceremony")
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn encode<T: Serialize>(state: &T) -> Result<String, DatastoreError> {
    serde_json::to_string(state).map_err(|e| DatastoreError::Backend(Box::new(e)))
}

fn decode<T: DeserializeOwned>(
    reference: &str,
    rec: CeremonyRecord,
    kind: &str,
) -> Option<Ceremony<T>> {
    if rec.kind != kind {
        return None;
    }
    let state = serde_json::from_str(&rec.data).ok()?;
    Some(Ceremony {
        reference: reference.to_string(),
        user_id: rec.user_id,
        state,
        stored: rec.data,
        expires_at: rec.expires_at,
    })
}

/// Typed access to one kind of ceremony over a [`CeremonyStore`].
pub(crate) struct Ceremonies<'a> {
    pub store: &'a dyn CeremonyStore,
    pub kind: &'static str,
}

impl Ceremonies<'_> {
    /// Starts a ceremony for `user_id` that lasts `ttl` seconds from `now`;
    /// returns it with its new reference.
    pub async fn start<T: Serialize>(
        &self,
        user_id: i64,
        state: T,
        now: i64,
        ttl: i64,
    ) -> Result<Ceremony<T>, DatastoreError> {
        let reference = new_session_id();
        let stored = encode(&state)?;
        let expires_at = now.saturating_add(ttl);
        self.store
            .put(CeremonyRecord {
                id: record_id(&reference),
                kind: self.kind.to_string(),
                user_id,
                data: stored.clone(),
                expires_at,
            })
            .await?;
        Ok(Ceremony {
            reference,
            user_id,
            state,
            stored,
            expires_at,
        })
    }

    /// The live ceremony `reference` names, if it is of this kind.
    pub async fn find<T: DeserializeOwned>(
        &self,
        reference: &str,
        now: i64,
    ) -> Result<Option<Ceremony<T>>, DatastoreError> {
        let rec = self.store.get(&record_id(reference), now).await?;
        Ok(rec.and_then(|r| decode(reference, r, self.kind)))
    }

    /// Moves `c` to `next` if nobody changed or finished it meanwhile;
    /// `false` when someone did.
    pub async fn advance<T: Serialize>(
        &self,
        c: &mut Ceremony<T>,
        next: T,
        now: i64,
    ) -> Result<bool, DatastoreError> {
        let stored = encode(&next)?;
        let done = self
            .store
            .replace(&record_id(&c.reference), &c.stored, &stored, now)
            .await?;
        if done {
            c.state = next;
            c.stored = stored;
        }
        Ok(done)
    }

    /// Finishes `c`: deletes it if it is still as it was read. `true` for
    /// exactly one of any number of concurrent callers.
    pub async fn finish<T>(&self, c: &Ceremony<T>, now: i64) -> Result<bool, DatastoreError> {
        self.store
            .take(&record_id(&c.reference), &c.stored, now)
            .await
    }

    /// Voids the ceremony `reference` names, whatever its state.
    pub async fn cancel(&self, reference: &str) -> Result<(), DatastoreError> {
        self.store.delete(&record_id(reference)).await
    }
}

/// Claims the one-time value `what` (say `totp:<user>:<scope>:<step>`)
/// until `expires_at`: `true` the first time, `false` for every later claim
/// before then, on any instance.
pub(crate) async fn claim(
    store: &dyn CeremonyStore,
    what: &str,
    user_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<bool, DatastoreError> {
    store
        .claim(
            CeremonyRecord {
                id: record_id(what),
                kind: "claim".into(),
                user_id,
                data: String::new(),
                expires_at,
            },
            now,
        )
        .await
}

/// Whether the one-time value `what` is claimed (see [`claim`]).
pub(crate) async fn claimed(
    store: &dyn CeremonyStore,
    what: &str,
    now: i64,
) -> Result<bool, DatastoreError> {
    Ok(store.get(&record_id(what), now).await?.is_some())
}
