-- Argo CD health check for mlplacement.io/PlacementPolicy.
-- Install as resource.customizations.health.mlplacement.io_PlacementPolicy in argocd-cm (see argocd-cm.yaml).
-- A policy the operator cannot verify places nothing: that is Degraded, never Healthy.
local hs = {}

local status = obj.status
local generation = obj.metadata.generation
if status == nil or (generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation)) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to verify generation " .. tostring(generation)
  return hs
end

local verified = nil
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Verified" then
      verified = c
    end
  end
end
if verified == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to verify the signature"
  return hs
end
if verified.status == "True" then
  hs.status = "Healthy"
  hs.message = tostring(verified.message)
  return hs
end
hs.status = "Degraded"
hs.message = tostring(verified.reason) .. ": " .. tostring(verified.message)
return hs
