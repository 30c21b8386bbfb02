-- Argo CD health check for mlplacement.io/MLPipeline.
-- Install as resource.customizations.health.mlplacement.io_MLPipeline in argocd-cm (see argocd-cm.yaml).
-- Healthy once every stage succeeded or serves (an inference stage's goal is to keep running); a pipeline the
-- operator refuses, a failed stage or a refused one (ArtifactMismatch, a stage edited by hand) is Degraded;
-- stages running or waiting for their data are Progressing.
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

local status = obj.status
local generation = obj.metadata.generation
if status == nil or (generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation)) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local progress = ""
if status.progress ~= nil and status.progress ~= "" then
  progress = " (" .. status.progress .. " stages)"
end

if status.phase == "Refused" then
  hs.status = "Degraded"
  local verified = condition(status, "Verified")
  local ready = condition(status, "Ready")
  local why = verified
  if why == nil or why.status ~= "False" then
    why = ready
  end
  if why ~= nil then
    hs.message = "Refused: " .. tostring(why.reason) .. ": " .. tostring(why.message)
  else
    hs.message = "Refused by the operator"
  end
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = tostring(ready.message) .. progress
  return hs
end

local degraded = condition(status, "Degraded")
if status.phase == "Failed" or (degraded ~= nil and degraded.status == "True") then
  hs.status = "Degraded"
  if degraded ~= nil and degraded.status == "True" then
    hs.message = "stage failed: " .. tostring(degraded.message) .. progress
  else
    hs.message = "Failed" .. progress
  end
  return hs
end

hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = tostring(ready.reason) .. ": " .. ready.message .. progress
else
  hs.message = "Phase " .. tostring(status.phase or "Pending") .. progress
end
return hs
