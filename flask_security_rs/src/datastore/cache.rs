//! The identity cache: the user of a session or an auth token, with its
//! roles and permissions, and the server-side session record, kept in a
//! bounded in-process cache so that an authenticated request needs no
//! database round trip.
//!
//! # The guarantee
//!
//! - **Writes through the library** (the datastore given to
//!   [`Security`](crate::Security), [`Admin`](super::Admin), the library's own
//!   views) take effect on the very next request on this instance: every
//!   write method of [`UserDatastore`] and [`SessionStore`] forgets what it
//!   touched once the write has committed, before it returns. A lookup that
//!   raced with a write never stores what it read (a global write counter is
//!   compared before and after).
//! - **Writes by other processes** reach the cache through the datastore's
//!   [`ChangeFeed`]: on PostgreSQL, triggers `NOTIFY` every instance of each
//!   change to the user, role, user-role and session tables, whoever made it
//!   (another instance, a Flask-Security app on the same database, an admin's
//!   SQL), so it is forgotten as soon as the notification arrives, normally
//!   within milliseconds of the commit. While the listening connection is
//!   down the cache serves nothing; after it is back, the cache is flushed
//!   and then used again. On SQLite, the feed polls `PRAGMA data_version`
//!   every `identity_cache_poll_interval` seconds and flushes the cache when
//!   another connection wrote: that is the bound for writes by other
//!   processes.
//! - **Backstop**: no entry is served longer than
//!   `identity_cache_max_staleness` seconds after it was read.
//! - **Off switch**: `identity_cache = false` reads the database on every
//!   request.
//!
//! A verified auth token and an opened session cookie also keep the cache
//! entries their lookup found (a [`Memo`]), so the next request with the
//! same credentials skips the index and user lookups. That changes nothing
//! above: an entry is marked stale the moment the cache lets go of it
//! (forgotten by a write or a change notification, replaced, evicted), a
//! flush voids every memo, and a memo is served only while its entries are
//! younger than `identity_cache_max_staleness` and the cache is live.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A bounded cache with a fast hasher.
pub(crate) type Cache<K, V> = moka::sync::Cache<K, V, foldhash::fast::RandomState>;

/// A [`Cache`] of at most `capacity` entries, each kept at most `ttl`.
pub(crate) fn bounded<K, V>(capacity: u64, ttl: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    builder(capacity, ttl).build_with_hasher(foldhash::fast::RandomState::default())
}

fn builder<K, V>(
    capacity: u64,
    ttl: Duration,
) -> moka::sync::CacheBuilder<K, V, moka::sync::Cache<K, V>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(capacity)
        .time_to_live(ttl)
}

/// A value the identity cache holds, marked stale the moment the cache lets
/// go of it (forgotten, replaced, evicted), so that a [`Memo`] holding it
/// knows without asking the cache.
pub(crate) struct Entry<T> {
    value: Arc<T>,
    read_at: Instant,
    stale: AtomicBool,
}

impl<T> Entry<T> {
    fn new(value: Arc<T>) -> Arc<Entry<T>> {
        Arc::new(Entry {
            value,
            read_at: Instant::now(),
            stale: AtomicBool::new(false),
        })
    }
}

/// A [`Cache`] of [`Entry`]s: each is marked stale when it leaves.
type Entries<K, T> = Cache<K, Arc<Entry<T>>>;

fn entries<K, T>(capacity: u64, ttl: Duration) -> Entries<K, T>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    builder(capacity, ttl)
        .eviction_listener(|_, entry: Arc<Entry<T>>, _| entry.stale.store(true, Ordering::SeqCst))
        .build_with_hasher(foldhash::fast::RandomState::default())
}

/// What a value came from: the cache's entry, or a read that was not cached.
enum Got<T> {
    Cached(Arc<Entry<T>>),
    Read(Arc<T>),
}

impl<T> Got<T> {
    fn value(&self) -> Arc<T> {
        match self {
            Got::Cached(e) => e.value.clone(),
            Got::Read(v) => v.clone(),
        }
    }

    fn entry(&self) -> Option<Arc<Entry<T>>> {
        match self {
            Got::Cached(e) => Some(e.clone()),
            Got::Read(_) => None,
        }
    }
}

