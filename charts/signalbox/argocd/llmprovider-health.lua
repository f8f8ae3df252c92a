-- Argo CD health check for signalbox.dev/v1alpha1 LLMProvider.
-- Generated from src/helpers.lua and src/llmprovider.lua by hack/update-argocd-health.sh: edit those.
-- Runs in Argo CD's gopher-lua sandbox (Lua 5.1, base and table libraries only: no string or
-- math library), so it sticks to tostring, tonumber, type, ipairs and "..".
local hs = {}

local function text(value)
  if value == nil then
    return ""
  end
  return tostring(value)
end

local function find_condition(conditions, wanted)
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == wanted then
      return c
    end
  end
  return nil
end

local function explain(c)
  local reason = text(c.reason)
  local message = text(c.message)
  if reason == "" then
    return message
  end
  if message == "" then
    return reason
  end
  return reason .. ": " .. message
end

-- Why the operator's verdict is not in yet: no conditions, or status written for an older
-- generation of the object. nil once status speaks of the current generation.
local function not_yet_observed(obj)
  local status = obj.status
  if type(status) ~= "table" or type(status.conditions) ~= "table" or #status.conditions == 0 then
    return "waiting for the operator"
  end
  local generation = nil
  if type(obj.metadata) == "table" then
    generation = tonumber(obj.metadata.generation)
  end
  local observed = tonumber(status.observedGeneration)
  if observed == nil or (generation ~= nil and observed < generation) then
    if generation ~= nil then
      return "waiting for the operator to observe generation " .. text(generation)
    end
    return "waiting for the operator"
  end
  return nil
end

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
