-- Apply one batch of engagement changes to the minute buckets, exactly once per change of each engagement.
--
-- KEYS[1..K]      watermark hashes (one per consumer group and topic): partition -> highest applied offset
-- KEYS[K+1..]     pairs, one per minute: the bucket zset:eng:minute:<M>, then its change log eng:seen:<M>
--                 (hash engagement id -> "<version> <centis>": the change last counted and what it scores)
-- ARGV[1] = K, ARGV[2] = TTL in seconds (buckets and change logs), ARGV[3] = T (topic-partitions in the batch)
-- then T groups of 4: watermark key index (1..K), partition, lowest offset, highest offset
-- then one packed string per minute, in KEYS order: "id version code member id version code member ..."
-- where code is the op letter (c, r, u or d) followed by the row's engagement seconds in hundredths (0 for a
-- click) and member the content id; a minute's changes are in batch (offset) order.
--
-- All or nothing: when any partition's watermark is at or above the batch's lowest offset for it, nothing is
-- written and the reply is {0, t1, watermark1, t2, watermark2, ...} so that the caller can drop the records
-- already applied and call again (redelivery at the same offsets). Otherwise each change sets what its
-- engagement scores (c, r, u: its seconds; d: 0) and adds the difference to what was counted for it, unless a
-- newer change of that engagement was counted already (re-emission at new offsets: same or older version).
-- An engagement with no entry yet counted nothing (c, r), or was counted before its entry could exist (u
-- keeps the row's seconds, d takes them off). Every touched key gets the TTL, every watermark moves to the
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

local CHUNK = 4000
local b = 0
for key = k + 1, #KEYS, 2 do
  local bucket, seen = KEYS[key], KEYS[key + 1]
  local ids, versions, codes, members = {}, {}, {}, {}
  for id, version, code, member in string.gmatch(ARGV[pos + b], '(%S+) (%S+) (%S+) (%S+)') do
    local n = #ids + 1
    ids[n], versions[n], codes[n], members[n] = id, version, code, member
  end
  b = b + 1
  local counted = {}
  for first = 1, #ids, CHUNK do
    local last = math.min(first + CHUNK - 1, #ids)
    local values = redis.call('HMGET', seen, unpack(ids, first, last))
    for i = first, last do
      local value = values[i - first + 1]
      if counted[ids[i]] == nil then
        counted[ids[i]] = value or false
      end
    end
  end
  local state, deltas, writes = {}, {}, {}
  for i = 1, #ids do
    local id = ids[i]
    local version = tonumber(versions[i])
    local op = string.sub(codes[i], 1, 1)
    local centis = tonumber(string.sub(codes[i], 2))
    local now = centis
    if op == 'd' then
      now = 0
    end
    local entry = state[id]
    if entry == nil then
      local value = counted[id]
      if value then
        local v, c = string.match(value, '(%S+) (%S+)')
        entry = {tonumber(v), tonumber(c)}
      end
    end
    local before = nil
    if entry == nil then
      if op == 'c' or op == 'r' then
        before = 0
      else
        before = centis
      end
    elseif version >= entry[1] then
      before = entry[2]
    end
    if before ~= nil then
      state[id] = {version, now}
      if now ~= before then
        deltas[members[i]] = (deltas[members[i]] or 0) + now - before
      end
    end
  end
  for id, entry in pairs(state) do
    writes[#writes + 1] = id
    writes[#writes + 1] = string.format('%.0f %d', entry[1], entry[2])
    if #writes >= 2 * CHUNK then
      redis.call('HSET', seen, unpack(writes))
      writes = {}
    end
  end
  if #writes > 0 then
    redis.call('HSET', seen, unpack(writes))
  end
  redis.call('EXPIRE', seen, ttl)
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
