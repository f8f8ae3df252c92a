-- The RoutingPolicy rules (see ../README.md); helpers.lua comes before this in the generated script.
local waiting = not_yet_observed(obj)
if waiting ~= nil then
  hs.status = "Progressing"
  hs.message = waiting
  return hs
end
local status = obj.status

local accepted = find_condition(status.conditions, "Accepted")
if accepted ~= nil and accepted.status == "False" then
  hs.status = "Degraded"
  hs.message = "spec not accepted: " .. explain(accepted)
  return hs
end

-- "2/3 eligible, active openai-primary", or "" when the operator wrote neither field.
local routing = ""
if status.eligible ~= nil then
  routing = text(status.eligible) .. " eligible"
end
if status.activeProvider ~= nil and text(status.activeProvider) ~= "" then
  if routing ~= "" then
    routing = routing .. ", "
  end
  routing = routing .. "active " .. text(status.activeProvider)
end

local function with_routing(message)
  if routing == "" then
    return message
  end
  if message == "" then
    return routing
  end
  return message .. " (" .. routing .. ")"
end

local ready = find_condition(status.conditions, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the Ready condition"
  return hs
end

if ready.status == "True" then
  local degraded = find_condition(status.conditions, "Degraded")
  hs.status = "Healthy"
  if degraded ~= nil and degraded.status == "True" then
    local why = text(degraded.message)
    if why == "" then
      why = text(degraded.reason)
    end
    hs.message = with_routing("failing over: " .. why)
  else
    hs.message = with_routing("ready")
  end
  return hs
end

if ready.status == "False" then
  local why = explain(ready)
  local refs = find_condition(status.conditions, "ResolvedRefs")
  if refs ~= nil and refs.status == "False" then
    why = why .. "; " .. explain(refs)
  end
  hs.status = "Degraded"
  hs.message = with_routing(why)
  return hs
end

if ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = with_routing(explain(ready))
  return hs
end

hs.status = "Unknown"
hs.message = "unexpected Ready status: " .. text(ready.status)
return hs