/// The cache entries a lookup found, kept beside what the request's
/// credentials decoded to (a verified token, an opened session cookie), so
/// that the next request with the same credentials skips the lookups. It is
/// good exactly as long as the cache would still serve every part of it: no
/// part forgotten, replaced, evicted or past `identity_cache_max_staleness`,
/// no flush since, and the cache live.
#[derive(Default)]
pub(crate) struct Memo(Mutex<Option<Held>>);

struct Held {
    user: Arc<Entry<User>>,
    session: Option<Arc<Entry<SessionInfo>>>,
    flushes: u64,
}

impl Memo {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

use super::sessions::{SessionInfo, SessionStore};
use super::{DatastoreError, Extensions, Lookup, NewUser, Role, User, UserDatastore, UserUpdate};
use crate::config::CacheConfig;

/// A change a [`ChangeFeed`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The user with this id changed (its row, or its roles).
    User(i64),
    /// The session record with this id changed or went.
    Session(String),
    /// Session records of the user with this id went.
    UserSessions(i64),
    /// Anything may have changed (a role's permissions, a truncated table,
    /// writes the feed could not see): forget everything.
    All,
}

/// Where a [`ChangeFeed`] reports what it sees.
pub trait ChangeSink: Send + Sync {
    /// Something changed in the database.
    fn changed(&self, change: Change);
    /// Whether the feed currently sees every change: while it does not (not
    /// yet connected, or the connection was lost), nothing may be served
    /// from the cache. Going live flushes what was cached before.
    fn watching(&self, live: bool);
}

/// Writes to the identity tables, reported to the identity cache. Offered
/// through [`UserDatastore::extensions`]. Without it, the cache hears only
/// of writes made through the datastore handed to
/// [`Security`](crate::Security), and relies on
/// `identity_cache_max_staleness` for any other.
#[rocket::async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// Tells `sink` of every write made through this datastore object (any
    /// handle to it), synchronously, once the write has committed.
    fn subscribe(&self, sink: Arc<dyn ChangeSink>);
    /// Watches the database until the returned future is dropped, telling
    /// `sink` what changed. `poll` is how often a backend without
    /// notifications looks.
    async fn watch(&self, sink: Arc<dyn ChangeSink>, poll: Duration);
}

/// Whether `user` is the one `by` names (an index entry may be out of date:
/// a uniquifier rotated since).
fn answers(user: &User, by: Lookup<'_>) -> bool {
    match by {
        Lookup::Id(id) => user.id == id,
        Lookup::Uniquifier(u) => user.fs_uniquifier == u,
        Lookup::TokenUniquifier(u) => user.token_uniquifier() == u,
        _ => false,
    }
}

/// The cache itself: users by id (with an index from uniquifier to id), and
/// session records by id.
pub(crate) struct IdentityCache {
    users: Entries<i64, User>,
    /// `fs_uniquifier` to user id.
    by_uniquifier: Cache<String, i64>,
    /// Token uniquifier to user id.
    by_token: Cache<String, i64>,
    sessions: Entries<String, SessionInfo>,
    /// Bumped by every invalidation: a lookup stores what it read only if no
    /// invalidation happened while it read.
    writes: AtomicU64,
    /// Bumped by every flush (whose entries leave the cache lazily, so are
    /// not marked stale at once): a [`Memo`] from before a flush is void.
    flushes: AtomicU64,
    /// How long an entry may be served after it was read.
    ttl: Duration,
    /// Whether entries may be served (see [`ChangeSink::watching`]).
    live: AtomicBool,
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("users", &self.users.entry_count())
            .field("sessions", &self.sessions.entry_count())
            .field("live", &self.live.load(Ordering::SeqCst))
            .finish()
    }
}

impl IdentityCache {
    /// A cache of at most `capacity` users (and as many sessions), each
    /// served at most `max_staleness` after it was read; `live` when no
    /// change feed has to connect first.
    pub(crate) fn new(capacity: u64, max_staleness: Duration, live: bool) -> Self {
        IdentityCache {
            users: entries(capacity, max_staleness),
            by_uniquifier: bounded(capacity, max_staleness),
            by_token: bounded(capacity, max_staleness),
            sessions: entries(capacity, max_staleness),
            writes: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            ttl: max_staleness,
            live: AtomicBool::new(live),
        }
    }

