-- history.lua: one page of a room's (or one user's) messages: newest first
-- back from "before", or oldest first forward from "after" (catch-up).
-- KEYS[1] P:R:messages:ids or P:R:U:ids   the index to page through
-- ARGV[1] "P:R:" (message key prefix), ARGV[2] before (0 = no bound),
-- ARGV[3] limit, ARGV[4] after (-1: a page back; else ids > after,
-- oldest first, up to before when given)
-- Returns { next, id, user, text, ts, client_msg_id, edited, id, ... }:
-- ts in Unix ms (timestamp_ms, else the seed's timestamp in seconds x
-- 1000), edited in Unix ms or nil; next is the last id returned when
-- another message follows in the page's direction (next_before going
-- back, next_after going forward), else 0. An indexed id whose hash lost
-- its content (another writer deleted it, as the seed does, with three
-- HDELs) is skipped, so a page holds limit messages, or every remaining
-- one, and never none while next is set.
-- Cost: O(log n + limit + skipped ids).
local limit = tonumber(ARGV[3])
local after = tonumber(ARGV[4])
local forward = after >= 0
local lo, hi = '-inf', '+inf'
if ARGV[2] ~= '0' then hi = '(' .. ARGV[2] end
if forward then lo = '(' .. ARGV[4] end
local out = { 0 }
local found = 0
local chunk = limit + 1
while true do
    local ids
    if forward then
        ids = redis.call('ZRANGEBYSCORE', KEYS[1], lo, hi, 'LIMIT', 0, chunk)
    else
        ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], hi, lo, 'LIMIT', 0, chunk)
    end
    for i = 1, #ids do
        local h = redis.call('HMGET', ARGV[1] .. ids[i], 'user', 'content',
                             'timestamp', 'client_msg_id', 'timestamp_ms',
                             'edited')
        if h[1] and h[2] then
            if found == limit then
                out[1] = tonumber(out[#out - 5])
                return out
            end
            local ts = tonumber(h[5] or '')
            if not ts then
                ts = tonumber(h[3] or '0') or 0
                if ts < 100000000000 then ts = ts * 1000 end
            end
            out[#out + 1] = ids[i]
            out[#out + 1] = h[1]
            out[#out + 1] = h[2]
            out[#out + 1] = string.format('%d', ts)
            out[#out + 1] = h[4]
            out[#out + 1] = h[6]
            found = found + 1
        end
    end
    if #ids < chunk then return out end
    if forward then lo = '(' .. ids[#ids] else hi = '(' .. ids[#ids] end
    chunk = 256
end
