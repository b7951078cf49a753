//! The Lua scripts behind [`super::RedisStore`]: each changes a record, its index
//! entries and the expiry set in one atomic step, so concurrent replicas never see a
//! record without its index entries or the other way round.
//!
//! Every key a script touches shares the store's hash tag (`{portcullis}`), so in a
//! Redis Cluster they live in one slot and a script may name keys it derives from
//! ones it was given (an index key read from a record) without a cross-slot error.
//!
//! Record hash fields: `d` the sealed session, `x` its expiry (unix seconds, on the
//! proxy's clock), `i` the sid index tag ("" without a sid), `u` the sub index tag.
//!
//! Every script that changes or deletes a record also publishes the record's
//! member (its key hex: a hash, not a credential) on the store's invalidation
//! channel, in the same atomic step, so no replica's cache can miss a change that
//! Redis has made. The channel is an argument; "" publishes nothing (a cluster,
//! which has no cache). `redis.pcall`: a Redis user not allowed on the channel
//! (Redis 7 ACLs deny channels by default) still writes; its replicas cannot
//! subscribe either, so none of them caches.

use ::redis::Script;

/// Saves a record and moves it between index sets when its sid or sub changed.
///
/// KEYS: record, expiry zset, sid index (ignored when ARGV[5] is ""), sub index.
/// ARGV: sealed, expires_at, ttl ms, member (key hex), sid tag or "", sub tag,
/// key prefix (`{tag}:`), now, "1" to write only over a live record,
/// invalidation channel or "".
/// Returns 1 when it wrote (and published), 0 when `only_live` found no live record.
const SAVE: &str = r#"
local record, expiry, sid_index, sub_index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sealed, expires_at, ttl, member = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local sid, sub, prefix, now, only_live = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local channel = ARGV[10]

if only_live == '1' then
  local x = redis.call('HGET', record, 'x')
  if not x or tonumber(x) <= tonumber(now) then
    return 0
  end
end

local old = redis.call('HMGET', record, 'i', 'u')
if old[1] and old[1] ~= '' and old[1] ~= sid then
  redis.call('SREM', prefix .. 'sid:' .. old[1], member)
end
if old[2] and old[2] ~= sub then
  redis.call('SREM', prefix .. 'sub:' .. old[2], member)
end

redis.call('HSET', record, 'd', sealed, 'x', expires_at, 'i', sid, 'u', sub)
redis.call('PEXPIRE', record, ttl)

-- A set or zset lives as long as its longest-lived member (PEXPIRE GT would
-- never set a first expiry: GT treats "no expiry" as infinite).
local function extend(key)
  if redis.call('PTTL', key) < ttl then
    redis.call('PEXPIRE', key, ttl)
  end
end
if sid ~= '' then
  redis.call('SADD', sid_index, member)
  extend(sid_index)
end
redis.call('SADD', sub_index, member)
extend(sub_index)
redis.call('ZADD', expiry, expires_at, member)
redis.call('ZREMRANGEBYSCORE', expiry, '-inf', now)
extend(expiry)
if channel ~= '' then
  redis.pcall('PUBLISH', channel, member)
end
return 1
"#;

/// Deletes one record and its index entries, and publishes its member.
///
/// KEYS: record, expiry zset. ARGV: member, key prefix, invalidation channel or "".
const DELETE: &str = r#"
local record, expiry = KEYS[1], KEYS[2]
local member, prefix, channel = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HMGET', record, 'i', 'u')
if old[1] and old[1] ~= '' then
  redis.call('SREM', prefix .. 'sid:' .. old[1], member)
end
if old[2] then
  redis.call('SREM', prefix .. 'sub:' .. old[2], member)
end
redis.call('ZREM', expiry, member)
local deleted = redis.call('DEL', record)
if channel ~= '' then
  redis.pcall('PUBLISH', channel, member)
end
return deleted
"#;

