-- Apply one batch of pre-aggregated engagement seconds to the minute buckets, exactly once per record.
--
-- KEYS[1..K]      watermark hashes (one per consumer group and topic): partition -> highest applied offset
-- KEYS[K+1..K+B]  minute buckets zset:eng:minute:<YYYYMMDDHHMM>
-- ARGV[1] = K, ARGV[2] = bucket TTL in seconds, ARGV[3] = T (number of topic-partitions in the batch)
-- then T groups of 4: watermark key index (1..K), partition, lowest offset, highest offset
-- then B packed strings, one per bucket in KEYS order: "member centis member centis ..." (members are content
-- ids, which hold no spaces; centis is the change in hundredths of engagement seconds and may be negative;
-- centis / 100 is the double nearest the 2-decimal value, the same number its decimal text would give)
--
-- All or nothing: when any partition's watermark is at or above the batch's lowest offset for it, nothing is
-- written and the reply is {0, t1, watermark1, t2, watermark2, ...} so that the caller can drop the records
-- already applied and call again. Otherwise every delta is added, every touched bucket gets the TTL, every
-- watermark moves to the batch's highest offset, and the reply is {1}.
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

for b = k + 1, #KEYS do
  local key = KEYS[b]
  for member, centis in string.gmatch(ARGV[pos + b - k - 1], '(%S+) (%S+)') do
    local delta = tonumber(centis) / 100
    local score = redis.call('ZINCRBY', key, delta, member)
    if delta < 0 and tonumber(score) < 0.005 then
      redis.call('ZREM', key, member)
    end
  end
  redis.call('EXPIRE', key, ttl)
end
pos = 4
for i = 1, t do
  redis.call('HSET', KEYS[tonumber(ARGV[pos])], ARGV[pos + 1], ARGV[pos + 3])
  pos = pos + 4
end
return {1}
