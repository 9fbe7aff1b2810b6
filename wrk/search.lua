-- The search workload: GET /hotels?city&check_in&check_out&guests on the data
-- set of wrk/search_data.sql (100 hotels in "City 0".."City 9", 10,000 rooms,
-- 1,000,000 bookings): a stay of 1 to 5 nights starting 0 to 299 days ahead
-- (UTC), for 1 to 4 guests. The search is public: no token needed.
--
--   wrk -t4 -c10 -d20s -s wrk/search.lua http://127.0.0.1:3000
--
-- Output for wrk/bench.sh: the same STATUS / LATENCY / REQUESTS / ERRORS
-- lines as wrk/post_book.lua.

local CITIES, FIRST_DAY, DAYS, MAX_NIGHTS, MAX_GUESTS = 10, 0, 300, 5, 4

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   statuses = {}
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
end

function request()
   local now = os.time()
   local start = FIRST_DAY + math.random(0, DAYS - 1)
   local nights = math.random(1, MAX_NIGHTS)
   local path = string.format("/hotels?city=City%%20%d&check_in=%s&check_out=%s&guests=%d",
      math.random(0, CITIES - 1),
      os.date("!%Y-%m-%d", now + start * 86400),
      os.date("!%Y-%m-%d", now + (start + nights) * 86400),
      math.random(1, MAX_GUESTS))
   return wrk.format("GET", path)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local totals, codes = {}, {}
   for _, thread in ipairs(threads) do
      for code, n in pairs(thread:get("statuses") or {}) do
         if not totals[code] then table.insert(codes, code) end
         totals[code] = (totals[code] or 0) + n
      end
   end
   table.sort(codes)
   local parts = {}
   for _, code in ipairs(codes) do
      table.insert(parts, string.format('"%d":%d', code, totals[code]))
   end
   local e = summary.errors
   io.write(string.format("STATUS {%s}\n", table.concat(parts, ",")))
   io.write(string.format("LATENCY %d %d\n", latency:percentile(50), latency:percentile(99)))
   io.write(string.format("REQUESTS %d %d\n", summary.requests, summary.duration))
   io.write(string.format('ERRORS {"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
      e.connect, e.read, e.write, e.timeout))
end