    /// A ticket for storing what is about to be read; `None` while nothing
    /// may be cached.
    fn ticket(&self) -> Option<u64> {
        if !self.live.load(Ordering::SeqCst) {
            return None;
        }
        Some(self.writes.load(Ordering::SeqCst))
    }

    /// Whether an invalidation happened since `ticket` was taken.
    fn outdated(&self, ticket: u64) -> bool {
        self.writes.load(Ordering::SeqCst) != ticket || !self.live.load(Ordering::SeqCst)
    }

    fn user(&self, by: Lookup<'_>) -> Option<Arc<Entry<User>>> {
        if !self.live.load(Ordering::SeqCst) {
            return None;
        }
        let id = match by {
            Lookup::Id(id) => id,
            Lookup::Uniquifier(u) => self.by_uniquifier.get(u)?,
            Lookup::TokenUniquifier(u) => self.by_token.get(u)?,
            _ => return None,
        };
        self.users.get(&id).filter(|e| answers(&e.value, by))
    }

    fn put_user(&self, ticket: u64, by: Lookup<'_>, user: &Arc<User>) -> Arc<Entry<User>> {
        let id = user.id;
        let entry = Entry::new(user.clone());
        self.users.insert(id, entry.clone());
        match by {
            Lookup::Uniquifier(u) => self.by_uniquifier.insert(u.to_string(), id),
            Lookup::TokenUniquifier(u) => self.by_token.insert(u.to_string(), id),
            _ => {}
        }
        if self.outdated(ticket) {
            self.users.invalidate(&id);
            entry.stale.store(true, Ordering::SeqCst);
        }
        entry
    }

    fn session(&self, id: &str) -> Option<Arc<Entry<SessionInfo>>> {
        if !self.live.load(Ordering::SeqCst) {
            return None;
        }
        self.sessions.get(id)
    }

    fn put_session(&self, ticket: u64, record: &Arc<SessionInfo>) -> Arc<Entry<SessionInfo>> {
        let entry = Entry::new(record.clone());
        self.sessions.insert(record.id.clone(), entry.clone());
        if self.outdated(ticket) {
            self.sessions.invalidate(&record.id);
            entry.stale.store(true, Ordering::SeqCst);
        }
        entry
    }

    /// Whether `entry` may still be served.
    fn serves<T>(&self, entry: &Entry<T>) -> bool {
        !entry.stale.load(Ordering::SeqCst) && entry.read_at.elapsed() < self.ttl
    }

    /// What `memo` holds, when every part of it may still be served.
    fn recall(&self, memo: &Memo) -> Option<(Arc<User>, Option<Arc<SessionInfo>>)> {
        if !self.live.load(Ordering::SeqCst) {
            return None;
        }
        let slot = memo.slot();
        let held = slot.as_ref()?;
        let good = held.flushes == self.flushes.load(Ordering::SeqCst)
            && self.serves(&held.user)
            && held.session.as_deref().is_none_or(|s| self.serves(s));
        good.then(|| {
            (
                held.user.value.clone(),
                held.session.as_ref().map(|s| s.value.clone()),
            )
        })
    }

    /// Keeps `user` (and `session`) in `memo`, when both are cache entries;
    /// `flushes` was read before the lookup that found them.
    fn hold(
        memo: &Memo,
        flushes: u64,
        user: Option<&Got<User>>,
        session: Option<&Got<SessionInfo>>,
    ) {
        let user = user.and_then(Got::entry);
        let session = match session {
            Some(s) => s.entry().map(Some),
            None => Some(None),
        };
        *memo.slot() = match (user, session) {
            (Some(user), Some(session)) => Some(Held {
                user,
                session,
                flushes,
            }),
            _ => None,
        };
    }

