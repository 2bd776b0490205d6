-- wrk script for bench_checkout.py: each wrk thread drives one connection that alternates
-- a check-out (POST .../checkout) and the check-in of the lease it got back.
local tokens = {}
local counter = 0
local client_id = os.getenv("BENCH_CLIENT")
for token in string.gmatch(os.getenv("BENCH_TOKENS"), "[^,]+") do
  table.insert(tokens, token)
end
local secrets = {}
for secret in string.gmatch(os.getenv("BENCH_SECRETS"), "[^,]+") do
  table.insert(secrets, secret)
end

function setup(thread)
  counter = counter + 1
  thread:set("token", tokens[counter])
  thread:set("secret", secrets[counter])
end

function init(args)
  lease = nil
  errors = 0
end

function request()
  local headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
  if lease == nil then
    return wrk.format("POST", "/clients/" .. client_id .. "/secrets/" .. secret .. "/checkout",
                      headers, '{"reason": "bench"}')
  end
  local path = "/leases/" .. lease .. "/checkin"
  lease = nil
  return wrk.format("POST", path, headers, "{}")
end

function response(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
    lease = nil
    return
  end
  local id = string.match(body, '"lease":{"id":"([^"]+)"')
  if id ~= nil and string.find(body, '"value"') then
    lease = id
  end
end
