"""The scripts of live workers and lost ones: heartbeats, what each worker holds, the
re-queue of a lost worker's jobs, and the outbox of dispatches not yet confirmed sent.
"""

from __future__ import annotations

from core.store.scripts import LuaScript, lua_script
from core.store.scripts.dispatch import DISPATCHER
from core.store.scripts.jobs import job_script

HEARTBEAT = lua_script(
    "heartbeat",
    """
-- KEYS[1] workers of a queue; ARGV[1] hostname, [2] seconds to keep old beats
local t = now()
redis.call('ZADD', KEYS[1], t, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[1], ARGV[2])
""",
)

LIVE_WORKERS = lua_script(
    "live_workers",
    """
-- KEYS[1] workers of a queue; ARGV[1] seconds
return redis.call('ZRANGEBYSCORE', KEYS[1], now() - tonumber(ARGV[1]), '+inf')
""",
)

RECORD_WORKER_JOBS = lua_script(
    "record_worker_jobs",
    """
-- KEYS[1] the worker's jobs key; ARGV[1] its jobs ("<id>:<dispatch>"), space-separated,
-- [2] seconds to keep
redis.call('SET', KEYS[1], stamp(now()) .. ' ' .. ARGV[1], 'EX', ARGV[2])
""",
)

LOST_WORKERS = lua_script(
    "lost_workers",
    """
-- KEYS[1] workers of a queue; ARGV[1] silent seconds, [2] and [3] the prefix and suffix of
-- a worker's jobs key (core.store.keys). Replies hostname, last report pairs of the workers
-- silent that long whose last report named a job (a reaper forgets a report once done).
local reply = {}
local hosts = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now() - tonumber(ARGV[1]))
for _, host in ipairs(hosts) do
  local report = redis.call('GET', ARGV[2] .. host .. ARGV[3])
  if report and string.find(report, ' %S') then
    reply[#reply + 1] = host
    reply[#reply + 1] = report
  end
end
return reply
""",
)

FORGET_REPORT = lua_script(
    "forget_report",
    """
-- KEYS[1] workers of a queue, [2] a worker's jobs key; ARGV[1] hostname, [2] silent seconds.
-- Drops the last report of a worker still silent: its jobs were seen to.
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if beat and now() - tonumber(beat) <= tonumber(ARGV[2]) then return 0 end
return redis.call('DEL', KEYS[2])
""",
)

# What the reaper's scripts reply: {'requeued', dispatch, task JSON, queue, reason},
# {'failed', reason}, {'cancelled'} or {'skip'} (nothing to do, or another reaper did it).
REQUEUE = """
-- Queue the job again, as a new dispatch, at the head of its owner's units on its queue's
-- dispatcher (`base`: the namespace's dispatch base); a message of an earlier dispatch is
-- void from now on. `last_worker`: the hostname of the lost run's worker, told in the
-- event (or nil).
local function requeue(reason, base, last_worker)
  leave_dispatcher()
  local dispatch = redis.call('HINCRBY', record, 'dispatch', 1)
  local t = now()
  local job = redis.call('HMGET', record, 'queue', 'owner', 'graph', 'task')
  redis.call('HSET', record, 'requeued_at', stamp(t))
  enqueue(dispatcher(base, job[1]), job[2] or ANONYMOUS,
          {{id = id, dispatch = dispatch, record = record}}, graph_of(job[3], 1),
          job[4] or '', t, true)
  emit('state', cjson.encode({status = 'queued', requeued = true, dispatch = dispatch,
                              reason = reason, last_worker = last_worker}))
  return {'requeued', dispatch, job[4] or '', job[1], reason}
end
"""

