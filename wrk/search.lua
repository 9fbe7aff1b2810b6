-- The search workload: GET /hotels?city&check_in&check_out&guests on the data
-- set of wrk/search_data.sql (100 hotels in "City 0".."City 9", 10,000 rooms,
-- 1,000,000 bookings): a stay of 1 to 5 nights starting 0 to 299 days ahead
-- (UTC), for 1 to 4 guests. The search is public: no token needed.
--
--   wrk -t4 -c10 -d20s -s wrk/search.lua http://127.0.0.1:3000
--
-- Output for wrk/bench.sh: see wrk/common.lua (STATUS, LATENCY, REQUESTS, ERRORS).

local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local CITIES, FIRST_DAY, DAYS, MAX_NIGHTS, MAX_GUESTS = 10, 0, 300, 5, 4
-- YYYY-MM-DD for FIRST_DAY .. FIRST_DAY + DAYS + MAX_NIGHTS - 1 days ahead.
local dates = common.nights(FIRST_DAY, DAYS + MAX_NIGHTS, "!%Y-%m-%d")

common.install{
   token = false,
   request = function()
      local start = math.random(0, DAYS - 1)
      local nights = math.random(1, MAX_NIGHTS)
      local days = dates()
      local path = string.format("/hotels?city=City%%20%d&check_in=%s&check_out=%s&guests=%d",
         math.random(0, CITIES - 1), days[start], days[start + nights], math.random(1, MAX_GUESTS))
      return wrk.format("GET", path)
   end,
}
