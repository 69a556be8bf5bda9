-- edit.lua: new text for one message, only for its author, at most once.
-- KEYS[1] P:R:U                    id -> text (the seed's user hash)
-- KEYS[2] P:R:N                    the message
-- KEYS[3] P:R:messages:edits       "U:client_msg_id" -> id: the edits'
--                                  dedup, apart from the sends'
-- KEYS[4] P:R:messages:edits:ts    the same, scored by time (ms)
-- KEYS[5] P:R:messages:journal:B   the replay guard of send.lua: an edit
--                                  is kept as member "edit:<seq>"
-- ARGV[1] id, ARGV[2] user, ARGV[3] text, ARGV[4] edit time (Unix ms),
-- ARGV[5] client_msg_id or "", ARGV[6] journal seq, ARGV[7] dedup window
-- in ms (0 = off), ARGV[8] the bridge's journal checkpoint
-- Returns { status, how, ts, edited, text }: status 1 edited, 0 no such
-- message, -1 not the author (nothing written then); how 0 applied now,
-- 1 this journal record was applied before (a replay: nothing changes, so
-- a later edit is never undone), 2 a repeat of the author's
-- client_msg_id; ts (Unix ms), edited and text are the message's as it
-- now stands.
local function now_state(how)
    local h = redis.call('HMGET', KEYS[2], 'content', 'timestamp', 'timestamp_ms',
                         'edited')
    local ts = tonumber(h[3] or '')
    if not ts then
        ts = tonumber(h[2] or '0') or 0
        if ts < 100000000000 then ts = ts * 1000 end
    end
    return { 1, how, ts, tonumber(h[4] or '0') or 0, h[1] }
end

-- The author, as delete.lua finds it: the user field, or for a message
-- another writer stored, the user whose hash holds the id.
if redis.call('HEXISTS', KEYS[2], 'content') == 0 then return { 0, 0, 0, 0, '' } end
local owner = redis.call('HGET', KEYS[2], 'user')
if not owner then
    if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return { -1, 0, 0, 0, '' } end
    owner = ARGV[2]
end
if owner ~= ARGV[2] then return { -1, 0, 0, 0, '' } end

local guard = 'edit:' .. ARGV[6]
if redis.call('ZSCORE', KEYS[5], guard) then return now_state(1) end
local cmid, window = ARGV[5], tonumber(ARGV[7])
local dkey = ARGV[2] .. ':' .. cmid
if cmid ~= '' and window > 0 and redis.call('HGET', KEYS[3], dkey) then
    return now_state(2)
end

redis.call('HSET', KEYS[2], 'content', ARGV[3], 'edited', ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[6], guard)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[8])
if cmid ~= '' and window > 0 then
    local now = tonumber(ARGV[4])
    redis.call('HSET', KEYS[3], dkey, ARGV[1])
    redis.call('ZADD', KEYS[4], now, dkey)
    local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - window, 'LIMIT', 0, 4)
    for _, k in ipairs(old) do
        redis.call('HDEL', KEYS[3], k)
        redis.call('ZREM', KEYS[4], k)
    end
end
return now_state(0)