    /// Forgets the user `id`.
    pub(crate) fn forget_user(&self, id: i64) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.users.invalidate(&id);
    }

    /// Forgets the session record `id`.
    pub(crate) fn forget_session(&self, id: &str) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.sessions.invalidate(id);
    }

    /// Forgets the records of `user_id` but `keep` (at once: each leaves
    /// the cache, so is marked stale, before this returns).
    fn forget_user_sessions(&self, user_id: i64, keep: Option<&str>) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let gone: Vec<Arc<String>> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.value.user_id == user_id && keep != Some(e.value.id.as_str()))
            .map(|(id, _)| id)
            .collect();
        for id in gone {
            self.sessions.invalidate(&*id);
        }
    }

    /// Forgets everything.
    pub(crate) fn forget_all(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.users.invalidate_all();
        self.by_uniquifier.invalidate_all();
        self.by_token.invalidate_all();
        self.sessions.invalidate_all();
    }
}

impl ChangeSink for IdentityCache {
    fn changed(&self, change: Change) {
        match change {
            Change::User(id) => self.forget_user(id),
            Change::Session(id) => self.forget_session(&id),
            Change::UserSessions(user_id) => self.forget_user_sessions(user_id, None),
            Change::All => self.forget_all(),
        }
    }

    fn watching(&self, live: bool) {
        if live {
            // What was cached before may have missed changes: start afresh.
            self.forget_all();
            self.live.store(true, Ordering::SeqCst);
        } else {
            self.live.store(false, Ordering::SeqCst);
            self.forget_all();
        }
    }
}

/// Where the library finds users and session records: through the cache when
/// it is on. `users` and `sessions` are what the rest of the library writes
/// through, so that every write invalidates.
pub(crate) struct Identities {
    /// The datastore (wrapped by the cache when it is on).
    pub users: Arc<dyn UserDatastore>,
    /// The session records (wrapped likewise), when the datastore keeps them.
    pub sessions: Option<Arc<dyn SessionStore>>,
    raw_users: Arc<dyn UserDatastore>,
    raw_sessions: Option<Arc<dyn SessionStore>>,
    cache: Option<Arc<IdentityCache>>,
    /// The feed to start at liftoff (with the cache on).
    pub feed: Option<Arc<dyn ChangeFeed>>,
    /// How often the feed polls, where it has to.
    pub poll: Duration,
}

/// A session record and a user, each when found.
pub(crate) type SessionAndUser = (Option<Arc<SessionInfo>>, Option<Arc<User>>);

impl Identities {
    /// The lookups on `datastore` (whose `extensions` are `ext`), cached as
    /// `config` says.
    pub(crate) fn new(
        datastore: Arc<dyn UserDatastore>,
        ext: &Extensions,
        config: &CacheConfig,
    ) -> Self {
        let raw_sessions = ext.get::<dyn SessionStore>();
        if !config.identity_cache {
            return Identities {
                users: datastore.clone(),
                sessions: raw_sessions.clone(),
                raw_users: datastore,
                raw_sessions,
                cache: None,
                feed: None,
                poll: Duration::ZERO,
            };
        }
        let feed = ext.get::<dyn ChangeFeed>();
        let cache = Arc::new(IdentityCache::new(
            config.identity_cache_capacity,
            Duration::from_secs_f64(config.identity_cache_max_staleness),
            feed.is_none(),
        ));
        if let Some(feed) = &feed {
            feed.subscribe(cache.clone());
        }
        let users: Arc<dyn UserDatastore> = Arc::new(CachedDatastore {
            inner: datastore.clone(),
            cache: cache.clone(),
        });
        let sessions = raw_sessions.clone().map(|inner| {
            Arc::new(CachedSessions {
                inner,
                cache: cache.clone(),
            }) as Arc<dyn SessionStore>
        });
        Identities {
            users,
            sessions,
            raw_users: datastore,
            raw_sessions,
            cache: Some(cache),
            feed,
            poll: Duration::from_secs_f64(config.identity_cache_poll_interval),
        }
    }

    /// Starts the change feed (with the cache on) until `shutdown`.
    pub(crate) fn start_feed(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (Some(feed), Some(cache)) = (self.feed.clone(), self.cache.clone()) else {
            return;
        };
        let poll = self.poll;
        rocket::tokio::spawn(async move {
            let sink: Arc<dyn ChangeSink> = cache;
            rocket::tokio::select! {
                () = feed.watch(sink, poll) => {}
                () = shutdown => {}
            }
        });
    }

