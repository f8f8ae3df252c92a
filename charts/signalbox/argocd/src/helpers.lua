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
