-- wrk: POST /v1/batch of 1,000 reserves with unique ids.
-- usage: PURSER_KEY=... wrk -s bench/wrk/batch.lua http://127.0.0.1:8480
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
  prefix = "wb" .. os.time() .. "-" .. id .. "-"
end
function request()
  local items = {}
  for i = 1, 1000 do
    counter = counter + 1
    items[i] = string.format(
      '{"op":"reserve","reservation_id":"%s%d","account":"agent-%d","amount_micros":1000}',
      prefix, counter, counter % 10000)
  end
  local body = '{"commands":[' .. table.concat(items, ",") .. ']}'
  return wrk.format("POST", "/v1/batch", headers, body)
end
local failures = 0
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end
