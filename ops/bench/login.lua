-- wrk script for the login storm (ops/bench/search.sh login): password logins
-- of 16 accounts (bench0..15@example.com), each request from its own client
-- address in X-Forwarded-For (the app trusts 127.0.0.1), so per-address
-- limits are not what is measured.
local counter = 0
request = function()
  counter = counter + 1
  local user = counter % 16
  local ip = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
  local headers = { ["Content-Type"] = "application/json", ["X-Forwarded-For"] = ip }
  local body = string.format('{"identifier":"bench%d@example.com","password":"bench password %d"}', user, user)
  return wrk.format("POST", "/api/v1/auth/login", headers, body)
end
