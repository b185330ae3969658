"""The job scripts: every state change of a job, an owner's admission, a cached PNG.

A job script gets KEYS laid out by `JobPlans.job_script_keys` (core.store.jobs): the
job's keys, then the indexes; ARGV[1..3] are the job id, the TTL applied when it
finishes and its event stream's cap. `JOB_LAYOUT` names them and holds the helpers
every transition shares.
"""

from __future__ import annotations

from core.store.scripts import LuaScript, lua_script
from core.store.scripts.dispatch import DISPATCHER

# Job duration histogram buckets (seconds); the Lua scripts count into them.
DURATION_BUCKETS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

JOB_LAYOUT = (
    f"""
local BUCKETS = {{{", ".join(f"{bound:g}" for bound in DURATION_BUCKETS)}}}
local LABELS = {{{", ".join(f"'{bound:g}'" for bound in DURATION_BUCKETS)}}}
"""
    + """
local record, result, arrays, plots, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobs, expiry, durations = KEYS[6], KEYS[7], KEYS[8]
local by_status = {queued = KEYS[9], running = KEYS[10], succeeded = KEYS[11],
                   failed = KEYS[12], cancelled = KEYS[13]}
local owners = KEYS[14]
local id, ttl, cap = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local function emit(kind, data) append_event(events, cap, kind, data) end

-- While it waits for a worker, or is on its way to one, a job sits in an index of the
-- dispatcher (core.store.scripts.dispatch) its record names; any change of status, a
-- re-queue or a delete takes it out.
local function leave_dispatcher()
  local index = redis.call('HGET', record, 'dispatch_index')
  if index then
    redis.call('ZREM', index, id)
    redis.call('HDEL', record, 'dispatch_index')
  end
end

local function set_status(from, to)
  leave_dispatcher()
  redis.call('HSET', record, 'status', to)
  if from then redis.call('ZREM', by_status[from], id) end
  redis.call('ZADD', by_status[to], 0, id)
  local owner = redis.call('HGET', owners, id)
  if owner then
    if from then redis.call('ZREM', owned(by_status[from], owner), id) end
    redis.call('ZADD', owned(by_status[to], owner), 0, id)
  end
end

local function observe(status, seconds)
  local label = '+Inf'
  for i, bound in ipairs(BUCKETS) do
    if seconds <= bound then label = LABELS[i]; break end
  end
  redis.call('HINCRBY', durations, status .. ':' .. label, 1)
  redis.call('HINCRBY', durations, status .. ':count', 1)
  redis.call('HINCRBYFLOAT', durations, status .. ':sum', seconds)
end

-- Finishing: status, time, duration, final event, then every key of the job expires
-- together and the expiry index says when, so index entries can be pruned later.
local function finish(from, to, event)
  local t = now()
  set_status(from, to)
  redis.call('HSET', record, 'finished_at', stamp(t))
  local started = redis.call('HGET', record, 'started_at')
  if started then observe(to, t - tonumber(started)) end
  emit('state', event)
  for _, key in ipairs({record, result, arrays, plots, events}) do
    redis.call('EXPIRE', key, ttl)
  end
  redis.call('ZADD', expiry, t + ttl, id)
end

-- Fencing: a worker writes with the delivery number mark_running gave it ('' when the
-- caller is not a delivery). Once the job was delivered again, the earlier delivery's
-- writes are refused: a worker thought lost that comes back must not overwrite.
local function current(delivery)
  return delivery == '' or redis.call('HGET', record, 'deliveries') == delivery
end

-- A Celery message names the dispatch it belongs to (0: the API's first send); a reaper's
-- re-queue starts a new one, after which the older messages may not start the job.
local function dispatched(dispatch)
  return dispatch == '' or (redis.call('HGET', record, 'dispatch') or '0') == dispatch
end

-- The deliveries that count against max_deliveries: not those a worker said it lost to
-- a lost connection to Redis (Celery stops a running job then), which say nothing of
-- the job. Also the words that say so in a TooManyDeliveries message.
local function counted(deliveries)
  local interrupted = tonumber(redis.call('HGET', record, 'interrupted') or '0')
  local told = ''
  if interrupted > 0 then
    told = string.format(' (and %d more cut short by lost connections to Redis)', interrupted)
  end
  return deliveries - interrupted, told
end
"""
)

