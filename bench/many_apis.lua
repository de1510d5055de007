-- wrk script for bench/many_apis.sh: every request picks one of APIS x OPS
-- operations at random (APIS and OPS from the environment, 10000 x 10).
local apis = tonumber(os.getenv("APIS") or "10000")
local ops = tonumber(os.getenv("OPS") or "10")

function init(args)
    math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
    local path = string.format("/a%d/o%d/item", math.random(0, apis - 1), math.random(0, ops - 1))
    return wrk.format("GET", path)
end