    /// The user `by` names, from the cache when it has it.
    pub(crate) async fn user(&self, by: Lookup<'_>) -> Result<Option<Arc<User>>, DatastoreError> {
        Ok(cached_user(self.cache.as_deref(), &*self.raw_users, by)
            .await?
            .map(|g| g.value()))
    }

    /// [`Identities::user`], first from `memo` (what the same lookup found
    /// last time, while the cache would still serve it), and kept there.
    pub(crate) async fn user_memo(
        &self,
        by: Lookup<'_>,
        memo: &Memo,
    ) -> Result<Option<Arc<User>>, DatastoreError> {
        let Some(cache) = self.cache.as_deref() else {
            return self.user(by).await;
        };
        if let Some((user, _)) = cache.recall(memo) {
            return Ok(Some(user));
        }
        let flushes = cache.flushes.load(Ordering::SeqCst);
        let got = cached_user(Some(cache), &*self.raw_users, by).await?;
        IdentityCache::hold(memo, flushes, got.as_ref(), None);
        Ok(got.map(|g| g.value()))
    }

    /// The session record `id` and the user whose `fs_uniquifier` is
    /// `uniquifier`; on a miss, in one round trip when the store can join
    /// them. The record is `None` when it belongs to someone else. With a
    /// `memo`, first from it, and kept there.
    pub(crate) async fn session_user(
        &self,
        id: &str,
        uniquifier: &str,
        memo: Option<&Memo>,
    ) -> Result<SessionAndUser, DatastoreError> {
        let Some(store) = &self.raw_sessions else {
            return Ok((None, self.user(Lookup::Uniquifier(uniquifier)).await?));
        };
        let cache = self.cache.as_deref();
        if let (Some(c), Some(m)) = (cache, memo)
            && let Some((user, record)) = c.recall(m)
        {
            return Ok((record, Some(user)));
        }
        let flushes = cache.map(|c| c.flushes.load(Ordering::SeqCst));
        let (record, user) = self.find_session_user(&**store, id, uniquifier).await?;
        let record = record.filter(|r| {
            user.as_ref()
                .is_some_and(|u| u.value().id == r.value().user_id)
        });
        if let (Some(m), Some(f)) = (memo, flushes) {
            match &record {
                Some(r) => IdentityCache::hold(m, f, user.as_ref(), Some(r)),
                None => IdentityCache::hold(m, f, None, None),
            }
        }
        Ok((record.map(|r| r.value()), user.map(|u| u.value())))
    }

    async fn find_session_user(
        &self,
        store: &dyn SessionStore,
        id: &str,
        uniquifier: &str,
    ) -> Result<(Option<Got<SessionInfo>>, Option<Got<User>>), DatastoreError> {
        let by = Lookup::Uniquifier(uniquifier);
        let cache = self.cache.as_deref();
        let ticket = cache.and_then(IdentityCache::ticket);
        let record = cache.and_then(|c| c.session(id)).map(Got::Cached);
        let user = cache.and_then(|c| c.user(by)).map(Got::Cached);
        Ok(match (record, user) {
            (Some(r), Some(u)) => (Some(r), Some(u)),
            (Some(r), None) => (Some(r), cached_user(cache, &*self.raw_users, by).await?),
            (None, Some(u)) => (cached_session(cache, store, id).await?, Some(u)),
            (None, None) => match store.find_session_user(id, uniquifier).await {
                Ok((record, user)) => {
                    let record = record.map(Arc::new);
                    let user = user.map(Arc::new);
                    match (cache, ticket) {
                        (Some(c), Some(t)) => (
                            record.map(|r| Got::Cached(c.put_session(t, &r))),
                            user.map(|u| Got::Cached(c.put_user(t, by, &u))),
                        ),
                        _ => (record.map(Got::Read), user.map(Got::Read)),
                    }
                }
                Err(DatastoreError::Unsupported(_)) => (
                    cached_session(cache, store, id).await?,
                    cached_user(cache, &*self.raw_users, by).await?,
                ),
                Err(e) => return Err(e),
            },
        })
    }
}

