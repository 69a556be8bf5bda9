-- delete.lua: remove one message, only for its author, from every structure.
-- KEYS[1] P:R                 user -> last id
-- KEYS[2] P:R:messages:ids    room index
-- KEYS[3] P:R:U               id -> text
-- KEYS[4] P:R:U:ids           user index
-- KEYS[5] P:R:N               the message
-- ARGV[1] id, ARGV[2] user
-- Returns 1 deleted, 0 no such message, -1 not the author.
-- The author is the hash's user field; a message another writer stored
-- (the seed writes no user field) belongs to the user whose hash P:R:U
-- holds its id.
local owner = redis.call('HGET', KEYS[5], 'user')
if not owner then
    if redis.call('HEXISTS', KEYS[5], 'content') == 0 then return 0 end
    if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return -1 end
    owner = ARGV[2]
end
if owner ~= ARGV[2] then return -1 end
if redis.call('HEXISTS', KEYS[5], 'content') == 0 then return 0 end
redis.call('DEL', KEYS[5])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
-- The user's last id moves back to their newest remaining message.
if redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[1] then
    local newest = redis.call('ZREVRANGE', KEYS[4], 0, 0)
    if newest[1] then
        redis.call('HSET', KEYS[1], ARGV[2], newest[1])
    else
        redis.call('HDEL', KEYS[1], ARGV[2])
    end
end
return 1