# A new queued job's record, owner, indexes and "queued" event; the caller queues it on its
# queue's dispatcher (core.store.scripts.dispatch.DISPATCHER: `enqueue`), alone or with
# others, in the same step. Shared by CREATE and a study's creation
# (core.store.scripts.studies). `at` holds the keys record, events, jobs, queued (the status
# index) and owners; `job` the fields id, queue, spec, epochs, owner, task, graph (its
# graph's signature, core.experiment.grouping.graph_signature).
NEW_JOB = """
local function new_job(at, job, cap, t)
  redis.call('HSET', at.record, 'id', job.id, 'status', 'queued', 'queue', job.queue,
             'created_at', stamp(t), 'spec', job.spec, 'epoch', 0,
             'epochs', job.epochs, 'deliveries', 0, 'dispatch', 0, 'cancel_requested', 0,
             'owner', job.owner, 'task', job.task, 'graph', job.graph)
  redis.call('HSET', at.owners, job.id, job.owner)
  for _, index in ipairs({at.jobs, at.queued}) do
    redis.call('ZADD', index, 0, job.id)
    redis.call('ZADD', owned(index, job.owner), 0, job.id)
  end
  append_event(at.events, cap, 'state', '{"status":"queued"}')
end
"""


def job_script(name: str, *parts: str) -> LuaScript:
    """A script over one job's keys: the prelude, the job's layout, then `parts`."""
    return lua_script(name, JOB_LAYOUT, *parts)


CREATE = job_script(
    "create",
    DISPATCHER,
    NEW_JOB,
    """
-- ARGV[4] queue, [5] spec JSON, [6] epochs, [7] idempotency value or '',
-- [8] idempotency ttl, [9] the stale idempotency value this replaces, or '', [10] owner,
-- [11] the owner's limit of active jobs (0: none), [12] the task JSON, [13] the dispatch
-- base, [14] the graph signature; KEYS[15] the idempotency key (when ARGV[7] is given)
local owner, limit = ARGV[10], tonumber(ARGV[11])
if ARGV[7] ~= '' then
  -- A replay whose first job is gone replaces only the value it found: of two such
  -- replays at once, the second finds the first one's new job here, and replays it.
  local previous = redis.call('GET', KEYS[15])
  if previous and previous ~= ARGV[9] then return {'replay', previous} end
end
if limit > 0 then
  local active = active_jobs(by_status.queued, by_status.running, owner)
  if active >= limit then return {'limited', active} end
end
if ARGV[7] ~= '' then redis.call('SET', KEYS[15], ARGV[7], 'EX', ARGV[8]) end
local t = now()
new_job({record = record, events = events, jobs = jobs, queued = by_status.queued,
         owners = owners},
        {id = id, queue = ARGV[4], spec = ARGV[5], epochs = ARGV[6], owner = owner,
         task = ARGV[12], graph = ARGV[14]},
        cap, t)
enqueue(dispatcher(ARGV[13], ARGV[4]), owner, {{id = id, dispatch = 0, record = record}},
        graph_of(ARGV[14], 1), ARGV[12], t, false)
return {'created', redis.call('HGETALL', record)}
""",
)

MARK_RUNNING = job_script(
    "mark_running",
    """
-- ARGV[4] worker JSON, [5] max deliveries, [6] the message's dispatch or '',
-- [7] the task JSON to re-send it with, or ''
if redis.call('EXISTS', record) == 0 then return {'missing'} end
local status = redis.call('HGET', record, 'status')
if finished[status] then return {'finished'} end
if not dispatched(ARGV[6]) then return {'stale'} end
local deliveries = redis.call('HINCRBY', record, 'deliveries', 1)
if redis.call('HGET', record, 'cancel_requested') == '1' then
  finish(status, 'cancelled', '{"status":"cancelled"}')
  return {'cancelled'}
end
local count, told = counted(deliveries)
if count > tonumber(ARGV[5]) then
  local error = cjson.encode({type = 'TooManyDeliveries', message = string.format(
    'delivered %d times%s, over the limit of %s: the job may be killing its worker',
    count, told, ARGV[5])})
  redis.call('HSET', record, 'error', error)
  finish(status, 'failed', '{"status":"failed","error":' .. error .. '}')
  return {'failed'}
end
-- A redelivery of a job still running (Celery restored its message) takes it over:
-- the delivery it replaces is remembered for its worker's late word on how it ended.
local previous = redis.call('HGET', record, 'worker')
if status == 'running' and previous then
  redis.call('HSET', record, 'last_worker', cjson.decode(previous).hostname)
end
redis.call('HSET', record, 'started_at', stamp(now()), 'worker', ARGV[4], 'epoch', 0)
if ARGV[7] ~= '' then redis.call('HSET', record, 'task', ARGV[7]) end
set_status(status, 'running')
emit('state', '{"status":"running","delivery":' .. deliveries .. ',"worker":' .. ARGV[4] .. '}')
return {'running', redis.call('HGETALL', record)}
""",
)