/// Deletes every record filed under one sid or sub tag, publishing each one's
/// member; returns how many of them were live at `now`, and the deleted members.
/// A member whose record is gone, or now carries another tag, is a stale entry
/// and only leaves the set.
///
/// KEYS: index set, expiry zset. ARGV: field (`i` or `u`), tag, key prefix, now,
/// invalidation channel or "". Returns `{live, {member, ...}}`.
const DELETE_BY: &str = r#"
local index, expiry = KEYS[1], KEYS[2]
local field, tag, prefix, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local channel = ARGV[5]
local live = 0
local deleted = {}
for _, member in ipairs(redis.call('SMEMBERS', index)) do
  local record = prefix .. 'session:' .. member
  local f = redis.call('HMGET', record, 'i', 'u', 'x')
  local filed_here = (field == 'i' and f[1] == tag) or (field == 'u' and f[2] == tag)
  if filed_here then
    if f[1] and f[1] ~= '' then
      redis.call('SREM', prefix .. 'sid:' .. f[1], member)
    end
    if f[2] then
      redis.call('SREM', prefix .. 'sub:' .. f[2], member)
    end
    redis.call('ZREM', expiry, member)
    redis.call('DEL', record)
    if channel ~= '' then
      redis.pcall('PUBLISH', channel, member)
    end
    deleted[#deleted + 1] = member
    if tonumber(f[3]) > now then
      live = live + 1
    end
  end
end
redis.call('DEL', index)
return {live, deleted}
"#;

/// Extends a lease if and only if we still hold it. KEYS: lease. ARGV: token, ttl ms.
const RENEW_LEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// Releases a lease if and only if we still hold it (compare-and-delete: a lease
/// that expired and was taken by another replica is not ours to delete).
/// KEYS: lease. ARGV: token.
const RELEASE_LEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Stores a new link whatever is there, under a generation never used before.
///
/// KEYS: link, generation counter, then the link's keys under older secrets
/// (deleted: a copy left there could come back once this one is deleted).
/// ARGV: sealed. Returns the generation.
const PUT_LINK: &str = r#"
local generation = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'g', generation)
for i = 3, #KEYS do
  redis.call('DEL', KEYS[i])
end
return generation
"#;

/// Replaces a link only if it is still the generation the caller read, moving it
/// from the key it was read under (an older secret's) to the current one.
///
/// KEYS: read from, write to, generation counter. ARGV: expected generation,
/// sealed (for the write-to key). Returns the new generation, or 0 (nothing
/// written) when the link changed or went, or a newer one exists under the
/// current key.
const REPLACE_LINK: &str = r#"
local from, to, counter = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HGET', from, 'g') ~= ARGV[1] then
  return 0
end
if from ~= to then
  if redis.call('EXISTS', to) == 1 then
    return 0
  end
  redis.call('DEL', from)
end
local generation = redis.call('INCR', counter)
redis.call('HSET', to, 'd', ARGV[2], 'g', generation)
return generation
"#;

/// Deletes a link only if it is still the generation the caller read.
///
/// KEYS: link. ARGV: expected generation. Returns 1 when it deleted, else 0.
const DELETE_LINK_IF: &str = r#"
if redis.call('HGET', KEYS[1], 'g') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// The scripts, hashed once (EVALSHA, falling back to EVAL after a restart).
pub(super) struct Scripts {
    pub save: Script,
    pub delete: Script,
    pub delete_by: Script,
    pub renew_lease: Script,
    pub release_lease: Script,
    pub put_link: Script,
    pub replace_link: Script,
    pub delete_link_if: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Scripts {
            save: Script::new(SAVE),
            delete: Script::new(DELETE),
            delete_by: Script::new(DELETE_BY),
            renew_lease: Script::new(RENEW_LEASE),
            release_lease: Script::new(RELEASE_LEASE),
            put_link: Script::new(PUT_LINK),
            replace_link: Script::new(REPLACE_LINK),
            delete_link_if: Script::new(DELETE_LINK_IF),
        }
    }
}
