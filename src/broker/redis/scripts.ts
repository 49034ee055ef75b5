/**
 * The Lua scripts of the Redis transport. Each runs atomically on the server,
 * which is what makes them safer than kombu's client-side steps:
 *
 * - FETCH pops a batch and records every message in the ack emulation in the
 *   same step, so a worker that dies (or loses the reply) after the pop leaves
 *   the messages in `unacked`, to be restored, never lost. kombu's BRPOP
 *   followed by a separate ZADD/HSET loses a message when the reply is lost.
 * - ACK, REQUEUE and RENEW touch only what the caller still owns.
 * - RESTORE re-checks every entry under the lock before pushing it back, so a
 *   lease renewed (or a message acked) after the sweep read it is left alone.
 *
 * The records they write are exactly kombu's (`unacked[tag] =
 * [envelope, exchange, routing_key]`, `unacked_index[tag] = epoch seconds`),
 * so Python workers restore what TypeScript workers lose, and vice versa.
 */

/**
 * KEYS: unacked_index, unacked, then the lists to pop from, in order.
 * ARGV: now (epoch s), n (slots), room of each slot, queue name of each slot,
 * '1' for each slot whose messages are recorded ('0': a no-ack consumer,
 * settled on delivery as kombu's no_ack), then the slot (1-based) of each list.
 * Returns a flat list: list number (1-based), envelope, delivery tag or false.
 *
 * The tag, exchange and routing key are read from the end of the envelope
 * without decoding it: kombu's envelope (and ours) ends with
 * `"delivery_info": {"exchange": E, "routing_key": R...}, ..., "delivery_tag": T}}`.
 * Plain finds in the last few hundred bytes cost about a third of
 * cjson.decode, which was two thirds of the script. Any other shape (or a
 * value with quotes or escapes) takes the full decode; an entry that is not
 * an envelope at all is handed over unrecorded, for the worker to reject.
 */
export const FETCH = `
local function tail(raw)
  local n = #raw
  local t = string.find(raw, '"delivery_tag":', n > 100 and n - 100 or 1, true)
  if not t then return nil end
  local tag = string.match(raw, '^"delivery_tag":%s*"([^"\\\\]+)"%s*}%s*}%s*$', t)
  if not tag then return nil end
  local d = string.find(raw, '"delivery_info":', t > 400 and t - 400 or 1, true)
  if not d then return nil end
  local ex, rk, close = string.match(raw, '^"delivery_info":%s*{%s*"exchange":%s*"([^"\\\\]*)",%s*"routing_key":%s*"([^"\\\\]*)"[^{}]*()}', d)
  -- Between delivery_info and delivery_tag nothing may open or close an object: same object.
  if not ex or string.find(string.sub(raw, close + 1, t - 1), '[{}]') then return nil end
  return tag, '[' .. raw .. ', "' .. ex .. '", "' .. rk .. '"]'
end

local function decoded(raw, queue)
  local ok, env = pcall(cjson.decode, raw)
  if not (ok and type(env) == 'table' and type(env.properties) == 'table') then return nil end
  local p = env.properties
  if type(p.delivery_tag) ~= 'string' or p.delivery_tag == '' then return nil end
  local ex, rk = '', queue
  if type(p.delivery_info) == 'table' then
    if type(p.delivery_info.exchange) == 'string' then ex = p.delivery_info.exchange end
    if type(p.delivery_info.routing_key) == 'string' then rk = p.delivery_info.routing_key end
  end
  return p.delivery_tag, '[' .. raw .. ',' .. cjson.encode(ex) .. ',' .. cjson.encode(rk) .. ']'
end

local now = ARGV[1]
local ns = tonumber(ARGV[2])
local room, qname, record = {}, {}, {}
for i = 1, ns do
  room[i] = tonumber(ARGV[2 + i])
  qname[i] = ARGV[2 + ns + i]
  record[i] = ARGV[2 + 2 * ns + i] == '1'
end
local base = 2 + 3 * ns
local out = {}
for j = 3, #KEYS do
  local slot = tonumber(ARGV[base + j - 2])
  while room[slot] > 0 do
    local raw = redis.call('RPOP', KEYS[j])
    if not raw then break end
    room[slot] = room[slot] - 1
    local tag, entry = nil, nil
    if record[slot] then
      tag, entry = tail(raw)
      if not tag then tag, entry = decoded(raw, qname[slot]) end
      if tag then
        redis.call('ZADD', KEYS[1], now, tag)
        redis.call('HSET', KEYS[2], tag, entry)
      end
    end
    out[#out + 1] = j - 2
    out[#out + 1] = raw
    out[#out + 1] = tag or false
  end
end
return out
`;

