"""The dispatcher's scripts: a queue's waiting work, and a worker's claim on the next unit.

A unit is what one message trains: a job, or a group of a study's children that share
a graph. Units wait in their owner's list on their queue's dispatcher
(core.store.keys.DispatcherKeys); a worker with a free pool slot claims the next one
(`CLAIM`) and sends its message to its own Celery queue (core.store.dispatch says why).

`DISPATCHER` holds what the job scripts share with the claim: a dispatcher's keys named
from the namespace's dispatch base and a queue, and `enqueue`.
"""

from __future__ import annotations

from core.access.api_keys import ANONYMOUS
from core.store.scripts import LuaScript, lua_script

# Wake tokens kept per queue: enough for every idle worker, bounded however much is queued.
WAKE_TOKENS = 64

DISPATCHER = f"""
local ANONYMOUS, WAKE_TOKENS = '{ANONYMOUS}', {WAKE_TOKENS}
"""
DISPATCHER += """
-- A queue's dispatcher, its keys named as core.store.keys.DispatcherKeys names them.
local function dispatcher(base, queue)
  local prefix = base .. queue .. ':'
  return {prefix = prefix, owners = prefix .. 'owners', waiting = prefix .. 'waiting',
          idle = prefix .. 'idle', wake = prefix .. 'wake'}
end
local function units_of(d, owner) return d.prefix .. 'units:' .. owner end

-- What a unit's graph is called: the jobs' graph signature and how many train side by
-- side ('-' for a record that has no signature: never warm anywhere).
local function graph_of(signature, members)
  if not signature or signature == '' then return '-' end
  return signature .. '/' .. members
end

-- Queue a unit of `owner`: `jobs` ({id, dispatch, record} each) trained by one message of
-- `task` (JSON), on graph `graph`. A job queued again goes to the head of its owner's
-- list: it has waited its turn once already. Each job's record names the index it sits in.
local function enqueue(d, owner, jobs, graph, task, t, head)
  local held = {}
  for i, job in ipairs(jobs) do
    held[i] = job.id .. ':' .. job.dispatch
    redis.call('ZADD', d.waiting, t, job.id)
    redis.call('HSET', job.record, 'dispatch_index', d.waiting)
  end
  local entry = stamp(t) .. ' ' .. graph .. ' ' .. table.concat(held, ',') .. ' ' .. task
  redis.call(head and 'LPUSH' or 'RPUSH', units_of(d, owner), entry)
  redis.call('ZADD', d.owners, 'NX', 0, owner)
  redis.call('LPUSH', d.wake, 1)
  redis.call('LTRIM', d.wake, 0, WAKE_TOKENS - 1)
end
"""

