-- send.lua: store one chat message atomically, at most once.
-- KEYS[1] P:R:messages              room counter
-- KEYS[2] P:R                       user -> last id
-- KEYS[3] P:R:U                     id -> text
-- KEYS[4] P:R:messages:ids          room index
-- KEYS[5] P:R:U:ids                 user index
-- KEYS[6] P:R:messages:dedup        client_msg_id -> id
-- KEYS[7] P:R:messages:dedup:ts     client_msg_id, scored by time (ms)
-- KEYS[8] P:R:messages:journal:B    ids stored by bridge B, scored by the
--                                   journal seq that stored them
-- ARGV[1] "P:R:" (message key prefix), ARGV[2] user, ARGV[3] text,
-- ARGV[4] timestamp (Unix ms), ARGV[5] client_msg_id or "",
-- ARGV[6] journal seq, ARGV[7] dedup window in ms (0 = off),
-- ARGV[8] the bridge's journal checkpoint (seqs at or below never replay)
-- Returns { id, how }: how 0 = stored now, 1 = this journal record was
-- stored before (a replay after a restart), 2 = a repeat of a
-- client_msg_id seen within the window (the original id).
local seen = redis.call('ZRANGEBYSCORE', KEYS[8], ARGV[6], ARGV[6], 'LIMIT', 0, 1)
if seen[1] then return { tonumber(seen[1]), 1 } end
local cmid, window = ARGV[5], tonumber(ARGV[7])
if cmid ~= '' and window > 0 then
    local orig = redis.call('HGET', KEYS[6], cmid)
    if orig then return { tonumber(orig), 2 } end
end

local id = redis.call('INCR', KEYS[1])
local key = ARGV[1] .. id
if cmid ~= '' then
    redis.call('HSET', key, 'content', ARGV[3], 'timestamp', ARGV[4],
               'user', ARGV[2], 'client_msg_id', cmid)
else
    redis.call('HSET', key, 'content', ARGV[3], 'timestamp', ARGV[4],
               'user', ARGV[2])
end
redis.call('HSET', KEYS[2], ARGV[2], id)
redis.call('HSET', KEYS[3], id, ARGV[3])
redis.call('ZADD', KEYS[4], id, id)
redis.call('ZADD', KEYS[5], id, id)

-- Replay guard: remember which seq stored which id until the checkpoint
-- passes it (a bounded amount of work per message, amortised).
redis.call('ZADD', KEYS[8], ARGV[6], id)
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', ARGV[8])

if cmid ~= '' and window > 0 then
    local now = tonumber(ARGV[4])
    redis.call('HSET', KEYS[6], cmid, id)
    redis.call('ZADD', KEYS[7], now, cmid)
    local old = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now - window,
                           'LIMIT', 0, 4)
    for _, c in ipairs(old) do
        redis.call('HDEL', KEYS[6], c)
        redis.call('ZREM', KEYS[7], c)
    end
end
return { id, 0 }