REQUEUE_LOST = job_script(
    "requeue_lost",
    DISPATCHER,
    REQUEUE,
    """
-- KEYS[15] heartbeats of the job's queue, [16] its worker's jobs key;
-- ARGV[4] worker hostname, [5] delivery, [6] silent seconds, [7] max deliveries,
-- [8] the dispatch base.
-- A running job is lost when its worker has not beaten for `silent` seconds, or beats
-- but its last report (taken well after the job started) no longer lists the job.
-- Re-checked here, atomically, so of several reapers exactly one acts.
local state = redis.call('HMGET', record, 'status', 'deliveries', 'started_at', 'worker',
                         'cancel_requested')
if state[1] ~= 'running' or state[2] ~= ARGV[5] or not state[3] or not state[4] then
  return {'skip'}
end
local host, silent, t = ARGV[4], tonumber(ARGV[6]), now()
local started = tonumber(state[3])
if cjson.decode(state[4]).hostname ~= host or t - started < silent then return {'skip'} end
local reason
local beat = redis.call('ZSCORE', KEYS[15], host)
if not beat then
  reason = 'its worker ' .. host .. ' sent no heartbeat'
elseif t - tonumber(beat) > silent then
  reason = string.format('its worker %s went silent (no heartbeat for %.0f s)', host,
                         t - tonumber(beat))
else
  local report = redis.call('GET', KEYS[16])
  if not report then return {'skip'} end
  local at, holds = nil, false
  for word in string.gmatch(report, '%S+') do
    if at == nil then at = tonumber(word) elseif string.match(word, '^[^:]+') == id then
      holds = true
    end
  end
  if holds or at < started + silent / 2 then return {'skip'} end
  reason = 'its worker ' .. host .. ' was no longer running it'
end
if state[5] == '1' then
  finish('running', 'cancelled', '{"status":"cancelled"}')
  return {'cancelled'}
end
local count, told = counted(tonumber(state[2]))
if count >= tonumber(ARGV[7]) then
  local error = cjson.encode({type = 'TooManyDeliveries', message = string.format(
    'delivered %d time%s%s, the limit, and %s: the job may be killing its worker',
    count, count == 1 and '' or 's', told, reason)})
  redis.call('HSET', record, 'error', error)
  finish('running', 'failed', '{"status":"failed","error":' .. error .. '}')
  return {'failed', reason}
end
set_status('running', 'queued')
-- Queued again, the record shows no run: the lost one's worker is told in the event, and
-- kept (last_worker) for its late word that the run was interrupted.
redis.call('HDEL', record, 'started_at', 'worker')
redis.call('HSET', record, 'epoch', 0, 'last_worker', host)
return requeue(reason, ARGV[8], host)
""",
)

REQUEUE_HELD = job_script(
    "requeue_held",
    DISPATCHER,
    REQUEUE,
    """
-- KEYS[15] heartbeats of the worker's queue, [16] its jobs key;
-- ARGV[4] worker hostname, [5] dispatch, [6] silent seconds, [7] the dispatch base.
-- A queued job whose message a lost worker held (or had claimed from the dispatcher), at
-- the job's current dispatch, was never started: the worker died between claiming it and
-- marking it running. Its message waits in the worker's own queue, or in Celery's unacked
-- set for the visibility timeout; dispatched anew, the job runs now, that message void.
if redis.call('HGET', record, 'status') ~= 'queued' or not dispatched(ARGV[5]) then
  return {'skip'}
end
local host, silent = ARGV[4], tonumber(ARGV[6])
local beat = redis.call('ZSCORE', KEYS[15], host)
if beat and now() - tonumber(beat) <= silent then return {'skip'} end
local report = redis.call('GET', KEYS[16])
if not report or not string.find(report .. ' ', ' ' .. id .. ':' .. ARGV[5] .. ' ', 1, true) then
  return {'skip'}
end
return requeue('its worker ' .. host .. ' was lost before it started the job', ARGV[7])
""",
)

REDISPATCH = job_script(
    "redispatch",
    DISPATCHER,
    REQUEUE,
    """
-- KEYS[15] the outbox; ARGV[4] its entry "<id> <dispatch>", [5] seconds unconfirmed,
-- [6] the reason to tell, or '' for the usual one, [7] the dispatch base.
-- A dispatch a worker claimed but never confirmed sent to itself (it could not reach the
-- queue, or its claiming thread died between the two) is queued anew: the new number
-- voids the old message, had it gone out after all.
local since = redis.call('ZSCORE', KEYS[15], ARGV[4])
if not since or now() - tonumber(since) < tonumber(ARGV[5]) then return {'skip'} end
redis.call('ZREM', KEYS[15], ARGV[4])
local dispatch = string.match(ARGV[4], ' (%d+)$')
if redis.call('HGET', record, 'status') ~= 'queued' or not dispatched(dispatch) then
  return {'skip'}
end
local reason = ARGV[6]
if reason == '' then
  reason = 'its message was not confirmed sent'
end
return requeue(reason, ARGV[7])
""",
)

UNSENT = lua_script(
    "unsent",
    """
-- KEYS[1] the outbox; ARGV[1] seconds, [2] limit: the entries unconfirmed for longer
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now() - tonumber(ARGV[1]),
                  'LIMIT', 0, ARGV[2])
""",
)

WORKER_SCRIPTS: tuple[LuaScript, ...] = (
    HEARTBEAT,
    LIVE_WORKERS,
    RECORD_WORKER_JOBS,
    LOST_WORKERS,
    FORGET_REPORT,
    REQUEUE_LOST,
    REQUEUE_HELD,
    REDISPATCH,
    UNSENT,
)
