-- Helpers shared by the health scripts. Argo CD scripts cannot import, so
-- hack/update-argocd-health.sh pastes this file into each generated script.
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