/** KEYS: unacked_index, unacked. ARGV: delivery tags. Settles them (ack, or reject without requeue). */
export const ACK = `
redis.call('ZREM', KEYS[1], unpack(ARGV))
redis.call('HDEL', KEYS[2], unpack(ARGV))
return 1
`;

/**
 * KEYS: unacked_index, unacked, the list to push to.
 * ARGV: delivery tag ('' = none), envelope, 'front' (RPUSH: next to be
 * consumed) or 'back' (LPUSH).
 * Returns 0 without pushing when the tag is no longer in `unacked`: someone
 * restored it already, and a second copy would run twice.
 */
export const REQUEUE = `
if ARGV[1] ~= '' then
  if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
    redis.call('ZREM', KEYS[1], ARGV[1])
    return 0
  end
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
if ARGV[3] == 'front' then
  redis.call('RPUSH', KEYS[3], ARGV[2])
else
  redis.call('LPUSH', KEYS[3], ARGV[2])
end
return 1
`;

/**
 * KEYS: unacked_index. ARGV: now (epoch s), then delivery tags.
 * Moves the visibility lease of each tag still in the index to now; returns
 * the tags that are gone (restored by someone after the visibility timeout).
 */
export const RENEW = `
local missing = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
return missing
`;

/**
 * KEYS: unacked_index, unacked, then the destination lists of every entry in order.
 * ARGV: ceiling (epoch s), then per entry: tag, sha1 of the unacked value
 * read, envelope to push (redelivered), number of destination lists.
 * An entry is restored only if it is still overdue and unchanged; an index
 * entry without a message is dropped, as kombu drops it. Returns the count restored.
 */
export const RESTORE = `
local ceil = tonumber(ARGV[1])
local k, a, restored = 3, 2, 0
while a <= #ARGV do
  local tag, digest, payload, nd = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  a = a + 4
  local score = redis.call('ZSCORE', KEYS[1], tag)
  if score and tonumber(score) <= ceil then
    local current = redis.call('HGET', KEYS[2], tag)
    if not current then
      redis.call('ZREM', KEYS[1], tag)
    elseif redis.sha1hex(current) == digest then
      redis.call('ZREM', KEYS[1], tag)
      redis.call('HDEL', KEYS[2], tag)
      for i = 0, nd - 1 do redis.call('RPUSH', KEYS[k + i], payload) end
      restored = restored + 1
    end
  end
  k = k + nd
end
return restored
`;

/** KEYS: the mutex. ARGV: our token. Releases the lock only if we still hold it (redis-py's Lock.release). */
export const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/**
 * KEYS: the binding table `_kombu.binding.<exchange>`, `_kombu.binding_deadlines`.
 * ARGV: binding member, exchange name, lifetime in ms.
 * kombu 5.7's binding of a queue with `x-expires`: the member goes in the
 * table (never in the permanent set) and the exchange's deadline is pushed to
 * now + lifetime by the server's clock, never pulled earlier (GT). The table
 * itself gets no TTL, so a volatile-* eviction policy cannot drop it.
 */
export const REFRESH_BINDING = `
redis.call('SADD', KEYS[1], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], 'GT', now + tonumber(ARGV[3]), ARGV[2])
return 1
`;

/**
 * KEYS: `_kombu.binding_deadlines`. ARGV: the table key and the permanent-set
 * key without the exchange name, the most tables to look at.
 * kombu 5.7's sweep: a table whose deadline passed (no consumer refreshed it)
 * is deleted, unless its permanent set says a queue without x-expires is
 * still bound; either way its deadline goes. Returns how many were due.
 */
export const SWEEP_BINDINGS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, exchange in ipairs(due) do
  if redis.call('EXISTS', ARGV[2] .. exchange) == 0 then
    redis.call('DEL', ARGV[1] .. exchange)
  end
  redis.call('ZREM', KEYS[1], exchange)
end
return #due
`;
