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
-- KEYS[9] P:R:messages:cursor       the adoption cursor (adopt.lua): moved
--                                   over this id when nothing precedes it
-- KEYS[10] P:R:messages:read        user -> read marker (read.lua): the
--                                   sender has read their own message
-- KEYS[11] P:R:messages:members     the room's members by name (members.lua)
-- ARGV[1] "P:R:" (message key prefix), ARGV[2] user, ARGV[3] text,
-- ARGV[4] arrival time (Unix ms: stored as timestamp_ms, and in seconds
-- as the seed's timestamp), ARGV[5] client_msg_id or "",
-- ARGV[6] journal seq, ARGV[7] dedup window in ms (0 = off),
-- ARGV[8] the bridge's journal checkpoint (seqs at or below never replay),
-- ARGV[9] retention: most messages kept per room (0 = no limit),
-- ARGV[10] retention: oldest age kept in ms (0 = no limit),
-- ARGV[11] the room's name, ARGV[12] P:$user:U:rooms, U's rooms (this one
-- is added, scored by the arrival time, never lowered), or "" in cluster
-- mode where it is another slot (the bridge adds it in a command of its
-- own). It is written before anything else: should it fail (a key of
-- another type there), nothing is written and nothing is half-stored.
-- ARGV[13] "1" when this journal record was never sent before (not a
-- replay after a restart, not a retry after a failed batch): the replay
-- guard's lookup is skipped, its entry still written.
-- Returns { id, how }: how 0 = stored now, 1 = this journal record was
-- stored before (a replay after a restart), 2 = a repeat of a
-- client_msg_id seen within the window (the original id).
if ARGV[13] ~= '1' then
    local seen = redis.call('ZRANGEBYSCORE', KEYS[8], ARGV[6], ARGV[6], 'LIMIT', 0, 1)
    if seen[1] then return { tonumber(seen[1]), 1 } end
end
local cmid, window = ARGV[5], tonumber(ARGV[7])
if cmid ~= '' and window > 0 then
    local orig = redis.call('HGET', KEYS[6], cmid)
    if orig then return { tonumber(orig), 2 } end
end

-- The message hash is the one key the script cannot declare (its name
-- holds the id). While its slot migrates, Redis Cluster refuses it ("non
-- local key"): write it first, so that a refusal leaves nothing written
-- and the bridge simply retries; the counter comes after it (the script
-- is atomic, so GET + 1 is the id an INCR would give). The counter is
-- SET, not INCR'd: the bridges' listeners (watch.h) hear only INCRs, the
-- other writers' sends, and never this bridge's own.
if ARGV[12] ~= '' then
    local was = tonumber(redis.call('ZSCORE', ARGV[12], ARGV[11]) or '0')
    if was < tonumber(ARGV[4]) then redis.call('ZADD', ARGV[12], ARGV[4], ARGV[11]) end
end
local id = tonumber(redis.call('GET', KEYS[1]) or '0') + 1
local key = ARGV[1] .. id
local secs = string.format('%d', math.floor(tonumber(ARGV[4]) / 1000))
if cmid ~= '' then
    redis.call('HSET', key, 'content', ARGV[3], 'timestamp', secs,
               'timestamp_ms', ARGV[4], 'user', ARGV[2], 'client_msg_id', cmid)
else
    redis.call('HSET', key, 'content', ARGV[3], 'timestamp', secs,
               'timestamp_ms', ARGV[4], 'user', ARGV[2])
end
redis.call('SET', KEYS[1], id)
-- Nothing before this id waits for adoption: the cursor moves over it, so
-- adopt.lua has nothing to walk for the bridge's own messages.
if tonumber(redis.call('HGET', KEYS[9], 'id') or '0') == id - 1 then
    redis.call('HSET', KEYS[9], 'id', id)
end
redis.call('HSET', KEYS[2], ARGV[2], id)
redis.call('HSET', KEYS[3], id, ARGV[3])
redis.call('ZADD', KEYS[4], id, id)
redis.call('ZADD', KEYS[5], id, id)
-- A user with a marker is a member already (members.lua builds the index
-- from the markers, and every new marker joins it): only a first marker
-- adds the user.
if redis.call('HSET', KEYS[10], ARGV[2], id) == 1 then
    redis.call('ZADD', KEYS[11], 0, ARGV[2])
end

-- Replay guard: remember which seq stored which id until the checkpoint
-- passes it; what it passed is dropped at about one send in 8 of this
-- bridge (its seq, a microsecond clock, a multiple of 8: not the id,
-- which other bridges and writers share and could keep from ever being
-- one). A bounded amount of work, amortised; an entry at or below the
-- checkpoint is never looked up, so the few kept meanwhile cost only
-- memory.
redis.call('ZADD', KEYS[8], ARGV[6], id)
if tonumber(ARGV[6]) % 8 == 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', ARGV[8])
end

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
-- Retention: drop the room's oldest messages beyond the count or age
-- limit, from every structure, at most 4 per message stored (a bounded
-- amount of work; a room catches up as it keeps receiving). It comes
-- last: should a migrating slot refuse one of its undeclared keys, the
-- message is already stored and recorded in the replay guard, and the
-- retry finds it there.
local keep, max_age = tonumber(ARGV[9]), tonumber(ARGV[10])
if keep > 0 or max_age > 0 then
    local oldest_ts = tonumber(ARGV[4]) - max_age
    for _ = 1, 4 do
        local first = redis.call('ZRANGE', KEYS[4], 0, 0)[1]
        if not first then break end
        local over = keep > 0 and redis.call('ZCARD', KEYS[4]) > keep
        local mkey = ARGV[1] .. first
        local h = redis.call('HMGET', mkey, 'user', 'timestamp', 'timestamp_ms')
        local t = tonumber(h[3] or '')
        if not t then
            -- seconds as the seed writes them; milliseconds as bridges
            -- before timestamp_ms wrote them
            t = tonumber(h[2] or '0') or 0
            if t < 100000000000 then t = t * 1000 end
        end
        local old = max_age > 0 and t < oldest_ts
        if not over and not old then break end
        redis.call('DEL', mkey)
        redis.call('ZREM', KEYS[4], first)
        if h[1] then
            local ukey = ARGV[1] .. h[1]
            redis.call('HDEL', ukey, first)
            redis.call('ZREM', ukey .. ':ids', first)
            if redis.call('HGET', KEYS[2], h[1]) == first then
                local newest = redis.call('ZREVRANGE', ukey .. ':ids', 0, 0)[1]
                if newest then redis.call('HSET', KEYS[2], h[1], newest)
                else redis.call('HDEL', KEYS[2], h[1]) end
            end
        end
    end
end
return { id, 0 }
