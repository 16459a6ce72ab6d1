-- Apply one batch of engagement changes to the minute buckets, exactly once per change of each engagement.
--
-- KEYS[1..K]      watermark hashes (one per consumer group and topic): partition -> highest applied offset
-- KEYS[K+1..]     pairs, one per minute: the bucket zset:eng:minute:<M>, then its change log eng:seen:<M>
--                 (hash id // 64 -> 13-byte entries: id % 64, the version last counted (double), the centis
--                 it scores (int32))
-- ARGV[1] = K, ARGV[2] = TTL in seconds (buckets and change logs), ARGV[3] = T (topic-partitions in the batch)
-- then T groups of 4: watermark key index (1..K), partition, lowest offset, highest offset
-- then one MessagePack array per minute, in KEYS order, 5 values per change: engagement id, version (ms),
-- op (c, r, u or d), the row's engagement seconds in hundredths (0 for a click), member (the
-- content id); a minute's changes are in batch (offset) order.
--
-- All or nothing: when any partition's watermark is at or above the batch's lowest offset for it, nothing is
-- written and the reply is {0, t1, watermark1, t2, watermark2, ...} so that the caller can drop the records
-- already applied and call again (redelivery at the same offsets). Otherwise each change sets what its
-- engagement scores (c, r, u: its seconds; d: 0) and adds the difference to what was counted for it, unless a
-- newer change of that engagement was counted already (re-emission at new offsets: same or older version).
-- An engagement with no entry yet counted nothing (c, r, u: a click is not remembered until it has seconds),
-- except for a delete, which takes the row's seconds off (the row was counted before its entry could exist). Every touched key gets the TTL, every watermark moves to the
-- batch's highest offset, and the reply is {1}.
local k = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local t = tonumber(ARGV[3])

local conflicts = {0}
local pos = 4
for i = 1, t do
  local current = redis.call('HGET', KEYS[tonumber(ARGV[pos])], ARGV[pos + 1])
  if current and tonumber(current) >= tonumber(ARGV[pos + 2]) then
    conflicts[#conflicts + 1] = i
    conflicts[#conflicts + 1] = current
  end
  pos = pos + 4
end
if #conflicts > 1 then
  return conflicts
end

-- The change log packs 64 consecutive engagement ids into one field (id // 64), as 13-byte entries
-- (id % 64, version as a double, centis as int32): far fewer, denser fields than one per id.
local GROUP = 64
local CHUNK = 2000
local at = pos
for key = k + 1, #KEYS, 2 do
  local bucket, seen = KEYS[key], KEYS[key + 1]
  local v = cmsgpack.unpack(ARGV[at])
  at = at + 1
  local n = #v / 5
  local groups, names = {}, {}
  for i = 1, n do
    local g = math.floor(v[5 * i - 4] / GROUP)
    if groups[g] == nil then
      groups[g] = true
      names[#names + 1] = g
    end
  end
  local versions, counted = {}, {}
  for first = 1, #names, CHUNK do
    local last = math.min(first + CHUNK - 1, #names)
    local fields = {}
    for f = first, last do
      fields[f - first + 1] = string.format('%.0f', names[f])
    end
    local values = redis.call('HMGET', seen, unpack(fields))
    for f = first, last do
      local value = values[f - first + 1]
      if value then
        local base = names[f] * GROUP
        for p = 1, #value, 13 do
          local off, version, centis = struct.unpack('<Bdi4', value, p)
          versions[base + off] = version
          counted[base + off] = centis
        end
      end
    end
  end
  local deltas = {}
  for i = 1, n do
    local j = 5 * i - 4
    local id = v[j]
    local version = v[j + 1]
    local op = v[j + 2]
    local centis = v[j + 3]
    local now = centis
    if op == 'd' then
      now = 0
    end
    local had = versions[id]
    local before = nil
    if had == nil then
      if op == 'd' then
        before = centis
      else
        before = 0
      end
    elseif version >= had then
      before = counted[id]
    end
    if before ~= nil then
      versions[id] = version
      counted[id] = now
      if now ~= before then
        local member = v[j + 4]
        deltas[member] = (deltas[member] or 0) + now - before
      end
    end
  end
  local writes = {}
  for _, g in ipairs(names) do
    local base = g * GROUP
    local parts = {}
    for off = 0, GROUP - 1 do
      local version = versions[base + off]
      if version ~= nil then
        parts[#parts + 1] = struct.pack('<Bdi4', off, version, counted[base + off])
      end
    end
    writes[#writes + 1] = string.format('%.0f', g)
    writes[#writes + 1] = table.concat(parts)
    if #writes >= 2 * CHUNK then
      redis.call('HSET', seen, unpack(writes))
      writes = {}
    end
  end
  if #writes > 0 then
    redis.call('HSET', seen, unpack(writes))
  end
  if #names > 0 then
    redis.call('EXPIRE', seen, ttl)
  end
  local touched = false
  for member, centis in pairs(deltas) do
    if centis ~= 0 then
      local delta = centis / 100
      local score = redis.call('ZINCRBY', bucket, delta, member)
      if delta < 0 and tonumber(score) < 0.005 then
        redis.call('ZREM', bucket, member)
      end
      touched = true
    end
  end
  if touched then
    redis.call('EXPIRE', bucket, ttl)
  end
end
pos = 4
for i = 1, t do
  redis.call('HSET', KEYS[tonumber(ARGV[pos])], ARGV[pos + 1], ARGV[pos + 3])
  pos = pos + 4
end
return {1}
