-- Argo CD health check for mlplacement.io/MLWorkload.
-- Install as resource.customizations.health.mlplacement.io_MLWorkload in argocd-cm (see argocd-cm.yaml).
-- The operator writes status only, so Argo CD reads everything it needs from status and metadata.generation.
local hs = {}

local function condition(status, type)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function message(status, fallback)
  local ready = condition(status, "Ready")
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    return ready.message
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to see this workload"
  return hs
end

-- A status from an older spec says nothing about the spec in git: wait for the operator to catch up.
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if status.phase == "Refused" then
  hs.status = "Degraded"
  local verified = condition(status, "Verified")
  if verified ~= nil and verified.status == "False" then
    hs.message = "Refused: " .. tostring(verified.reason) .. ": " .. tostring(verified.message)
  else
    hs.message = message(status, "Refused by the operator")
  end
  return hs
end

if status.phase == "Failed" then
  hs.status = "Degraded"
  local finished = condition(status, "Finished")
  hs.message = (finished ~= nil and finished.message) or message(status, "Workload failed")
  return hs
end

-- A finished training or batch run is the desired end state, not an outage.
if status.phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Finished successfully"
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message(status, "Ready")
  return hs
end

-- Waiting forever is not progress: work no target can take, what runs where the rules no longer allow it,
-- and a degraded placement are Degraded, with the operator's words.
local placed = condition(status, "Placed")
if placed ~= nil and placed.status == "False" and placed.reason == "NoFeasibleTarget" then
  hs.status = "Degraded"
  hs.message = "NoFeasibleTarget: " .. tostring(placed.message)
  return hs
end
local compliant = condition(status, "Compliant")
if compliant ~= nil and compliant.status == "False" then
  hs.status = "Degraded"
  hs.message = tostring(compliant.reason) .. ": " .. tostring(compliant.message)
  return hs
end
local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = tostring(degraded.reason) .. ": " .. tostring(degraded.message)
  return hs
end

hs.status = "Progressing"
if placed ~= nil and placed.status == "False" and placed.message ~= nil then
  hs.message = tostring(placed.reason) .. ": " .. placed.message
else
  hs.message = message(status, "Phase " .. tostring(status.phase or "Pending"))
end
return hs
