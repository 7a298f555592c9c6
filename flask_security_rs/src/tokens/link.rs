//! [`SignedLink`]: a time-limited signed token for one purpose (its own salt,
//! lifetime and payload), as mailed in confirmation, reset and change-email
//! links. Magic links and state tokens use the same type.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TokenError;
use crate::datastore::{Lookup, User};
use crate::state::SecurityState;

/// What a link's token carries. Flask-Security's link payloads are JSON
/// arrays starting with the user's `fs_uniquifier`, so tuples fit them.
pub(crate) trait LinkPayload: Serialize + DeserializeOwned {
    /// The `fs_uniquifier` of the user the link is for.
    fn uid(&self) -> &str;
}

/// The bare uniquifier (the two-factor validity cookie's payload).
impl LinkPayload for String {
    fn uid(&self) -> &str {
        self
    }
}

impl LinkPayload for (String,) {
    fn uid(&self) -> &str {
        &self.0
    }
}

impl<A: Serialize + DeserializeOwned> LinkPayload for (String, A) {
    fn uid(&self) -> &str {
        &self.0
    }
}

impl<A: Serialize + DeserializeOwned, B: Serialize + DeserializeOwned> LinkPayload
    for (String, A, B)
{
    fn uid(&self) -> &str {
        &self.0
    }
}

/// One purpose of signed links.
pub(crate) struct SignedLink<P> {
    salt: String,
    max_age: i64,
    _payload: PhantomData<fn() -> P>,
}

/// What a token turned out to be.
#[derive(Debug)]
pub(crate) enum LinkCheck<P> {
    /// Signed by us, in time.
    Valid(P),
    /// Signed by us but too old (or dated in the future); the payload, when it
    /// still decodes, says whom it was for.
    Expired(Option<P>),
    /// Not ours, tampered with or malformed.
    Invalid,
}

/// What a token naming a user turned out to be.
#[derive(Debug)]
pub(crate) enum UserLink<P> {
    /// In time, for an existing user.
    Valid(Box<User>, P),
    /// Too old; the user it names, when it names one that exists.
    Expired(Option<Box<User>>),
    /// Not ours, or for no user.
    Invalid,
}

impl<P: LinkPayload> SignedLink<P> {
    /// Links signed with `salt`, valid for `max_age` seconds.
    pub(crate) fn new(salt: &str, max_age: i64) -> Self {
        SignedLink {
            salt: salt.to_string(),
            max_age,
            _payload: PhantomData,
        }
    }

    /// The lifetime, in seconds.
    pub(crate) fn max_age(&self) -> i64 {
        self.max_age
    }

    /// A token for `payload`, dated now.
    pub(crate) fn issue(&self, state: &SecurityState, payload: &P) -> String {
        let value = serde_json::to_value(payload).unwrap_or(serde_json::Value::Null);
        state
            .serializer(&self.salt)
            .dumps_at(&value, state.clock.now_secs())
    }

    /// Checks `token`'s signature and age.
    pub(crate) fn check(&self, state: &SecurityState, token: &str) -> LinkCheck<P> {
        let ser = state.serializer(&self.salt);
        match ser.loads_at(token, Some(self.max_age), state.clock.now_secs()) {
            Ok(v) => serde_json::from_value(v).map_or(LinkCheck::Invalid, LinkCheck::Valid),
            Err(TokenError::Expired { payload, .. }) => {
                LinkCheck::Expired(serde_json::from_value(payload).ok())
            }
            Err(_) => LinkCheck::Invalid,
        }
    }

    /// Checks `token` and loads the user it names.
    pub(crate) async fn check_user(&self, state: &SecurityState, token: &str) -> UserLink<P> {
        let load = |uid: String| async move {
            match state.datastore.find_user(Lookup::Uniquifier(&uid)).await {
                Ok(u) => u.map(Box::new),
                Err(e) => {
                    log::error!("loading the user of a link failed: {e}");
                    None
                }
            }
        };
        match self.check(state, token) {
            LinkCheck::Valid(p) => match load(p.uid().to_string()).await {
                Some(u) => UserLink::Valid(u, p),
                None => UserLink::Invalid,
            },
            LinkCheck::Expired(Some(p)) => UserLink::Expired(load(p.uid().to_string()).await),
            LinkCheck::Expired(None) => UserLink::Expired(None),
            LinkCheck::Invalid => UserLink::Invalid,
        }
    }
}
