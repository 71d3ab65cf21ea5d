-- wrk: POST /v1/reservations with a unique id per request, over 10,000 agents.
-- usage: PURSER_KEY=... wrk -s bench/wrk/reserve.lua http://127.0.0.1:8480
local counter = 0
local thread_id = 0
function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end
headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. (os.getenv("PURSER_KEY") or ""),
}
function init(args)
  prefix = "w" .. os.time() .. "-" .. id .. "-"
end
function request()
  counter = counter + 1
  local body = string.format(
    '{"reservation_id":"%s%d","account":"agent-%d","amount_micros":1000,"action":"search","tags":{"env":"prod"}}',
    prefix, counter, counter % 10000)
  return wrk.format("POST", "/v1/reservations", headers, body)
end
