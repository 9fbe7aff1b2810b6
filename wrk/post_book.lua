-- The seed workload: POST /book for ROOM<0..49>, user<0..49>, a night 0 to 30
-- days ahead (UTC), body exactly as in SPEC 4.1:
--   {"room_name":"ROOM7","user_name":"user3","date":"24.11.26"}
-- 50 rooms x 31 nights = 1550 bookable slots, so after the first seconds most
-- answers are 409 (night taken): this measures the conflict path.
--
--   wrk -t4 -c10 -d20s -s wrk/post_book.lua http://127.0.0.1:3000
--
-- Environment: TOKEN (sent as "Authorization: Bearer $TOKEN" when set).
-- Output for wrk/bench.sh: see wrk/common.lua (STATUS, LATENCY, REQUESTS, ERRORS).

local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

common.install{
   token = true,
   request = common.book_request("ROOM", 50, 50, 0, 31),
}
