-- The insert-heavy workload: POST /book (same body as post_book.lua) for a
-- large inventory, BIG<0..BIG_ROOMS-1> (default 2000 rooms, which wrk/bench.sh
-- creates), user<0..49>, a night 1 to BIG_NIGHTS days ahead (default 365, UTC).
-- 2000 x 365 = 730,000 slots chosen at random, so most answers are 201 and
-- the insert path is what is measured.
--
--   BIG_ROOMS=2000 wrk -t4 -c10 -d20s -s wrk/insert_book.lua http://127.0.0.1:3000
--
-- Environment: TOKEN (sent as "Authorization: Bearer $TOKEN" when set),
-- BIG_ROOMS, BIG_NIGHTS.
-- Output for wrk/bench.sh: see wrk/common.lua (STATUS, LATENCY, REQUESTS, ERRORS).

local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

common.install{
   token = true,
   request = common.book_request("BIG", common.env_number("BIG_ROOMS", 2000), 50,
      1, common.env_number("BIG_NIGHTS", 365)),
}
