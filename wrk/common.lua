-- Shared by the wrk scripts of this directory: load it with
--
--   local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
--
-- (wrk runs a script with the working directory it was started in, so the path
-- is taken from the calling script's own file name, not from the current
-- directory.)
--
-- common.install{request = f, token = true} defines wrk's hooks: setup() numbers
-- the threads, init() seeds the random numbers per thread and, with token, adds
-- "Authorization: Bearer $TOKEN" to common.headers when TOKEN is set;
-- response() counts answers by status; done() prints, after wrk's own summary,
-- one line each for wrk/bench.sh:
--   STATUS {"201":n,"409":n,...}      answers by HTTP status, all threads
--   LATENCY <p50_us> <p99_us>         from wrk's latency histogram
--   REQUESTS <n> <duration_us>        completed requests and run time
--   ERRORS {"connect":n,"read":n,"write":n,"timeout":n}   socket errors

local common = {}

common.headers = { ["Content-Type"] = "application/json" }

local threads = {}

-- Nights from today (UTC) as dd.mm.yy (or any os.date format): first_night ..
-- first_night + count - 1, recomputed when the UTC day changes during a run.
-- Returns a function that gives the table, indexed 0 .. count - 1.
function common.nights(first_night, count, format)
   format = format or "!%d.%m.%y"
   local dates, dates_day = {}, nil
   return function()
      local now = os.time()
      local day = math.floor(now / 86400)
      if day ~= dates_day then
         for i = 0, count - 1 do
            dates[i] = os.date(format, now + (first_night + i) * 86400)
         end
         dates_day = day
      end
      return dates
   end
end

-- A positive whole number from the environment, or the default.
function common.env_number(name, default)
   local value = tonumber(os.getenv(name) or "")
   if value and value >= 1 then return math.floor(value) end
   return default
end

function common.install(options)
   function setup(thread)
      thread:set("id", #threads)
      table.insert(threads, thread)
   end

   function init(args)
      statuses = {}
      math.randomseed(os.time() * 1000 + (id or 0) * 7919)
      local token = os.getenv("TOKEN")
      if options.token and token and token ~= "" then
         common.headers["Authorization"] = "Bearer " .. token
      end
   end

   request = options.request

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
end

-- POST /book for <room_prefix><0..rooms-1>, user<0..users-1>, a night
-- first_night .. first_night + nights - 1 days ahead (UTC), body as in SPEC 4.1.
function common.book_request(room_prefix, rooms, users, first_night, nights)
   local dates = common.nights(first_night, nights)
   return function()
      local body = string.format('{"room_name":"%s%d","user_name":"user%d","date":"%s"}',
         room_prefix, math.random(0, rooms - 1), math.random(0, users - 1),
         dates()[math.random(0, nights - 1)])
      return wrk.format("POST", "/book", common.headers, body)
   end
end

return common