async fn cached_user(
    cache: Option<&IdentityCache>,
    inner: &dyn UserDatastore,
    by: Lookup<'_>,
) -> Result<Option<Got<User>>, DatastoreError> {
    let cacheable = matches!(
        by,
        Lookup::Id(_) | Lookup::Uniquifier(_) | Lookup::TokenUniquifier(_)
    );
    let Some(cache) = cache.filter(|_| cacheable) else {
        return Ok(inner.find_user(by).await?.map(|u| Got::Read(Arc::new(u))));
    };
    if let Some(e) = cache.user(by) {
        return Ok(Some(Got::Cached(e)));
    }
    let ticket = cache.ticket();
    let user = inner.find_user(by).await?.map(Arc::new);
    Ok(user.map(|u| match ticket {
        Some(t) => Got::Cached(cache.put_user(t, by, &u)),
        None => Got::Read(u),
    }))
}

async fn cached_session(
    cache: Option<&IdentityCache>,
    inner: &dyn SessionStore,
    id: &str,
) -> Result<Option<Got<SessionInfo>>, DatastoreError> {
    let Some(cache) = cache else {
        return Ok(inner
            .find_session(id)
            .await?
            .map(|r| Got::Read(Arc::new(r))));
    };
    if let Some(e) = cache.session(id) {
        return Ok(Some(Got::Cached(e)));
    }
    let ticket = cache.ticket();
    let record = inner.find_session(id).await?.map(Arc::new);
    Ok(record.map(|r| match ticket {
        Some(t) => Got::Cached(cache.put_session(t, &r)),
        None => Got::Read(r),
    }))
}

/// The datastore with the cache in front: reads of users by id or
/// uniquifier come from it; every write forgets what it touched.
struct CachedDatastore {
    inner: Arc<dyn UserDatastore>,
    cache: Arc<IdentityCache>,
}

impl CachedDatastore {
    /// Forgets `user_id` after a write, whatever its outcome (a failed
    /// write may still have committed).
    fn written<T>(&self, user_id: i64, result: T) -> T {
        self.cache.forget_user(user_id);
        result
    }
}

#[rocket::async_trait]
impl UserDatastore for CachedDatastore {
    fn has_field(&self, field: super::UserField) -> bool {
        self.inner.has_field(field)
    }

    async fn prepare(&self) -> Result<(), DatastoreError> {
        self.inner.prepare().await
    }

    async fn find_user(&self, by: Lookup<'_>) -> Result<Option<User>, DatastoreError> {
        Ok(cached_user(Some(&self.cache), &*self.inner, by)
            .await?
            .map(|g| (*g.value()).clone()))
    }

    async fn create_user(&self, new: NewUser) -> Result<User, DatastoreError> {
        let user = self.inner.create_user(new).await?;
        // An id may be reused (SQLite, after the last user was deleted).
        Ok(self.written(user.id, user))
    }

    async fn update_user(&self, user_id: i64, update: UserUpdate) -> Result<bool, DatastoreError> {
        let result = self.inner.update_user(user_id, update).await;
        self.written(user_id, result)
    }

    async fn delete_user(&self, user_id: i64) -> Result<(), DatastoreError> {
        let result = self.inner.delete_user(user_id).await;
        self.cache.forget_user_sessions(user_id, None);
        self.written(user_id, result)
    }

    async fn find_role(&self, name: &str) -> Result<Option<Role>, DatastoreError> {
        self.inner.find_role(name).await
    }

    async fn create_role(
        &self,
        name: &str,
        description: Option<&str>,
        permissions: &[&str],
    ) -> Result<Role, DatastoreError> {
        self.inner.create_role(name, description, permissions).await
    }

    async fn set_role_permissions(
        &self,
        name: &str,
        permissions: &[String],
    ) -> Result<(), DatastoreError> {
        let result = self.inner.set_role_permissions(name, permissions).await;
        // Every user with the role changes.
        self.cache.forget_all();
        result
    }

    async fn add_role_to_user(&self, user_id: i64, role: &str) -> Result<bool, DatastoreError> {
        let result = self.inner.add_role_to_user(user_id, role).await;
        self.written(user_id, result)
    }