NOTE_INTERRUPTED = job_script(
    "note_interrupted",
    """
-- ARGV[4] hostname, [5] the note's id. Worker `hostname` says its run of the job was cut
-- short by a lost connection to Redis (Celery stops an unacknowledged job then, and
-- delivers it again): that delivery no longer counts against max_deliveries. The run is
-- the job's current one on that worker, or the one a later delivery or a re-queue took
-- over from it (`last_worker`). Told once per note, as the worker may say it again.
local state = redis.call('HMGET', record, 'status', 'worker', 'last_worker', 'deliveries',
                         'interrupted', 'interrupted_note')
if not state[1] or finished[state[1]] or state[6] == ARGV[5] then return 0 end
local ours = state[3] == ARGV[4]
if state[1] == 'running' and state[2] then
  ours = ours or cjson.decode(state[2]).hostname == ARGV[4]
end
if not ours or tonumber(state[5] or '0') >= tonumber(state[4] or '0') then return 0 end
redis.call('HINCRBY', record, 'interrupted', 1)
redis.call('HSET', record, 'interrupted_note', ARGV[5])
return 1
""",
)

SET_WORKER = job_script(
    "set_worker",
    """
-- ARGV[4] worker JSON, [5] delivery. The worker of a running delivery, told in full once
-- it has loaded its engine (mark_running names it before, from what is cheap to know).
if redis.call('HGET', record, 'status') ~= 'running' or not current(ARGV[5]) then return 0 end
redis.call('HSET', record, 'worker', ARGV[4])
return 1
""",
)

SET_PROGRESS = job_script(
    "set_progress",
    """
-- ARGV[4] epoch, [5] epochs, [6] delivery or '', [7..] the events of the epochs done
-- since the last call (JSON), oldest first.
-- Returns 0: stop, 1: go on, 2: cancel asked.
local state = redis.call('HMGET', record, 'status', 'cancel_requested')
if state[1] ~= 'running' or not current(ARGV[6]) then return 0 end
redis.call('HSET', record, 'epoch', ARGV[4], 'epochs', ARGV[5])
for i = 7, #ARGV do emit('progress', ARGV[i]) end
if state[2] == '1' then return 2 end
return 1
""",
)

MARK_SUCCEEDED = job_script(
    "mark_succeeded",
    """
-- ARGV[4] summary JSON, [5] result JSON, [6] arrays or '', [7] plot names JSON,
-- [8] event JSON, [9] delivery or '', [10..] plot hash field/value pairs
if redis.call('HGET', record, 'status') ~= 'running' or not current(ARGV[9]) then return 0 end
redis.call('SET', result, ARGV[5])
if ARGV[6] ~= '' then redis.call('SET', arrays, ARGV[6]) end
if #ARGV > 9 then redis.call('HSET', plots, unpack(ARGV, 10)) end
redis.call('HSET', record, 'summary', ARGV[4], 'plots', ARGV[7])
finish('running', 'succeeded', ARGV[8])
return 1
""",
)

MARK_STOPPED = job_script(
    "mark_stopped",
    """
-- ARGV[4] 'failed' or 'cancelled', [5] error JSON or '', [6] event JSON,
-- [7] delivery or '' (given: only that running delivery may stop it), [8] dispatch or ''
local status = redis.call('HGET', record, 'status')
if status ~= 'queued' and status ~= 'running' then return 0 end
if ARGV[7] ~= '' and (status ~= 'running' or not current(ARGV[7])) then return 0 end
if not dispatched(ARGV[8]) then return 0 end
if ARGV[5] ~= '' then redis.call('HSET', record, 'error', ARGV[5]) end
finish(status, ARGV[4], ARGV[6])
return 1
""",
)

REQUEST_CANCEL = job_script(
    "request_cancel",
    """
if redis.call('EXISTS', record) == 0 then return {'missing'} end
local status = redis.call('HGET', record, 'status')
if status == 'queued' then
  finish('queued', 'cancelled', '{"status":"cancelled"}')
elseif status == 'running' and redis.call('HGET', record, 'cancel_requested') ~= '1' then
  redis.call('HSET', record, 'cancel_requested', 1)
  emit('cancel_requested', '{"status":"running","cancel_requested":true}')
end
return {status, redis.call('HGETALL', record)}
""",
)

