-- Argo CD health check for the inbound.dev kinds (InboundApp, Scope, ClientGrant,
-- ConsentPolicy): every kind reports a metav1.Condition of type Ready in
-- status.conditions. The same script is installed once per kind; keep the copies identical.
-- Written for Argo CD's Lua 5.1 (gopher-lua); also runs unchanged on Lua 5.4.
local hs = {}

local function int(n)
  if type(n) ~= "number" then
    return tostring(n)
  end
  return string.format("%d", n)
end

local generation = nil
if type(obj.metadata) == "table" and type(obj.metadata.generation) == "number" then
  generation = obj.metadata.generation
end

local function waiting()
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "Waiting for the inbound controller to observe generation " .. int(generation)
  else
    hs.message = "Waiting for the inbound controller to report status"
  end
  return hs
end

local status = obj.status
if type(status) ~= "table" then
  return waiting()
end

-- Ready is the verdict; Reconciling=True (kstatus' abnormal-true condition) says the
-- controller is still working on it or waiting on something that may come.
local ready = nil
local reconciling = false
if type(status.conditions) == "table" then
  for _, condition in ipairs(status.conditions) do
    if type(condition) == "table" and condition.type == "Ready" then
      ready = condition
    elseif type(condition) == "table" and condition.type == "Reconciling" and condition.status == "True" then
      reconciling = true
    end
  end
end
if ready == nil then
  return waiting()
end

-- The generation the Ready condition was computed from. When neither the condition nor
-- the status records one, the condition is trusted as current (like kstatus does).
local observed = ready.observedGeneration
if type(observed) ~= "number" then
  observed = status.observedGeneration
end
if generation ~= nil and type(observed) == "number" and observed < generation then
  waiting()
  hs.message = hs.message .. " (Ready reflects generation " .. int(observed) .. ")"
  return hs
end

local reason = ready.reason
if type(reason) ~= "string" then
  reason = ""
end
local message = ready.message
if type(message) ~= "string" then
  message = ""
end

if ready.status == "True" then
  hs.status = "Healthy"
  if message ~= "" then
    hs.message = message
  else
    hs.message = reason
  end
elseif ready.status == "False" then
  if reconciling then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  if reason ~= "" and message ~= "" then
    hs.message = reason .. ": " .. message
  elseif message ~= "" then
    hs.message = message
  else
    hs.message = reason
  end
else
  -- Unknown (or anything else): the controller has not decided yet.
  hs.status = "Progressing"
  if message ~= "" then
    hs.message = message
  elseif reason ~= "" then
    hs.message = reason
  else
    hs.message = "Ready condition is " .. tostring(ready.status)
  end
end
return hs
