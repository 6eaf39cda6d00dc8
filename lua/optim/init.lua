-- optim: optimizers in the Torch7 protocol, learning-rate schedules, a TSV logger and a
-- confusion matrix. `local optim = require('optim')`; nothing is made global.
--
--   local x, fx = optim.sgd(feval, params, config, state)
--
-- feval(x) returns f(x) and df/dx (a tensor shaped like x, usually the flat gradient from
-- getParameters()). config holds the hyper-parameters and may change between calls (a schedule
-- sets config.learningRate each step); state holds the buffers and the step count as plain
-- tensors and numbers, so it can be saved in a checkpoint with nd.save and restored to resume.
-- When state is omitted, config doubles as the state (Torch7).
-- The optimizers know nothing of nn.
local optim = {
  sgd = require('optim.sgd'),
  adam = require('optim.adam'),
  rmsprop = require('optim.rmsprop'),
  schedule = require('optim.schedule'),
  Logger = require('optim.Logger'),
  ConfusionMatrix = require('optim.ConfusionMatrix'),
}
return optim