CLAIM = lua_script(
    "claim",
    DISPATCHER,
    """
-- KEYS[1] the queue's heartbeats, [2] the worker's report of the jobs it holds, [3] the
-- outbox, [4] the running jobs' index, [5] the claimed jobs' index;
-- ARGV[1] dispatch base, [2] queue, [3] hostname, [4] a job record's key before its id,
-- [5] silent seconds, [6] look-ahead (units per owner), [7] seconds a unit waits for an
-- idle worker that holds its graph warm, [8] cap on an owner's running jobs (0: none),
-- [9] seconds a report is kept, [10] and [11] a worker's wake key around its hostname,
-- [12..] the graphs this worker holds warm.
-- Replies {} (nothing for this worker: it is idle now), or the unit's task JSON then its
-- jobs as "<id>:<dispatch>".
local d = dispatcher(ARGV[1], ARGV[2])
local host, t, silent = ARGV[3], now(), tonumber(ARGV[5])
local look, wait, cap = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local warm, warm_list = {}, {}
for i = 12, #ARGV do warm[ARGV[i]] = true; warm_list[#warm_list + 1] = ARGV[i] end

-- The graphs other idle, live workers hold warm: a young unit is left to them.
local elsewhere = {}
local idle = redis.call('HGETALL', d.idle)
for i = 1, #idle, 2 do
  local other = idle[i]
  if other ~= host then
    local beat = redis.call('ZSCORE', KEYS[1], other)
    if beat and t - tonumber(beat) <= silent then
      for graph in string.gmatch(idle[i + 1], '%S+') do
        elsewhere[graph] = elsewhere[graph] or other
      end
    else
      redis.call('HDEL', d.idle, other)
    end
  end
end

-- Owners with work waiting, fairest first: the fewest jobs running or claimed, then the
-- one whose turn came longest ago. An owner at its cap waits.
local order = {}
local owners = redis.call('ZRANGE', d.owners, 0, -1, 'WITHSCORES')
for i = 1, #owners, 2 do
  local owner = owners[i]
  local taken = redis.call('ZCARD', owned(KEYS[4], owner))
    + redis.call('ZCARD', owned(KEYS[5], owner))
  if cap == 0 or taken < cap then
    order[#order + 1] = {owner = owner, taken = taken, turn = tonumber(owners[i + 1])}
  end
end
table.sort(order, function(a, b)
  if a.taken ~= b.taken then return a.taken < b.taken end
  if a.turn ~= b.turn then return a.turn < b.turn end
  return a.owner < b.owner
end)

-- The jobs of a unit still queued at the dispatch they were queued with.
local function still_waiting(held)
  local jobs = {}
  for job in string.gmatch(held, '[^,]+') do
    local id, dispatch = string.match(job, '^([^:]+):(%d+)$')
    local record = ARGV[4] .. id
    local state = redis.call('HMGET', record, 'status', 'dispatch')
    if state[1] == 'queued' and (state[2] or '0') == dispatch then
      jobs[#jobs + 1] = {id = id, dispatch = dispatch, record = record}
    end
  end
  return jobs
end

-- The unit this worker takes from `owner`'s first `look`: the first whose graph it holds
-- warm, else the first not left to an idle worker holding it warm. Units whose jobs all
-- left meanwhile (cancelled, deleted) are dropped on the way.
local wake = {}
local function choose(units)
  local fallback
  for _, entry in ipairs(redis.call('LRANGE', units, 0, look - 1)) do
    local since, graph, held, task = string.match(entry, '^(%S+) (%S+) (%S+) ?(.*)$')
    local jobs = still_waiting(held)
    if #jobs == 0 then
      redis.call('LREM', units, 1, entry)
    else
      local unit = {entry = entry, jobs = jobs, task = task}
      if warm[graph] then return unit end
      local other = elsewhere[graph]
      if other and t - tonumber(since) < wait then
        wake[other] = true
      elseif not fallback then
        fallback = unit
      end
    end
  end
  return fallback
end

-- Take `unit` of `owner`: its jobs are claimed (on their way to this worker), each in the
-- outbox until the worker confirms its message sent, and in the worker's report, so that
-- a reaper re-queues them if the worker dies before it starts them.
local function take(owner, units, unit)
  redis.call('LREM', units, 1, unit.entry)
  if redis.call('LLEN', units) == 0 then
    redis.call('ZREM', d.owners, owner)
  else
    redis.call('ZADD', d.owners, 'XX', t, owner)
  end
  local claimed, held = owned(KEYS[5], owner), {}
  for i, job in ipairs(unit.jobs) do
    redis.call('ZREM', d.waiting, job.id)
    redis.call('ZADD', claimed, t, job.id)
    redis.call('HSET', job.record, 'dispatch_index', claimed)
    redis.call('ZADD', KEYS[3], t, job.id .. ' ' .. job.dispatch)
    held[i] = job.id .. ':' .. job.dispatch
  end
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('APPEND', KEYS[2], ' ' .. table.concat(held, ' '))
  else
    redis.call('SET', KEYS[2], stamp(t) .. ' ' .. table.concat(held, ' '), 'EX', ARGV[9])
  end
  return {unit.task, unpack(held)}
end

local reply = {}
for _, turn in ipairs(order) do
  local units = units_of(d, turn.owner)
  local unit = choose(units)
  if unit then
    reply = take(turn.owner, units, unit)
    break
  end
  if redis.call('LLEN', units) == 0 then redis.call('ZREM', d.owners, turn.owner) end
end
if #reply == 0 then
  redis.call('HSET', d.idle, host, table.concat(warm_list, ' '))
else
  redis.call('HDEL', d.idle, host)
end
for other in pairs(wake) do
  local key = ARGV[10] .. other .. ARGV[11]
  redis.call('LPUSH', key, 1)
  redis.call('LTRIM', key, 0, 0)
  redis.call('EXPIRE', key, ARGV[9])
end
return reply
""",
)

DISPATCH_SCRIPTS: tuple[LuaScript, ...] = (CLAIM,)
