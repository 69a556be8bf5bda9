-- reap.lua: finish a delete another writer did the seed's way (HDEL of the
-- user-hash entry, of content and of timestamp, leaving the rest) on an
-- indexed message: drop it from every structure so that it is announced
-- once and no page counts it.
-- KEYS[1] P:R                 user -> last id
-- KEYS[2] P:R:messages:ids    room index
-- ARGV[1] "P:R:" (key prefix), ARGV[2] id
-- Returns 1 when this call removed it (announce it), else 0.
local key = ARGV[1] .. ARGV[2]
if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then return 0 end
if redis.call('HEXISTS', key, 'content') == 1 then return 0 end
local user = redis.call('HGET', key, 'user')
redis.call('DEL', key)
redis.call('ZREM', KEYS[2], ARGV[2])
if user then
    local ukey = ARGV[1] .. user
    redis.call('HDEL', ukey, ARGV[2])
    redis.call('ZREM', ukey .. ':ids', ARGV[2])
    if redis.call('HGET', KEYS[1], user) == ARGV[2] then
        local newest = redis.call('ZREVRANGE', ukey .. ':ids', 0, 0)[1]
        if newest then redis.call('HSET', KEYS[1], user, newest)
        else redis.call('HDEL', KEYS[1], user) end
    end
end
return 1
