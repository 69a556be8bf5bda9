-- room.lua: one room as a user's room list shows it.
-- KEYS[1] P:R:messages             room counter
-- KEYS[2] P:R:messages:read        user -> read marker
-- KEYS[3] P:R:messages:ids         room index
-- KEYS[4] P:R:U:ids                the user's index in the room
-- ARGV[1] "P:R:" (message key prefix), ARGV[2] user
-- Returns { last_id, read, unread, id, user, text, ts, edited }: the
-- room's counter, the user's marker, the others' messages above it, and
-- the room's newest live message (id 0 and no fields when none; ts in
-- Unix ms). Read only. Cost O(log n).
local read = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') or 0
local above = '(' .. read
local out = { tonumber(redis.call('GET', KEYS[1]) or '0') or 0, read,
              redis.call('ZCOUNT', KEYS[3], above, '+inf') -
              redis.call('ZCOUNT', KEYS[4], above, '+inf'), 0, '', '', 0, 0 }
local ids = redis.call('ZREVRANGE', KEYS[3], 0, 7)
for i = 1, #ids do
    local h = redis.call('HMGET', ARGV[1] .. ids[i], 'user', 'content', 'timestamp_ms',
                         'timestamp', 'edited')
    if h[1] and h[2] then
        local ts = tonumber(h[3] or '')
        if not ts then
            ts = tonumber(h[4] or '0') or 0
            if ts < 100000000000 then ts = ts * 1000 end
        end
        out[4], out[5], out[6] = tonumber(ids[i]), h[1], h[2]
        out[7], out[8] = ts, tonumber(h[5] or '0') or 0
        return out
    end
end
return out
