"""The study scripts: a study beside its children, which are ordinary jobs.

Each reads or changes the study's keys (`core.store.keys.StudyKeys`) and, where
it says so, its children's records, in one atomic step (core.store.studies says
why: every reader sees the same events in the same order, and a study is sealed
once).
"""

from __future__ import annotations

from core.store.scripts import LuaScript, lua_script
from core.store.scripts.dispatch import DISPATCHER
from core.store.scripts.jobs import NEW_JOB

CREATE_STUDY = lua_script(
    "create_study",
    DISPATCHER,
    NEW_JOB,
    """
-- KEYS[1] record, [2] events, [3] studies index, [4] the owner's, [5] jobs index,
-- [6] queued jobs index, [7] running jobs index, [8] job owners, then each child's record
-- and events; ARGV[1] id, [2] cap, [3] a job's events cap, [4] owner, [5] the owner's
-- limit of active jobs (0: none), [6] n children, [7] m, [8] the dispatch base,
-- [9 .. 8+m] record field/value pairs, then per child id, queue, spec JSON, epochs, task
-- JSON, graph signature; then per unit its task JSON, the indexes of its children
-- ("0,3,6") and the signature of the graph they share.
-- The study and every child in one step, each child queued on its queue's dispatcher in
-- its unit (alone, or with the children it trains beside): a creation that fails
-- part-way leaves none of them.
local owner, limit, n, m = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if limit > 0 then
  local active = active_jobs(KEYS[6], KEYS[7], owner)
  if active + n > limit then return {'limited', active} end
end
local t = now()
local at = {jobs = KEYS[5], queued = KEYS[6], owners = KEYS[8]}
local children = {}
for i = 0, n - 1 do
  local a = 9 + m + 6 * i
  at.record, at.events = KEYS[9 + 2 * i], KEYS[10 + 2 * i]
  children[i] = {id = ARGV[a], queue = ARGV[a + 1], record = at.record, graph = ARGV[a + 5]}
  new_job(at, {id = ARGV[a], queue = ARGV[a + 1], spec = ARGV[a + 2], epochs = ARGV[a + 3],
               owner = owner, task = ARGV[a + 4], graph = ARGV[a + 5]}, ARGV[3], t)
end
for u = 9 + m + 6 * n, #ARGV, 3 do
  local jobs = {}
  for index in string.gmatch(ARGV[u + 1], '%d+') do
    local child = children[tonumber(index)]
    jobs[#jobs + 1] = {id = child.id, dispatch = 0, record = child.record}
  end
  local first = children[tonumber(string.match(ARGV[u + 1], '%d+'))]
  enqueue(dispatcher(ARGV[8], first.queue), owner, jobs, graph_of(ARGV[u + 2], #jobs),
          ARGV[u], t, false)
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'status', 'queued', 'created_at',
           stamp(t), 'cancel_requested', 0, unpack(ARGV, 9, 8 + m))
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
append_event(KEYS[2], ARGV[2], 'state', '{"status":"queued"}')
return {'created', redis.call('HGETALL', KEYS[1])}
""",
)

RECONCILE = lua_script(
    "reconcile_study",
    """
-- KEYS[1] record, [2] seen, [3] events, [4..] child records; ARGV[1] cap, [2..] child ids.
-- Reads every child, tells the events each state change not yet told, moves a queued
-- study to running once a child has left the queue. Replies the study's status, the
-- server's time, then per child its CHILD_FIELDS (status 'missing' once it is gone).
local function ended(s) return finished[s] or s == 'missing' end
local record, seen, events, cap = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local status = redis.call('HGET', record, 'status')
if not status then return {'missing'} end
if finished[status] then return {status} end
local n = #KEYS - 3
local states, told, done = {}, {}, 0
for i = 1, n do
  local f = redis.call('HMGET', KEYS[3 + i], 'status', 'epoch', 'epochs', 'started_at',
                       'finished_at', 'summary')
  if not f[1] then f[1] = 'missing' end
  states[i] = f
  told[i] = redis.call('HGET', seen, ARGV[1 + i])
  if told[i] and ended(told[i]) then done = done + 1 end
end
local started = false
for i = 1, n do
  local s = states[i][1]
  if s ~= 'queued' then started = true end
  if s ~= 'queued' and s ~= told[i] then
    if ended(s) then done = done + 1 end
    redis.call('HSET', seen, ARGV[1 + i], s)
    local data = '{"child":"' .. ARGV[1 + i] .. '","index":' .. (i - 1) .. ',"status":"' .. s
      .. '","finished":' .. done .. ',"children":' .. n
    if s == 'succeeded' and states[i][6] then data = data .. ',"summary":' .. states[i][6] end
    append_event(events, cap, 'child', data .. '}')
  end
end
if status == 'queued' and started then
  status = 'running'
  redis.call('HSET', record, 'status', status)
  append_event(events, cap, 'state', '{"status":"running"}')
end
local reply = {status, stamp(now())}
for i = 1, n do reply[i + 2] = states[i] end
return reply
""",
)

