"""The Lua scripts ``RedisStore`` runs on the token hash (atomic on the server)."""

__all__ = ["DELETE_SCRIPT", "PERMISSIONS_SCRIPT", "RESTORE_SCRIPT", "SAVE_SCRIPT"]

# KEYS[1] the hash; ARGV[1] the expected version ('' = must be empty); ARGV[2] the JSON.
# Returns 1 when written, 0 when the stored version is not the expected one. A first save
# starts the counter at the server clock in microseconds, so a save after delete() never
# reuses a version that a stale writer may still hold.
SAVE_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '' then
  if current then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
if current then
  redis.call('HINCRBY', KEYS[1], 'version', 1)
else
  local now = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'version', now[1] .. string.format('%06d', tonumber(now[2])))
end
redis.call('HSET', KEYS[1], 'tokens', ARGV[2])
redis.call('HDEL', KEYS[1], 'deleted', 'restored')
return 1
"""

# restore(): KEYS[1] the hash; ARGV[1] the version the tokens were read or saved at; ARGV[2]
# the JSON. Writes them back under that version, marked 'restored' until the next save, only
# when the hash holds no newer version and no 'deleted' mark. Returns 1 when written, 0 when
# a newer (or the same) version is stored, -1 when the login was deleted on purpose.
RESTORE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'deleted') then return -1 end
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'tokens', ARGV[2], 'restored', '1')
return 1
"""

# delete() leaves only a 'deleted' field behind: the store reads as empty, yet a worker that
# still holds the login can tell a logout (or a move) from Redis losing its data.
# What the Redis user must be allowed before a refresh token is spent: our scripts (EVALSHA,
# SCRIPT LOAD), the commands they run on the token hash, and the lease's on ``<key>:lock``.
# Redis 7's redis.acl_check_cmd asks without running anything; before 7, running the script at
# all is what can be checked.
PERMISSIONS_SCRIPT = """
if not redis.acl_check_cmd then return '' end
local hash, lease = KEYS[1], KEYS[2]
local needed = {
  {'HGET', hash, 'f'}, {'HSET', hash, 'f', 'v'}, {'HINCRBY', hash, 'f', '1'},
  {'HDEL', hash, 'f'}, {'DEL', hash}, {'EXISTS', hash}, {'TIME'},
  {'SET', lease, 'v', 'NX', 'PX', '1'}, {'GET', lease}, {'PEXPIRE', lease, '1'},
  {'PTTL', lease}, {'DEL', lease},
}
for _, command in ipairs(needed) do
  if not redis.acl_check_cmd(unpack(command)) then return command[1] end
end
return ''
"""

DELETE_SCRIPT = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'deleted', '1')
return 1
"""
