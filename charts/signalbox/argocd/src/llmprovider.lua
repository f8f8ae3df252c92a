-- The LLMProvider rules (see ../README.md); helpers.lua comes before this in the generated script.
local waiting = not_yet_observed(obj)
if waiting ~= nil then
  hs.status = "Progressing"
  hs.message = waiting
  return hs
end
local status = obj.status

if type(obj.spec) == "table" and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: not probed and out of routing"
  return hs
end

local accepted = find_condition(status.conditions, "Accepted")
if accepted ~= nil and accepted.status == "False" then
  hs.status = "Degraded"
  hs.message = "spec not accepted: " .. explain(accepted)
  return hs
end

local circuit = ""
if type(status.circuit) == "table" and status.circuit.state ~= nil then
  circuit = "circuit " .. text(status.circuit.state)
end

local ready = find_condition(status.conditions, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the Ready condition"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = "ready"
  if text(ready.message) ~= "" then
    hs.message = hs.message .. ": " .. text(ready.message)
  end
  if circuit ~= "" then
    hs.message = hs.message .. " (" .. circuit .. ")"
  end
  return hs
end

if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = explain(ready)
  if circuit ~= "" then
    hs.message = hs.message .. " (" .. circuit .. ")"
  end
  return hs
end

if ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = explain(ready)
  return hs
end

hs.status = "Unknown"
hs.message = "unexpected Ready status: " .. text(ready.status)
return hs
