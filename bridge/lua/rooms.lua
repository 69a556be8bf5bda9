-- rooms.lua: a user's rooms as a room list shows them.
-- KEYS[1] P:$user:U:rooms (the user's rooms: ARGV[4] is "") or, in cluster
--         mode, the counter of the one room ARGV[4] names (the script
--         runs in that room's slot)
-- ARGV[1] "P:" (the key prefix), ARGV[2] the user U, ARGV[3] "1" when room
-- keys are hash-tagged ("P:{R}:..."), ARGV[4] "" or one room, ARGV[5] the
-- most rooms read from KEYS[1]
-- Returns { room, last_id, read, unread, id, user, text, ts, edited, ... }
-- per room: the room's counter, U's marker, the others' messages above it,
-- and the room's newest live message (id 0, "" and 0 when none; ts in
-- Unix ms). Read only. Cost O(log n) per room.
local prefix, user = ARGV[1], ARGV[2]
local rooms = { ARGV[4] }
if ARGV[4] == '' then
    rooms = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)
end

local function ts_ms(h)
    local ts = tonumber(h[3] or '')
    if ts then return ts end
    ts = tonumber(h[4] or '0') or 0
    if ts < 100000000000 then ts = ts * 1000 end
    return ts
end

local out = {}
for _, room in ipairs(rooms) do
    local r = room
    if ARGV[3] == '1' then r = '{' .. room .. '}' end
    local base = prefix .. r .. ':'
    local read = tonumber(redis.call('HGET', base .. 'messages:read', user) or '0') or 0
    local above = '(' .. read
    local n = #out
    out[n + 1] = room
    out[n + 2] = tonumber(redis.call('GET', base .. 'messages') or '0') or 0
    out[n + 3] = read
    out[n + 4] = redis.call('ZCOUNT', base .. 'messages:ids', above, '+inf') -
                 redis.call('ZCOUNT', base .. user .. ':ids', above, '+inf')
    out[n + 5], out[n + 6], out[n + 7], out[n + 8], out[n + 9] = 0, '', '', 0, 0
    local ids = redis.call('ZREVRANGE', base .. 'messages:ids', 0, 7)
    for i = 1, #ids do
        local h = redis.call('HMGET', base .. ids[i], 'user', 'content', 'timestamp_ms',
                             'timestamp', 'edited')
        if h[1] and h[2] then
            out[n + 5], out[n + 6], out[n + 7] = tonumber(ids[i]), h[1], h[2]
            out[n + 8], out[n + 9] = ts_ms(h), tonumber(h[5] or '0') or 0
            break
        end
    end
end
return out
