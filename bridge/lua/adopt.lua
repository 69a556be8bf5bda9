-- adopt.lua: index the messages other writers put in a room (the seed's
-- five commands: INCR, HSET P:R, HSET P:R:U, HSET P:R:N content, HSET
-- P:R:N timestamp) and hand them back to be republished, once, in id order.
-- KEYS[1] P:R:messages            room counter
-- KEYS[2] P:R:messages:cursor     hash: id (every id up to it is dealt
--                                 with), waiting + since (a half-written
--                                 id and when it was first seen, Unix ms),
--                                 skipped (how many never completed),
--                                 pending:B (the first id bridge B claimed
--                                 whose republish the broker has not
--                                 acknowledged yet)
-- KEYS[3] P:R                     user -> last id
-- KEYS[4] P:R:messages:ids        room index
-- ARGV[1] "P:R:" (key prefix), ARGV[2] bridge id B, ARGV[3] now (Unix ms),
-- ARGV[4] how long to wait for a half-written message (ms),
-- ARGV[5] most ids walked in this call,
-- ARGV[6] republish only ids among the room's newest this many,
-- ARGV[7] ... and written at most this many seconds ago,
-- ARGV[8] 1: first republish again what B claimed and the broker never
--         acknowledged (B restarted)
-- Returns { state, skipped, id, user, text, ts, id, ... }: state 0 caught
-- up, 1 more to walk (call again), 2 an id is half-written (call again
-- later); skipped: ids given up in this call; then the messages to
-- republish (ts in Unix ms).
local prefix, me, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
-- An id with no trace at all is waited for only while it is among the
-- room's newest NEAR ids: a writer is between its INCR and its first HSET
-- there; further down it is a message deleted before it was adopted (or
-- before this bridge adopted anything, on data of an older bridge).
local NEAR = 64
local pkey = 'pending:' .. me
local out = { 0, 0 }

local function ts_ms(t)
    t = tonumber(t or '0') or 0
    if t < 100000000000 then t = t * 1000 end
    return t
end

-- The author of a message without a user field: the user whose hash holds
-- its id (their last id first, then every user of the room).
local function author(id)
    local last = redis.call('HGETALL', KEYS[3])
    for i = 1, #last, 2 do
        if last[i + 1] == id and
           redis.call('HEXISTS', prefix .. last[i], id) == 1 then
            return last[i]
        end
    end
    for i = 1, #last, 2 do
        if redis.call('HEXISTS', prefix .. last[i], id) == 1 then
            return last[i]
        end
    end
    return nil
end

local function emit(id, user, text, ts)
    out[#out + 1] = id
    out[#out + 1] = user
    out[#out + 1] = text
    out[#out + 1] = string.format('%d', ts)
end

local cur = tonumber(redis.call('HGET', KEYS[2], 'id') or '0')
local top = tonumber(redis.call('GET', KEYS[1]) or '0')

-- A restart: what this bridge claimed and may not have republished.
local redo = ARGV[8] == '1' and tonumber(redis.call('HGET', KEYS[2], pkey) or '')
if redo then
    for n = redo, math.min(cur, redo + tonumber(ARGV[6]) - 1) do
        local id = tostring(n)
        local h = redis.call('HMGET', prefix .. id, 'user', 'content',
                             'timestamp', 'timestamp_ms')
        if h[1] and h[2] and not h[4] then emit(id, h[1], h[2], ts_ms(h[3])) end
    end
end

if cur >= top then return out end       -- caught up: nothing written
local floor = top - tonumber(ARGV[6])
local oldest = now - tonumber(ARGV[7]) * 1000
local walked = 0
while cur < top do
    if walked == tonumber(ARGV[5]) then out[1] = 1 break end
    walked = walked + 1
    local id = tostring(cur + 1)
    local key = prefix .. id
    local h = redis.call('HMGET', key, 'user', 'content', 'timestamp')
    local user = h[1]
    if not redis.call('ZSCORE', KEYS[4], id) then
        if h[2] and h[3] and not user then user = author(id) end
        if not (h[2] or h[3] or user) and cur + 1 <= top - NEAR and
           redis.call('EXISTS', key) == 0 then
            -- no trace, and NEAR later ids taken since: gone (deleted,
            -- trimmed, a bridge's delete before adoption), not being written
        elseif not (h[2] and h[3] and user) then
            -- half-written: wait for it, within the bound
            local w = redis.call('HMGET', KEYS[2], 'waiting', 'since')
            if w[1] ~= id then
                redis.call('HSET', KEYS[2], 'waiting', id, 'since', ARGV[3])
                out[1] = 2
                break
            end
            if now - tonumber(w[2]) < tonumber(ARGV[4]) then out[1] = 2 break end
            redis.call('HINCRBY', KEYS[2], 'skipped', 1)
            out[2] = out[2] + 1
        else
            redis.call('HSET', key, 'user', user)
            redis.call('ZADD', KEYS[4], id, id)
            redis.call('ZADD', prefix .. user .. ':ids', id, id)
            redis.call('ZADD', prefix .. 'messages:members', 0, user)
            local ts = ts_ms(h[3])
            if cur + 1 > floor and ts >= oldest then
                if not redis.call('HGET', KEYS[2], pkey) then
                    redis.call('HSET', KEYS[2], pkey, id)
                end
                emit(id, user, h[2], ts)
            end
        end
        redis.call('HDEL', KEYS[2], 'waiting', 'since')
    end
    cur = cur + 1
end
redis.call('HSET', KEYS[2], 'id', cur)
return out
