-- history.lua: one page of a room's (or one user's) messages, newest first.
-- KEYS[1] P:R:messages:ids or P:R:U:ids   the index to page through
-- ARGV[1] "P:R:" (message key prefix), ARGV[2] before (0 = from the newest),
-- ARGV[3] limit
-- Returns { next_before, id, user, text, ts, client_msg_id, id, ... }:
-- ts in Unix ms (timestamp_ms, else the seed's timestamp in seconds x 1000);
-- next_before is the oldest id returned when an older message exists,
-- else 0. An indexed id whose hash lost its content (another writer
-- deleted it, as the seed does, with three HDELs) is skipped, so a page
-- holds limit messages, or every remaining one, and never none while
-- next_before is set.
-- Cost: O(log n + limit + skipped ids).
local limit = tonumber(ARGV[3])
local max = '+inf'
if ARGV[2] ~= '0' then max = '(' .. ARGV[2] end
local out = { 0 }
local found = 0
local chunk = limit + 1
while true do
    local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf',
                           'LIMIT', 0, chunk)
    for i = 1, #ids do
        local h = redis.call('HMGET', ARGV[1] .. ids[i], 'user', 'content',
                             'timestamp', 'client_msg_id', 'timestamp_ms')
        if h[1] and h[2] then
            if found == limit then
                out[1] = tonumber(out[#out - 4])
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
            found = found + 1
        end
    end
    if #ids < chunk then return out end
    max = '(' .. ids[#ids]
    chunk = 256
end
