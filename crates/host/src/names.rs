//! uid/gid → name resolution with a bounded, time-limited cache.
//!
//! Name lookups go through NSS (files, LDAP, sssd...) and can be slow, so results, including
//! "no such id", are cached. Accounts are rarely renamed, so a TTL of minutes keeps the
//! names fresh enough without a lookup per event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Resolves one numeric id to a name; `None` when the id has no entry.
pub type NameResolver = fn(u32) -> Option<String>;

/// A bounded cache from numeric id to name, with a time to live per entry.
#[derive(Debug)]
pub struct IdNameCache {
    entries: HashMap<u32, (Option<Arc<str>>, Instant)>,
    ttl: Duration,
    capacity: usize,
    resolve: NameResolver,
    lookups: u64,
}

impl IdNameCache {
    /// A cache of at most `capacity` ids (at least 1) using `resolve` on a miss.
    pub fn new(resolve: NameResolver, capacity: usize, ttl: Duration) -> Self {
        IdNameCache {
            entries: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
            resolve,
            lookups: 0,
        }
    }

    /// The name of `id`, resolved at most once per TTL.
    pub fn get(&mut self, id: u32) -> Option<Arc<str>> {
        self.get_at(id, Instant::now())
    }

    fn get_at(&mut self, id: u32, now: Instant) -> Option<Arc<str>> {
        if let Some((name, at)) = self.entries.get(&id) {
            if now.saturating_duration_since(*at) < self.ttl {
                return name.clone();
            }
        }
        self.lookups += 1;
        let name: Option<Arc<str>> = (self.resolve)(id).map(Arc::from);
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&id) {
            self.evict(now);
        }
        self.entries.insert(id, (name.clone(), now));
        name
    }

    /// Drops expired entries; if none expired, drops the older half (amortised O(1) per
    /// insert, and the cache never exceeds its capacity).
    fn evict(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.entries
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
        if self.entries.len() >= self.capacity {
            let mut ages: Vec<Instant> = self.entries.values().map(|(_, at)| *at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            self.entries.retain(|_, (_, at)| *at > cutoff);
            // All entries may share one instant: fall back to clearing.
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
    }

    /// Number of cached ids.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many times the resolver was called (cache misses).
    pub fn lookups(&self) -> u64 {
        self.lookups
    }
}

/// User and group name caches with the system resolvers (`getpwuid_r` / `getgrgid_r` on unix;
/// no names elsewhere for now).
#[derive(Debug)]
pub struct UserNames {
    /// uid → user name.
    pub users: IdNameCache,
    /// gid → group name.
    pub groups: IdNameCache,
}

impl UserNames {
    /// Default sizing: 4096 ids each, names refreshed every 10 minutes.
    pub fn new() -> Self {
        Self::with_limits(4096, Duration::from_secs(600))
    }

    /// Caches of `capacity` ids each with the given TTL.
    pub fn with_limits(capacity: usize, ttl: Duration) -> Self {
        UserNames {
            users: IdNameCache::new(user_name_uncached, capacity, ttl),
            groups: IdNameCache::new(group_name_uncached, capacity, ttl),
        }
    }

    /// The user name of `uid` (`user.name`).
    pub fn user(&mut self, uid: u32) -> Option<Arc<str>> {
        self.users.get(uid)
    }

    /// The group name of `gid` (`group.name`).
    pub fn group(&mut self, gid: u32) -> Option<Arc<str>> {
        self.groups.get(gid)
    }
}

impl Default for UserNames {
    fn default() -> Self {
        Self::new()
    }
}

/// Starting buffer for the *_r calls; grown on ERANGE up to `MAX_BUF`.
#[cfg(unix)]
const START_BUF: usize = 1024;
#[cfg(unix)]
const MAX_BUF: usize = 1 << 20;

#[cfg(unix)]
fn user_name_uncached(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; START_BUF];
    loop {
        // SAFETY: an all-zero passwd is a valid value for this plain C struct (null pointers
        // and zero integers); it is only an out-parameter.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the duration of the call: `pwd` and `result` are
        // live locals, `buf` is a writable allocation of `buf.len()` bytes. The strings in
        // `pwd` point into `buf`, which we read before it is dropped or reallocated.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_BUF {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success `pw_name` is a NUL-terminated string inside `buf`, still alive.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

#[cfg(unix)]
fn group_name_uncached(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; START_BUF];
    loop {
        // SAFETY: an all-zero group is a valid value for this plain C struct (out-parameter).
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as for getpwuid_r above: valid out-pointers and a buffer of `buf.len()`
        // writable bytes that outlives every use of the returned strings.
        let rc = unsafe {
            libc::getgrgid_r(
                gid,
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_BUF {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || grp.gr_name.is_null() {
            return None;
        }
        // SAFETY: on success `gr_name` is a NUL-terminated string inside `buf`, still alive.
        let name = unsafe { std::ffi::CStr::from_ptr(grp.gr_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

#[cfg(not(unix))]
fn user_name_uncached(_uid: u32) -> Option<String> {
    None
}

#[cfg(not(unix))]
fn group_name_uncached(_gid: u32) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn uid_and_gid_zero_are_root() {
        let mut names = UserNames::new();
        assert_eq!(names.user(0).as_deref(), Some("root"));
        assert_eq!(names.group(0).as_deref(), Some("root"));
        // An id nobody has resolves to None, and that answer is cached too.
        assert_eq!(names.user(3_999_999_999), None);
        let before = names.users.lookups();
        assert_eq!(names.user(3_999_999_999), None);
        assert_eq!(names.user(0).as_deref(), Some("root"));
        assert_eq!(names.users.lookups(), before);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn names_match_etc_passwd() {
        let mut names = UserNames::new();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        // Base system accounts only: other tests on this machine may add or remove users.
        for line in passwd.lines().take(10) {
            let f: Vec<&str> = line.split(':').collect();
            let uid: u32 = f[2].parse().unwrap();
            if uid >= 100 {
                continue;
            }
            assert_eq!(names.user(uid).as_deref(), Some(f[0]), "{line}");
        }
    }

    fn counting(id: u32) -> Option<String> {
        (id % 2 == 0).then(|| format!("n{id}"))
    }

    #[test]
    fn ttl_expiry_triggers_a_new_lookup() {
        let mut c = IdNameCache::new(counting, 16, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(c.get_at(2, t0).as_deref(), Some("n2"));
        assert_eq!(
            c.get_at(2, t0 + Duration::from_secs(59)).as_deref(),
            Some("n2")
        );
        assert_eq!(c.lookups(), 1);
        assert_eq!(
            c.get_at(2, t0 + Duration::from_secs(61)).as_deref(),
            Some("n2")
        );
        assert_eq!(c.lookups(), 2);
    }

    #[test]
    fn cache_never_exceeds_capacity_and_keeps_recent_entries() {
        let mut c = IdNameCache::new(counting, 8, Duration::from_secs(3600));
        let t0 = Instant::now();
        for i in 0..1000u32 {
            c.get_at(i, t0 + Duration::from_millis(u64::from(i)));
            assert!(c.len() <= 8, "len {} at {i}", c.len());
        }
        let before = c.lookups();
        c.get_at(999, t0 + Duration::from_millis(1000));
        assert_eq!(c.lookups(), before, "most recent id must still be cached");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn resolver(id: u32) -> Option<String> {
        (id % 3 != 0).then(|| format!("user{id}"))
    }

    proptest! {
        /// Whatever the sequence of lookups and clock jumps, answers are the resolver's, the
        /// cache stays within capacity, and a repeated lookup within the TTL costs nothing.
        #[test]
        fn answers_are_always_the_resolvers(
            cap in 1usize..10,
            ops in prop::collection::vec((0u32..30, 0u64..90), 1..300),
        ) {
            let mut c = IdNameCache::new(resolver, cap, Duration::from_secs(60));
            let mut now = Instant::now();
            for (id, advance) in ops {
                now += Duration::from_secs(advance);
                let expected = resolver(id);
                let got = c.get_at(id, now);
                prop_assert_eq!(got.as_deref(), expected.as_deref());
                prop_assert!(c.len() <= cap);
                let before = c.lookups();
                let again = c.get_at(id, now);
                prop_assert_eq!(again.as_deref(), expected.as_deref());
                prop_assert_eq!(c.lookups(), before);
            }
        }
    }
}
