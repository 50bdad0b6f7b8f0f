"""One training loop (:mod:`clbench.train.loop`); the models it trains are the method families of
:mod:`clbench.models.methods`, built from the objective registry (:mod:`clbench.objectives`)."""
