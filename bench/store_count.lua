-- wrk script for bench/store.sh's accuracy step: counts the answers by status
-- (200, 429, anything else) and stops sending at a deadline, so that a run
-- covers one rate-limit window and no more.
--
--   wrk -t1 -c16 -d11s -s bench/store_count.lua URL -- DEADLINE_UNIX_MS
--
-- wrk's -d takes whole seconds and overruns by up to its 100 ms stats tick;
-- here each thread stops itself (wrk.thread:stop()) at the first answer read
-- at or after the deadline; answers read after that are not counted. Prints
-- one line at the end: `COUNTS ok=N limited=N other=N stopped_ms=T`
-- (T: Unix ms of the last thread's stop, 0 if no thread reached the deadline).
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]])
local tv = ffi.new("bench_timeval")

local function now_ms()
    ffi.C.gettimeofday(tv, nil)
    return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
end

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    deadline = tonumber(args[1])
    ok, limited, other, stopped_ms = 0, 0, 0, 0
end

function response(status, headers, body)
    if stopped_ms > 0 then
        return
    end
    local t = now_ms()
    if deadline and t >= deadline then
        stopped_ms = t
        wrk.thread:stop()
        return
    end
    if status == 200 then
        ok = ok + 1
    elseif status == 429 then
        limited = limited + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local o, l, x, s = 0, 0, 0, 0
    for _, t in ipairs(threads) do
        o = o + t:get("ok")
        l = l + t:get("limited")
        x = x + t:get("other")
        s = math.max(s, t:get("stopped_ms"))
    end
    io.write(string.format("COUNTS ok=%d limited=%d other=%d stopped_ms=%d\n", o, l, x, s))
end