DELETE = job_script(
    "delete",
    """
local existed = redis.call('EXISTS', record)
leave_dispatcher()
redis.call('DEL', record, result, arrays, plots, events)
redis.call('ZREM', jobs, id)
redis.call('ZREM', expiry, id)
for _, key in pairs(by_status) do redis.call('ZREM', key, id) end
local owner = redis.call('HGET', owners, id)
if owner then
  redis.call('ZREM', owned(jobs, owner), id)
  for _, key in pairs(by_status) do redis.call('ZREM', owned(key, owner), id) end
  redis.call('HDEL', owners, id)
end
return existed
""",
)

PRUNE_OWNED = lua_script(
    "prune_owned",
    """
-- KEYS[1] owners (id -> owner), [2] expiry, [3..] indexes; ARGV[1] limit.
-- An id whose expiry time has passed has no keys left: it leaves every index, and its
-- owner's part of every index.
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now(), 'LIMIT', 0, ARGV[1])
for _, id in ipairs(ids) do
  local owner = redis.call('HGET', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  for i = 3, #KEYS do
    redis.call('ZREM', KEYS[i], id)
    if owner then redis.call('ZREM', owned(KEYS[i], owner), id) end
  end
  redis.call('HDEL', KEYS[1], id)
end
return #ids
""",
)

ADMIT = lua_script(
    "admit",
    """
-- KEYS[1] the owner's submissions (sorted set: time -> request id), [2] its queued index,
-- [3] its running index; ARGV[1] request id, [2] submissions allowed per window,
-- [3] window seconds, [4] jobs allowed queued or running, [5] jobs this request adds.
-- Replies {'ok'}, {'active', active jobs} or {'rate', seconds until the window has room}.
-- A refused request is not counted: a client that waits as told gets in.
local t, window = now(), tonumber(ARGV[3])
local active = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3])
if active + tonumber(ARGV[5]) > tonumber(ARGV[4]) then return {'active', active} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {'rate', string.format('%.3f', tonumber(oldest[2]) + window - t)}
end
redis.call('ZADD', KEYS[1], t, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
return {'ok'}
""",
)

PUT_PLOT = lua_script(
    "put_plot",
    """
-- KEYS[1] record, [2] plots, [3] renders (sorted set: "<plots key> <field>" -> when
-- stored), [4] render sizes (hash: the same member -> bytes), [5] render bytes (counter).
-- ARGV[1] field, [2] png, [3] etag field, [4] etag, [5] max fields, [6] the byte budget
-- of renders ('' for a default-size PNG, which is kept outside it).
-- Cache only for a finished job or study (its record has a TTL), and expire with it. A
-- render at another size counts against the deployment's budget: past it, the oldest
-- renders (of any record) are dropped here, in the same step that stores this one.
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[5]) then return 0 end
local budget = tonumber(ARGV[6])
local size = string.len(ARGV[2])
if budget and size > budget then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ttl)
if not budget then return 1 end
local member = KEYS[2] .. ' ' .. ARGV[1]
local before = tonumber(redis.call('HGET', KEYS[4], member) or '0')
redis.call('ZADD', KEYS[3], now(), member)
redis.call('HSET', KEYS[4], member, size)
local total = redis.call('INCRBY', KEYS[5], size - before)
while total > budget do
  local oldest = redis.call('ZPOPMIN', KEYS[3])
  if #oldest == 0 then break end
  local plots, field = string.match(oldest[1], '^(%S+) (.+)$')
  redis.call('HDEL', plots, field, field .. '#etag')  -- its ETag (keys.plot_etag_field)
  total = redis.call('DECRBY', KEYS[5], tonumber(redis.call('HGET', KEYS[4], oldest[1]) or '0'))
  redis.call('HDEL', KEYS[4], oldest[1])
end
return 1
""",
)

READ_OWNED = lua_script(
    "read_owned",
    """
-- KEYS[1] a job's or a study's record; ARGV[1] the owner asking, [2] the owner of a
-- record that names none.
-- The whole record for its owner; nil, after the same single read, both for an unknown id
-- and for another owner's record, so neither answers sooner than the other.
local id, owner = unpack(redis.call('HMGET', KEYS[1], 'id', 'owner'))
if not id or (owner or ARGV[2]) ~= ARGV[1] then return false end
return redis.call('HGETALL', KEYS[1])
""",
)

JOB_SCRIPTS: tuple[LuaScript, ...] = (
    CREATE,
    MARK_RUNNING,
    SET_WORKER,
    NOTE_INTERRUPTED,
    SET_PROGRESS,
    MARK_SUCCEEDED,
    MARK_STOPPED,
    REQUEST_CANCEL,
    DELETE,
    PRUNE_OWNED,
    ADMIT,
    PUT_PLOT,
    READ_OWNED,
)
