-- members.lua: one page of a room's members, by name.
-- KEYS[1] P:R:messages:members   zset (all scores 0): the members by name
-- KEYS[2] P:R                    user -> last id (the seed's hash)
-- KEYS[3] P:R:messages:read      user -> read marker
-- KEYS[4] P:R:messages:seen      user -> their last read marker (Unix ms)
-- KEYS[5] P:R:messages:cursor    'members' = 1 once the index is built
-- ARGV[1] "P:R:" (message key prefix), ARGV[2] the names after this one
-- ('' = from the first), ARGV[3] limit
-- Returns { next_after, user, last_id, read, last_seen, user, ... }:
-- next_after is the last name returned when more follow, else ''; last_id
-- and read 0 when none; last_seen (Unix ms) the later of the last marker
-- and the user's last message, 0 when unknown. A member is whoever sent
-- (through the bridge or the seed's own commands) or marked read. The
-- index is built once from the seed's hash and the markers (a room of an
-- older bridge), then kept by send.lua, read.lua and adopt.lua.
-- Cost: O(log n + limit), and O(n) once per room.
if redis.call('HGET', KEYS[5], 'members') ~= '1' then
    for _, key in ipairs({ KEYS[2], KEYS[3] }) do
        local names = redis.call('HKEYS', key)
        for i = 1, #names do redis.call('ZADD', KEYS[1], 0, names[i]) end
    end
    redis.call('HSET', KEYS[5], 'members', '1')
end
local limit = tonumber(ARGV[3])
local lo = '-'
if ARGV[2] ~= '' then lo = '(' .. ARGV[2] end
local names = redis.call('ZRANGEBYLEX', KEYS[1], lo, '+', 'LIMIT', 0, limit + 1)
local out = { '' }
for i = 1, math.min(#names, limit) do
    local u = names[i]
    local last = redis.call('HGET', KEYS[2], u)
    local seen = tonumber(redis.call('HGET', KEYS[4], u) or '0') or 0
    if last then
        local h = redis.call('HMGET', ARGV[1] .. last, 'timestamp_ms', 'timestamp')
        local t = tonumber(h[1] or '')
        if not t then
            t = tonumber(h[2] or '0') or 0
            if t < 100000000000 then t = t * 1000 end
        end
        if t > seen then seen = t end
    end
    out[#out + 1] = u
    out[#out + 1] = tonumber(last or '0') or 0
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[3], u) or '0') or 0
    out[#out + 1] = seen
end
if #names > limit then out[1] = names[limit] end
return out
