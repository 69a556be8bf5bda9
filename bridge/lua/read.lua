-- read.lua: move a user's read marker forward, and count what is unread.
-- KEYS[1] P:R:messages             room counter
-- KEYS[2] P:R:messages:read        user -> the id read up to
-- KEYS[3] P:R:messages:ids         room index
-- KEYS[4] P:R:U:ids                the user's index
-- KEYS[5] P:R:messages:members     the room's members by name
-- KEYS[6] P:R:messages:seen        user -> when they last marked (Unix ms)
-- ARGV[1] id, ARGV[2] user, ARGV[3] the request's time (Unix ms),
-- ARGV[4] the room's name, ARGV[5] P:$user:U:rooms or "" (as in send.lua,
-- written first)
-- Returns { status, read, unread, moved }: status 1 done, 0 the id is
-- above the room's last id (nothing written); read is the marker after
-- the call (a marker never moves back); unread counts the room's messages
-- above it that others sent; moved 1 when this call moved it. O(log n).
local id = tonumber(ARGV[1])
if id > tonumber(redis.call('GET', KEYS[1]) or '0') then return { 0, 0, 0, 0 } end
if ARGV[5] ~= '' then
    local was = tonumber(redis.call('ZSCORE', ARGV[5], ARGV[4]) or '0')
    if was < tonumber(ARGV[3]) then redis.call('ZADD', ARGV[5], ARGV[3], ARGV[4]) end
end
local read = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local moved = 0
if id > read then
    redis.call('HSET', KEYS[2], ARGV[2], id)
    read, moved = id, 1
end
redis.call('ZADD', KEYS[5], 0, ARGV[2])
if tonumber(redis.call('HGET', KEYS[6], ARGV[2]) or '0') < tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[6], ARGV[2], ARGV[3])
end
local above = '(' .. read
local unread = redis.call('ZCOUNT', KEYS[3], above, '+inf') -
               redis.call('ZCOUNT', KEYS[4], above, '+inf')
return { 1, read, unread, moved }
