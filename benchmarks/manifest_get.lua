-- wrk script for bench.py: GET one manifest, stop each thread after
-- WRK_PER_THREAD responses (wrk's -d bounds the time), and report the real
-- elapsed time: wrk itself always runs for the whole -d duration and divides
-- by it, even when every thread stopped early.  So a thread that reached its
-- count also creates WRK_DONE_DIR/<thread id>; bench.py waits for all of them
-- and sends wrk SIGINT, which makes it end at once and call done().
--
-- Prints one line: RESULT <responses> <non-200 responses> <seconds> <mean latency us>

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]

local function now()
  local ts = ffi.new("bench_timespec")
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

wrk.method = "GET"
wrk.headers["Accept"] = os.getenv("WRK_ACCEPT") or "*/*"

local limit = tonumber(os.getenv("WRK_PER_THREAD") or "1000")
local doneDir = os.getenv("WRK_DONE_DIR")
local threads = {}

-- globals, so that done() can read them with thread:get()
count = 0
bad = 0
first = 0
last = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  first = now()
  last = first
end

function response(status, headers, body)
  count = count + 1
  if status ~= 200 then
    bad = bad + 1
  end
  last = now()
  if count == limit then
    if doneDir then
      local f = io.open(doneDir .. "/" .. tostring(id), "w")
      if f then
        f:close()
      end
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local t0, t1, n, nbad = math.huge, 0, 0, 0
  for _, t in ipairs(threads) do
    t0 = math.min(t0, t:get("first"))
    t1 = math.max(t1, t:get("last"))
    n = n + t:get("count")
    nbad = nbad + t:get("bad")
  end
  io.write(string.format("RESULT %d %d %.6f %.1f\n", n, nbad, t1 - t0, latency.mean))
end