    async fn remove_role_from_user(
        &self,
        user_id: i64,
        role: &str,
    ) -> Result<bool, DatastoreError> {
        let result = self.inner.remove_role_from_user(user_id, role).await;
        self.written(user_id, result)
    }

    fn extensions(self: Arc<Self>) -> Extensions {
        self.inner.clone().extensions()
    }
}

/// The session records with the cache in front.
struct CachedSessions {
    inner: Arc<dyn SessionStore>,
    cache: Arc<IdentityCache>,
}

#[rocket::async_trait]
impl SessionStore for CachedSessions {
    async fn create_session(&self, record: SessionInfo) -> Result<(), DatastoreError> {
        let id = record.id.clone();
        let result = self.inner.create_session(record).await;
        self.cache.forget_session(&id);
        result
    }

    async fn find_session(&self, id: &str) -> Result<Option<SessionInfo>, DatastoreError> {
        Ok(cached_session(Some(&self.cache), &*self.inner, id)
            .await?
            .map(|g| (*g.value()).clone()))
    }

    async fn touch_session(
        &self,
        id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), DatastoreError> {
        let result = self.inner.touch_session(id, now, expires_at).await;
        self.cache.forget_session(id);
        result
    }

    async fn delete_session(&self, id: &str, user_id: Option<i64>) -> Result<bool, DatastoreError> {
        let result = self.inner.delete_session(id, user_id).await;
        self.cache.forget_session(id);
        result
    }

