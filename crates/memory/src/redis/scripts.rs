//! The Lua scripts behind the read-modify-write operations. Redis runs a script to completion
//! before it serves any other command, so each script is one atomic step across every
//! replica: two workers appending the same redelivered entry, or racing on a state version,
//! cannot interleave between the check and the write.
//!
//! Expiries travel as `ARGV` milliseconds, `0` meaning "none". Numbers that must stay exact
//! (versions, counters) travel and return as decimal strings: Lua numbers are doubles and would
//! round values above 2^53.

use std::sync::LazyLock;

use redis::Script;

/// Appends a history entry unless its id is remembered, then trims.
///
/// KEYS[1]: the entries (list of JSON, oldest first). KEYS[2]: the remembered ids (sorted set,
/// score = insertion sequence). ARGV: id, entry JSON, cap, id window, ttl ms.
///
/// The id set remembers the last `window` (= 2 x cap) ids while the list keeps the last `cap`
/// entries, so a redelivery of an entry trimmed not long ago is still recognised and ignored
/// instead of coming back as the newest entry. Returns 1 when appended, 0 for a duplicate.
pub(super) static APPEND_HISTORY: LazyLock<Script> =
    LazyLock::new(|| Script::new(APPEND_HISTORY_LUA));

/// The Lua of [`APPEND_HISTORY`].
pub(crate) const APPEND_HISTORY_LUA: &str = r"
local id, entry = ARGV[1], ARGV[2]
local cap, window, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('ZSCORE', KEYS[2], id) then
  return 0
end
-- -2: no history yet; -1: kept without expiry; else the ms it still has.
local left = redis.call('PTTL', KEYS[1])
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local seq = 1
if newest[2] then
  seq = tonumber(newest[2]) + 1
end
redis.call('ZADD', KEYS[2], seq, id)
-- Trim only what is over: each call costs about as much as a SET.
if redis.call('RPUSH', KEYS[1], entry) > cap then
  redis.call('LTRIM', KEYS[1], -cap, -1)
end
if seq > window then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', seq - window)
end
if ttl > 0 then
  -- An entry with a shorter life never shortens the history's.
  if left ~= -1 then
    if left > ttl then ttl = left end
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
return 1
";

/// Stores a state if its version is greater than the stored one.
///
/// KEYS[1]: the state (hash with `version` and `value`). ARGV: version (decimal), value JSON,
/// ttl ms. Returns 1 when stored, 0 when the stored version is not lower.
pub(super) static PUT_STATE: LazyLock<Script> = LazyLock::new(|| Script::new(PUT_STATE_LUA));

/// The Lua of [`PUT_STATE`].
pub(crate) const PUT_STATE_LUA: &str = r"
-- Compares two canonical decimal integers exactly (no doubles): -1, 0 or 1.
local function compare(a, b)
  local a_negative, b_negative = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if a_negative ~= b_negative then
    return a_negative and -1 or 1
  end
  local a_digits = a_negative and a:sub(2) or a
  local b_digits = b_negative and b:sub(2) or b
  local order = 0
  if #a_digits ~= #b_digits then
    order = #a_digits < #b_digits and -1 or 1
  elseif a_digits ~= b_digits then
    order = a_digits < b_digits and -1 or 1
  end
  return a_negative and -order or order
end

local version, value, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local stored = redis.call('HGET', KEYS[1], 'version')
if stored and compare(version, stored) <= 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'version', version, 'value', value)
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
return 1
";

/// Adds to a counter, setting the expiry only when this call created it.
///
/// KEYS[1]: the counter. ARGV: increment, ttl ms. Returns the new value as a string.
pub(super) static INCR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local created = redis.call('EXISTS', KEYS[1]) == 0
redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if created and ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return redis.call('GET', KEYS[1])
",
    )
});

/// Adds a member to a join set, setting the expiry only when this call created it.
///
/// KEYS[1]: the set. ARGV: member, ttl ms. Returns the set's size.
pub(super) static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local created = redis.call('EXISTS', KEYS[1]) == 0
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if created and ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return redis.call('SCARD', KEYS[1])
",
    )
});

/// Deletes a value only if it is the expected one: a compare-and-delete.
///
/// KEYS[1]: the value. ARGV: the expected bytes. Returns 1 when deleted, 0 otherwise.
pub(super) static DELETE_IF_EQUALS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Adds a member to a sorted index unless it is there, then trims it.
///
/// KEYS[1]: the index (sorted set, score = the caller's). ARGV: member, score, cap, min score
/// (`-inf` for none). Returns 1 when added, 0 when it was there (its score stays).
pub(super) static INDEX_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local added = redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
if ARGV[4] ~= '-inf' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
end
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if excess > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
end
return added
",
    )
});

/// A page of a sorted index, highest score first, after a given entry.
///
/// KEYS[1]: the index. ARGV: the highest score to read (`+inf`, or the last entry's), the last
/// entry's member (empty: none), limit. Redis orders equal scores by member, so from the
/// highest score down, members of the last entry's score not below it were on the page
/// before. Returns member, score, member, score, ...
pub(super) static INDEX_PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local max, after, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local offset = 0
while #out < 2 * limit do
  local batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'WITHSCORES', 'LIMIT', offset, limit)
  if #batch == 0 then
    break
  end
  for i = 1, #batch, 2 do
    if after == '' or tonumber(batch[i + 1]) ~= tonumber(max) or batch[i] < after then
      out[#out + 1] = batch[i]
      out[#out + 1] = batch[i + 1]
      if #out >= 2 * limit then
        break
      end
    end
  end
  offset = offset + limit
end
return out
",
    )
});
