"""The Lua scripts of the Redis store: each step of the lease protocol is one atomic script.

Every script touches only keys of one chain (one hash tag), so it runs on Redis Cluster too. Times
come from the server (``TIME``), so the hosts' clocks never have to agree.
"""

from __future__ import annotations

# Milliseconds on the server's clock.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: lease, in-flight mark. ARGV: owner, lease ms, process token, orphans ('1': this process
# holds no live lease on the key, so one in Redis with this process's token is an orphan, left by a
# release that never reached Redis; it may be taken over).
# 1: taken. 0: someone holds it. -1: free, but a grant sent under an earlier lease may still be
# answered (its in-flight mark has not reached its deadline): nobody may spend that token yet, but
# the process that sent it (it may hold the answer, and need the lease to store it).
ACQUIRE = (
    """
local holder = redis.call('GET', KEYS[1])
if holder then
  local mine = ARGV[3] .. ':'
  if ARGV[4] ~= '1' or string.sub(holder, 1, string.len(mine)) ~= mine then return 0 end
end
local deadline = tonumber(redis.call('HGET', KEYS[2], 'deadline_ms') or '0')
if deadline > 0 then
"""
    + _NOW
    + """
  if deadline > now and redis.call('HGET', KEYS[2], 'process') ~= ARGV[3] then return -1 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
)

# KEYS: lease. ARGV: owner, ms. Extends (never shortens) a lease that is still ours: 1, else 0.
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# KEYS: lease. ARGV: owner, and the chain's change channel (optional). Deletes the lease only if it
# is still ours, and then tells the waiters on the channel that it is free ("released").
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] then redis.call('PUBLISH', ARGV[2], 'released') end
  return 1
end
return 0
"""

# KEYS: lease, in-flight mark. ARGV: owner, hold ms, grant ms, generation spent, process token.
# The lease-guarded send: only a holder whose lease is still its own may send, and its lease then
# outlasts the grant's whole deadline. Returns the mark's deadline (server ms), or 0 if the lease
# was lost (nothing is written then).
RESERVE = (
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
"""
    + _NOW
    + """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local deadline = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'generation', ARGV[4], 'deadline_ms', deadline, 'process', ARGV[5])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]) + 3600000)
return deadline
"""
)

# KEYS: in-flight mark. ARGV: owner. Clears our own mark (a grant that ended without a commit).
UNMARK = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""

# KEYS: record, in-flight mark. ARGV: mode, base generation, new generation, document, dead flag,
# dead TTL ms, owner, channel.
# mode 'exact': a refresh's commit, written only if the stored generation is still the one spent
# (the owner is not checked: a holder that lost its lease still saves the chain if nobody moved it).
# mode 'newer': any other write, only over an older generation. Nothing ever replaces a newer one.
# Returns {1, new} when written, {0, stored} when refused (stored is -1 for no record).
WRITE = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'generation') or '-1')
local new = tonumber(ARGV[3])
if ARGV[1] == 'exact' then
  if stored ~= tonumber(ARGV[2]) then return {0, stored} end
elseif stored >= new then
  return {0, stored}
end
redis.call('HSET', KEYS[1], 'generation', ARGV[3], 'doc', ARGV[4], 'dead', ARGV[5])
if ARGV[5] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[6]) else redis.call('PERSIST', KEYS[1]) end
-- The mark goes with its own commit, and with any write past the generation it spent: that token
-- is no longer the chain's, so its answer can cost nobody anything (a failed commit stored later).
local marked = redis.call('HMGET', KEYS[2], 'owner', 'generation')
if marked[1] == ARGV[7] or (marked[2] and tonumber(marked[2]) < new) then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', ARGV[8], ARGV[3])
return {1, new}
"""

# KEYS: record. ARGV: channel. A logout: the record goes, and waiters hear of it.
FORGET = """
local gone = redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], '-1')
return gone
"""

# KEYS: record, its quarantine name. Moves an unreadable record aside (kept a day for inspection).
QUARANTINE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[2], 86400000)
return 1
"""
