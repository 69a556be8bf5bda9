-- send.lua: store one chat message atomically.
-- KEYS[1] P:R:messages        room counter
-- KEYS[2] P:R                 user -> last id
-- KEYS[3] P:R:U               id -> text
-- KEYS[4] P:R:messages:ids    room index
-- KEYS[5] P:R:U:ids           user index
-- ARGV[1] "P:R:" (message key prefix), ARGV[2] user, ARGV[3] text,
-- ARGV[4] timestamp (Unix ms), ARGV[5] client_msg_id or ""
-- Returns the new id.
local id = redis.call('INCR', KEYS[1])
local key = ARGV[1] .. id
if ARGV[5] ~= '' then
    redis.call('HSET', key, 'content', ARGV[3], 'timestamp', ARGV[4],
               'user', ARGV[2], 'client_msg_id', ARGV[5])
else
    redis.call('HSET', key, 'content', ARGV[3], 'timestamp', ARGV[4],
               'user', ARGV[2])
end
redis.call('HSET', KEYS[2], ARGV[2], id)
redis.call('HSET', KEYS[3], id, ARGV[3])
redis.call('ZADD', KEYS[4], id, id)
redis.call('ZADD', KEYS[5], id, id)
return id