SEAL = lua_script(
    "seal_study",
    """
-- KEYS[1] record, [2] seen, [3] series, [4] plots, [5] events, [6] studies expiry;
-- ARGV[1] id, [2] ttl, [3] cap, [4] status, [5] event JSON, [6] series JSON or '',
-- [7] n, [8 .. 7+n] record field/value pairs, [8+n ..] plot field/value pairs.
-- Seals once: a sealed study keeps its status and summary, but still takes the series
-- and PNGs (once each) from a worker that drew them after a reader sealed it.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
local n, sealed = tonumber(ARGV[7]), 0
if not finished[status] then
  redis.call('HSET', KEYS[1], 'status', ARGV[4])
  if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 8, 7 + n)) end
  if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6]) end
  if #ARGV > 7 + n then redis.call('HSET', KEYS[4], unpack(ARGV, 8 + n)) end
  append_event(KEYS[5], ARGV[3], 'state', ARGV[5])
  for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
  redis.call('ZADD', KEYS[6], now() + tonumber(ARGV[2]), ARGV[1])
  return 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6], 'PX', ttl, 'NX') end
if #ARGV > 7 + n then
  local plots = {}
  for i = 8 + n, #ARGV, 2 do
    if redis.call('HEXISTS', KEYS[4], ARGV[i]) == 0 then
      plots[#plots + 1] = ARGV[i]; plots[#plots + 1] = ARGV[i + 1]
    end
  end
  if #plots > 0 then redis.call('HSET', KEYS[4], unpack(plots)) end
  redis.call('PEXPIRE', KEYS[4], ttl)
end
return 0
""",
)

CANCEL_STUDY = lua_script(
    "cancel_study",
    """
-- KEYS[1] record, [2] events; ARGV[1] cap. Replies the status and the children (JSON).
local state = redis.call('HMGET', KEYS[1], 'status', 'children', 'cancel_requested')
if not state[1] then return {'missing'} end
if not finished[state[1]] and state[3] ~= '1' then
  redis.call('HSET', KEYS[1], 'cancel_requested', 1)
  append_event(KEYS[2], ARGV[1], 'cancel_requested', '{"cancel_requested":true}')
end
return {state[1], state[2]}
""",
)

CLAIM_DRAWING = lua_script(
    "claim_study_drawing",
    """
-- KEYS[1] record; ARGV[1] who. 1 for the first claim on an unsealed study, else 0.
local status = redis.call('HGET', KEYS[1], 'status')
if not status or finished[status] then return 0 end
return redis.call('HSETNX', KEYS[1], 'drawing', ARGV[1])
""",
)

DELETE_STUDY = lua_script(
    "delete_study",
    """
-- KEYS[1..5] the study's keys, [6] studies index, [7] expiry, [8] the owner's index;
-- ARGV[1] id. Replies its children (JSON), or nil when it was unknown.
local children = redis.call('HGET', KEYS[1], 'children')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
for i = 6, 8 do redis.call('ZREM', KEYS[i], ARGV[1]) end
return children
""",
)

PUT_SERIES = lua_script(
    "put_study_series",
    """
-- KEYS[1] record, [2] series; ARGV[1] JSON. Once, for a sealed study, expiring with it.
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl, 'NX') then return 1 end
return 0
""",
)

LINK_REMEDY_STUDY = lua_script(
    "link_remedy_study",
    """
-- KEYS[1] a job's or a study's record; ARGV[1] the id of a study that proves its
-- prescriptions, [2] how many such links it keeps (the newest). 0 when it is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local stored = redis.call('HGET', KEYS[1], 'remedy_studies')
local ids = stored and cjson.decode(stored) or {}
table.insert(ids, ARGV[1])
while #ids > tonumber(ARGV[2]) do table.remove(ids, 1) end
redis.call('HSET', KEYS[1], 'remedy_studies', cjson.encode(ids))
return 1
""",
)

STUDY_SCRIPTS: tuple[LuaScript, ...] = (
    LINK_REMEDY_STUDY,
    CREATE_STUDY,
    RECONCILE,
    SEAL,
    CANCEL_STUDY,
    CLAIM_DRAWING,
    DELETE_STUDY,
    PUT_SERIES,
)
