-- history.lua: one page of a room's (or one user's) messages, newest first.
-- KEYS[1] P:R:messages:ids or P:R:U:ids   the index to page through
-- ARGV[1] "P:R:" (message key prefix), ARGV[2] before (0 = from the newest),
-- ARGV[3] limit
-- Returns { next_before, id, user, text, ts, client_msg_id, id, ... }:
-- next_before is the oldest id returned when older messages exist, else 0.
-- Cost: O(log n + limit) whatever the room's size.
local limit = tonumber(ARGV[3])
local max = '+inf'
if ARGV[2] ~= '0' then max = '(' .. ARGV[2] end
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf',
                       'LIMIT', 0, limit + 1)
local n = math.min(#ids, limit)
local out = { 0 }
if #ids > limit then out[1] = tonumber(ids[limit]) end
for i = 1, n do
    local h = redis.call('HMGET', ARGV[1] .. ids[i],
                         'user', 'content', 'timestamp', 'client_msg_id')
    out[#out + 1] = ids[i]
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
    out[#out + 1] = h[3]
    out[#out + 1] = h[4]
end
return out
