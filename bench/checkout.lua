-- wrk script for bench_checkout.py: every connection alternates, as a consultant would, a
-- check-out (POST .../checkout) and the check-in of a lease a check-out got back.
--
-- A wrk thread drives several connections and its Lua state cannot tell them apart, so the
-- state is per thread: the thread owns a share of the (token, secret) pairs, one per
-- connection. A connection ready to send checks in the oldest lease the thread holds, or,
-- when it holds none, checks out a secret nobody of the thread is holding. Responses carry
-- the lease's secret id, which names the pair again. (The previous script ran one thread
-- per connection: 32 threads on two cores, where the load generator's own CPU and context
-- switches took from the server what a real client elsewhere would not.)
local pairs_all = {}
local client_id = os.getenv("BENCH_CLIENT")
local threads_n = tonumber(os.getenv("BENCH_THREADS") or "1")
local secret_list = {}
for secret in string.gmatch(os.getenv("BENCH_SECRETS"), "[^,]+") do
  table.insert(secret_list, secret)
end
local i = 0
for token in string.gmatch(os.getenv("BENCH_TOKENS"), "[^,]+") do
  i = i + 1
  table.insert(pairs_all, token .. ":" .. secret_list[i])
end
local counter = 0

function setup(thread)
  -- thread k (1-based) gets pairs k, k + threads_n, k + 2 * threads_n, ...
  counter = counter + 1
  local mine = {}
  for j = counter, #pairs_all, threads_n do
    table.insert(mine, pairs_all[j])
  end
  thread:set("mine", table.concat(mine, ","))
end

function init(args)
  token_of = {}
  free = {}       -- secrets no connection of this thread holds or is checking out
  leases = {}     -- leases to check in: {id, secret}, oldest first
  first = 1
  last = 0
  spare = 0       -- round-robin over all secrets, should a failed request lose one
  all = {}
  errors = 0
  for pair in string.gmatch(mine, "[^,]+") do
    local token, secret = string.match(pair, "([^:]+):(.+)")
    token_of[secret] = token
    table.insert(free, secret)
    table.insert(all, secret)
  end
end

local function headers_for(secret)
  return {["Authorization"] = "Bearer " .. token_of[secret],
          ["Content-Type"] = "application/json"}
end

function request()
  if first <= last then
    local lease = leases[first]
    leases[first] = nil
    first = first + 1
    return wrk.format("POST", "/leases/" .. lease[1] .. "/checkin", headers_for(lease[2]), "{}")
  end
  local secret = table.remove(free)
  if secret == nil then
    -- only after a failed request (its secret is not known from an error body)
    spare = spare % #all + 1
    secret = all[spare]
  end
  return wrk.format("POST", "/clients/" .. client_id .. "/secrets/" .. secret .. "/checkout",
                    headers_for(secret), '{"reason": "bench"}')
end

function response(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
    return
  end
  local id, secret = string.match(body, '"lease":{"id":"([^"]+)","secret_id":"([^"]+)"')
  if id == nil then
    errors = errors + 1
    return
  end
  if string.find(body, '"value"', 1, true) then
    last = last + 1
    leases[last] = {id, secret}
  else
    table.insert(free, secret)
  end
end
