-- wrk script: posts `/v1/plan` questions ("which projects may she …?") for a user in three
-- groups. MODE (environment): "hit" repeats one question; "miss" asks for a new user each
-- time (nothing cached). The action cycles through the list actions a host asks most.
local mode = os.getenv("MODE") or "miss"
local run = os.getenv("RUN") or "0"
local n = 0
local actions = {"view", "edit", "download", "view_members", "copy", "delete"}

request = function()
  n = n + 1
  local user = "u"
  local action = "view"
  if mode == "miss" then
    user = string.format("u-%s-%d", run, n)
    action = actions[(n % #actions) + 1]
  end
  local body = string.format('{"principal":{"type":"User","id":"%s"},"action":{"type":"Action","id":"%s"},"resource_type":"Project","entities":[{"uid":{"type":"User","id":"%s"},"attrs":{},"parents":[{"type":"Group","id":"p1.editors"},{"type":"Group","id":"acme.members"},{"type":"Group","id":"acme.viewers"}]}]}', user, action, user)
  return wrk.format("POST", "/v1/plan", {["content-type"] = "application/json"}, body)
end
