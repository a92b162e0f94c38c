// The shared pool's writes, each one atomic script: change the servers hash, bump the version,
// publish the change. KEYS[1] = servers hash, KEYS[2] = version; ARGV[1] = channel, ARGV[2] = id.
// Both keys carry one hash tag, so they share a Redis Cluster slot. Ids are hex, so the message
// JSON can be assembled without escaping.

/** ARGV[3] = server JSON. Returns the new version, or 0 when the id is already there. */
export const ADD = `
if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], '{"v":' .. v .. ',"op":"add","id":"' .. ARGV[2] .. '","server":' .. ARGV[3] .. '}')
return v
`

/** ARGV[3] = weight or '', ARGV[4] = '1'/'0' (enabled) or ''. Returns the server JSON, or false when absent. */
export const UPDATE = `
local current = redis.call('HGET', KEYS[1], ARGV[2])
if not current then return false end
local server = cjson.decode(current)
if ARGV[3] ~= '' then server.weight = tonumber(ARGV[3]) end
if ARGV[4] ~= '' then server.enabled = (ARGV[4] == '1') end
local json = cjson.encode(server)
redis.call('HSET', KEYS[1], ARGV[2], json)
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], '{"v":' .. v .. ',"op":"update","id":"' .. ARGV[2] .. '","server":' .. json .. '}')
return json
`

/** Returns the new version, or 0 when the id is absent. */
export const REMOVE = `
if redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then return 0 end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], '{"v":' .. v .. ',"op":"remove","id":"' .. ARGV[2] .. '"}')
return v
`

/** The whole pool and its version, read in one step: { version, id1, json1, id2, json2, ... }. */
export const READ = `
local version = tonumber(redis.call('GET', KEYS[2]) or '0')
local all = redis.call('HGETALL', KEYS[1])
table.insert(all, 1, version)
return all
`
