-- Apply content upserts and deletes to the shared content store, newest version wins.
-- KEYS[1] = hash content id -> JSON of the content (absent when deleted)
-- KEYS[2] = hash content id -> version of the last applied change (kept after deletes)
-- ARGV = id1, version1, json1, id2, version2, json2, ...   (json "" means delete)
-- A change applies when its version is >= the stored one, so replays in any order converge on the newest
-- change. Returns the number of changes applied.
local applied = 0
for i = 1, #ARGV, 3 do
  local id = ARGV[i]
  local version = tonumber(ARGV[i + 1])
  local body = ARGV[i + 2]
  local current = tonumber(redis.call('HGET', KEYS[2], id) or '-1')
  if version >= current then
    redis.call('HSET', KEYS[2], id, ARGV[i + 1])
    if body == '' then
      redis.call('HDEL', KEYS[1], id)
    else
      redis.call('HSET', KEYS[1], id, body)
    end
    applied = applied + 1
  end
end
return applied