    async fn user_sessions(&self, user_id: i64) -> Result<Vec<SessionInfo>, DatastoreError> {
        self.inner.user_sessions(user_id).await
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, DatastoreError> {
        let result = self.inner.delete_user_sessions(user_id, keep).await;
        self.cache.forget_user_sessions(user_id, keep);
        result
    }

    async fn find_session_user(
        &self,
        id: &str,
        uniquifier: &str,
    ) -> Result<(Option<SessionInfo>, Option<User>), DatastoreError> {
        self.inner.find_session_user(id, uniquifier).await
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn user(id: i64, uniq: &str) -> Arc<User> {
        let mut u = User::prospective(&NewUser::new(format!("u{id}@example.com")));
        u.id = id;
        u.fs_uniquifier = uniq.into();
        Arc::new(u)
    }

    #[test]
    fn a_lookup_racing_a_write_stores_nothing() {
        let cache = IdentityCache::new(100, Duration::from_secs(60), true);
        let by = Lookup::Uniquifier("a");
        let ticket = cache.ticket().expect("a live cache gives tickets");
        // The write lands while the lookup reads the old row.
        cache.forget_user(1);
        cache.put_user(ticket, by, &user(1, "a"));
        assert!(cache.user(by).is_none());
        // Without a write in between, the entry is served.
        let ticket = cache.ticket().expect("a live cache gives tickets");
        cache.put_user(ticket, by, &user(1, "a"));
        assert_eq!(cache.user(by).map(|e| e.value.id), Some(1));
    }

    #[test]
    fn a_rotated_uniquifier_misses() {
        let cache = IdentityCache::new(100, Duration::from_secs(60), true);
        let t = cache.ticket().expect("a live cache gives tickets");
        cache.put_user(t, Lookup::Uniquifier("old"), &user(1, "old"));
        cache.put_user(t, Lookup::Uniquifier("new"), &user(1, "new"));
        assert!(cache.user(Lookup::Uniquifier("old")).is_none());
        assert!(cache.user(Lookup::Uniquifier("new")).is_some());
    }

    #[test]
    fn nothing_is_served_while_the_feed_is_down() {
        let cache = IdentityCache::new(100, Duration::from_secs(60), true);
        let t = cache.ticket().expect("a live cache gives tickets");
        cache.put_user(t, Lookup::Id(1), &user(1, "a"));
        cache.watching(false);
        assert!(cache.ticket().is_none());
        assert!(cache.user(Lookup::Id(1)).is_none());
        cache.watching(true);
        // Flushed on the way back.
        assert!(cache.user(Lookup::Id(1)).is_none());
    }

    fn record(id: &str, user_id: i64) -> Arc<SessionInfo> {
        Arc::new(SessionInfo {
            id: id.into(),
            user_id,
            created_at: 0,
            last_seen_at: 0,
            expires_at: 0,
            remember_until: None,
            user_agent: None,
            ip: None,
        })
    }

    /// A memo holding user 1 (and, with `session`, record "s1"), as a
    /// lookup through `cache` would leave it.
    fn held(cache: &IdentityCache, session: bool) -> Memo {
        let memo = Memo::default();
        let flushes = cache.flushes.load(Ordering::SeqCst);
        let t = cache.ticket().expect("a live cache gives tickets");
        let user = Got::Cached(cache.put_user(t, Lookup::Uniquifier("a"), &user(1, "a")));
        let record = session.then(|| Got::Cached(cache.put_session(t, &record("s1", 1))));
        IdentityCache::hold(&memo, flushes, Some(&user), record.as_ref());
        memo
    }

    fn recalled(cache: &IdentityCache, memo: &Memo) -> Option<(i64, Option<String>)> {
        cache
            .recall(memo)
            .map(|(u, s)| (u.id, s.map(|s| s.id.clone())))
    }

    #[test]
    fn a_memo_serves_until_its_user_is_forgotten() {
        let cache = IdentityCache::new(100, Duration::from_secs(60), true);
        let memo = held(&cache, false);
        assert_eq!(recalled(&cache, &memo), Some((1, None)));
        // Another user's write leaves it alone.
        cache.forget_user(2);
        assert_eq!(recalled(&cache, &memo), Some((1, None)));
        cache.forget_user(1);
        assert_eq!(recalled(&cache, &memo), None);
    }

    #[test]
    fn a_memo_goes_with_its_session_record() {
        let cache = IdentityCache::new(100, Duration::from_secs(60), true);
        let memo = held(&cache, true);
        assert_eq!(recalled(&cache, &memo), Some((1, Some("s1".into()))));
        // Revoking the user's other sessions keeps this one.
        cache.forget_user_sessions(1, Some("s1"));
        assert_eq!(recalled(&cache, &memo), Some((1, Some("s1".into()))));
        cache.forget_user_sessions(1, None);
        assert_eq!(recalled(&cache, &memo), None);

        let memo = held(&cache, true);
        cache.forget_session("s1");
        assert_eq!(recalled(&cache, &memo), None);
    }

    #[test]
    fn a_flush_a_lost_feed_or_age_voids_a_memo() {
        let cache = IdentityCache::new(100, Duration::from_secs(60), true);
        let memo = held(&cache, true);
        cache.forget_all();
        assert_eq!(recalled(&cache, &memo), None);

        let memo = held(&cache, true);
        cache.watching(false);
        assert_eq!(recalled(&cache, &memo), None);
        cache.watching(true);
        assert_eq!(recalled(&cache, &memo), None);

        let cache = IdentityCache::new(100, Duration::from_millis(50), true);
        let memo = held(&cache, false);
        assert!(recalled(&cache, &memo).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(recalled(&cache, &memo), None);
    }

    #[test]
    fn a_memo_of_a_lookup_that_raced_a_write_is_void() {
        let cache = IdentityCache::new(100, Duration::from_secs(60), true);
        let memo = Memo::default();
        let flushes = cache.flushes.load(Ordering::SeqCst);
        let t = cache.ticket().expect("a live cache gives tickets");
        cache.forget_user(1);
        let user = Got::Cached(cache.put_user(t, Lookup::Uniquifier("a"), &user(1, "a")));
        IdentityCache::hold(&memo, flushes, Some(&user), None);
        assert_eq!(recalled(&cache, &memo), None);
    }

    #[test]
    fn an_evicted_entry_voids_its_memo() {
        let cache = IdentityCache::new(1, Duration::from_secs(60), true);
        let memo = held(&cache, false);
        let t = cache.ticket().expect("a live cache gives tickets");
        // A newcomer read often enough displaces user 1 (moka admits by
        // frequency).
        for _ in 0..20 {
            cache.put_user(t, Lookup::Id(2), &user(2, "b"));
            for _ in 0..5 {
                cache.users.get(&2);
            }
            cache.users.run_pending_tasks();
        }
        assert!(cache.users.get(&1).is_none(), "user 1 was evicted");
        assert_eq!(recalled(&cache, &memo), None);
    }
}
