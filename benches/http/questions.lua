-- wrk script: posts questions with a realistic 10-entity slice (the user, the project, its
-- organization, seven groups). MODE (environment): "hit" repeats one question; "miss" makes
-- every request distinct (a new user id, so one entity of the ten is new); "batch" posts the
-- host's "list items" call: a new user each time, `view` on each of 100 items of the project
-- (the slice plus the items, shared by the 100 questions).
local mode = os.getenv("MODE") or "hit"
-- DELAY_MS paces each connection (wrk waits that long before each request): with enough
-- connections, a steady rate below the peak.
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
if delay_ms > 0 then
  delay = function() return delay_ms end
end
-- RUN (environment) tags the user ids, so that successive "miss" runs against one server
-- ask distinct questions too.
local run = os.getenv("RUN") or "0"
local n = 0
local thread_id = 0
local counter = 0

setup = function(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

local actions = {"view", "edit", "view_members", "copy", "run_processing", "download", "export", "archive"}

local function group(id) return string.format('{"uid":{"type":"Group","id":"%s"},"attrs":{},"parents":[]}', id) end

local function slice(user)
  return table.concat({
    string.format('{"uid":{"type":"User","id":"%s"},"attrs":{"email":"%s@example.com"},"parents":[{"type":"Group","id":"p1.editors"},{"type":"Group","id":"acme.members"},{"type":"Group","id":"acme.viewers"}]}', user, user),
    '{"uid":{"type":"Project","id":"p1"},"parents":[],"attrs":{"owner":{"type":"User","id":"olga"},"organization":{"type":"Organization","id":"acme"},"admins":{"type":"Group","id":"p1.admins"},"managers":{"type":"Group","id":"p1.managers"},"editors":{"type":"Group","id":"p1.editors"},"viewers":{"type":"Group","id":"p1.viewers"},"phase":"processing","archived":false,"public":false,"downloads_enabled":true,"editors_can_share":false}}',
    '{"uid":{"type":"Organization","id":"acme"},"parents":[],"attrs":{"admins":{"type":"Group","id":"acme.admins"},"data_owners":{"type":"Group","id":"acme.data_owners"},"editors":{"type":"Group","id":"acme.editors"},"viewers":{"type":"Group","id":"acme.viewers"},"members":{"type":"Group","id":"acme.members"}}}',
    group("p1.admins"), group("p1.managers"), group("p1.editors"), group("p1.viewers"),
    group("acme.admins"), group("acme.members"), group("acme.viewers"),
  }, ",")
end

local function question(user, action)
  return string.format('{"principal":{"type":"User","id":"%s"},"action":{"type":"Action","id":"%s"},"resource":{"type":"Project","id":"p1"}', user, action)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local fixed = question("vera", "edit") .. ',"entities":[' .. slice("vera") .. "]}"

-- Questions by id alone (the sidecar reads the entities from its database): "id" asks for
-- each of USERS users (u0, u1, …, each an editor of p1, entities cached after the first
-- round) each action in turn; "id-full" the same with `"consistency": "full"`, every
-- question read from the database.
local users = tonumber(os.getenv("USERS") or "1000")

request = function()
  if mode == "hit" then
    return wrk.format(nil, "/v1/is_authorized", nil, fixed)
  end
  if mode == "id" or mode == "id-full" then
    n = n + 1
    local body = string.format('{"principal":"User::\\"u%d\\"","action":"%s","resource":"Project::\\"p1\\""',
      (n * 7 + thread_id) % users, actions[(n % #actions) + 1])
    if mode == "id-full" then
      body = body .. ',"consistency":"full"'
    end
    return wrk.format(nil, "/v1/is_authorized", nil, body .. "}")
  end
  n = n + 1
  local user = string.format("u%s-%d-%d", run, thread_id, n)
  if mode == "miss" then
    local body = question(user, actions[(n % #actions) + 1]) .. ',"entities":[' .. slice(user) .. "]}"
    return wrk.format(nil, "/v1/is_authorized", nil, body)
  end
  -- The host's "list items" call: may this user view each of the project's 100 items?
  local entities, questions = {slice(user)}, {}
  local phases = {"planning", "processing", "report_ready"}
  for i = 1, 100 do
    entities[#entities + 1] = string.format('{"uid":{"type":"Item","id":"i%d"},"attrs":{"project":{"type":"Project","id":"p1"},"phase":"%s"},"parents":[]}', i, phases[(i % 3) + 1])
    questions[i] = string.format('{"principal":{"type":"User","id":"%s"},"action":{"type":"Action","id":"view"},"resource":{"type":"Item","id":"i%d"}}', user, i)
  end
  local body = '{"entities":[' .. table.concat(entities, ",") .. '],"requests":[' .. table.concat(questions, ",") .. "]}"
  return wrk.format(nil, "/v1/is_authorized/batch", nil, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
