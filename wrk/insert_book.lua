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
--
-- Output for wrk/bench.sh (after wrk's own summary), one line each:
--   STATUS {"201":n,"409":n,...}      answers by HTTP status, all threads
--   LATENCY <p50_us> <p99_us>         from wrk's latency histogram
--   REQUESTS <n> <duration_us>        completed requests and run time
--   ERRORS {"connect":n,"read":n,"write":n,"timeout":n}   socket errors

local ROOM_PREFIX, ROOMS = "BIG", tonumber(os.getenv("BIG_ROOMS") or "2000")
local USERS = 50
local FIRST_NIGHT, NIGHTS = 1, tonumber(os.getenv("BIG_NIGHTS") or "365")

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

local headers = { ["Content-Type"] = "application/json" }
local dates, dates_day = {}, nil

-- dd.mm.yy for today+FIRST_NIGHT .. today+FIRST_NIGHT+NIGHTS-1, in UTC;
-- recomputed when the UTC day changes during a run.
local function refresh_dates(now)
   local day = math.floor(now / 86400)
   if day ~= dates_day then
      for i = 0, NIGHTS - 1 do
         dates[i] = os.date("!%d.%m.%y", now + (FIRST_NIGHT + i) * 86400)
      end
      dates_day = day
   end
end

function init(args)
   statuses = {}
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
   local token = os.getenv("TOKEN")
   if token and token ~= "" then
      headers["Authorization"] = "Bearer " .. token
   end
   refresh_dates(os.time())
end

function request()
   refresh_dates(os.time())
   local body = string.format('{"room_name":"%s%d","user_name":"user%d","date":"%s"}',
      ROOM_PREFIX, math.random(0, ROOMS - 1), math.random(0, USERS - 1),
      dates[math.random(0, NIGHTS - 1)])
   return wrk.format("POST", "/book", headers, body)
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
