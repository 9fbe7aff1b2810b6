-- The insert workload of wrk/insert_book.lua with a fresh Idempotency-Key on
-- every request: the path of a client that retries safely (SPEC 4.4), a
-- transaction of several statements on the service's pool instead of the one
-- statement of a keyless POST /book.
--
--   BIG_ROOMS=2000 wrk -t4 -c10 -d20s -s wrk/keyed_book.lua http://127.0.0.1:3000
--
-- Environment: TOKEN (sent as "Authorization: Bearer $TOKEN" when set),
-- BIG_ROOMS, BIG_NIGHTS.
-- Output for wrk/compare.sh: see wrk/common.lua (STATUS, LATENCY, REQUESTS, ERRORS).

local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local book = common.book_request("BIG", common.env_number("BIG_ROOMS", 2000), 50,
   1, common.env_number("BIG_NIGHTS", 365))
local sent = 0

common.install{
   token = true,
   request = function()
      -- Unique within a run by the thread's id and its count (each thread
      -- has a Lua state of its own). The random part comes from a seed of
      -- the clock's second (common.lua): runs started in different seconds
      -- differ. wrk/compare.sh empties the idempotency records before each run.
      sent = sent + 1
      common.headers["Idempotency-Key"] = string.format("wrk-%d-%d-%08x", id or 0, sent,
         math.random(0, 0x7fffffff))
      return book()
   end,
}
