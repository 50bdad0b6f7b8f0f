"""One training loop (:mod:`clbench.train.loop`); method families plug in as configuration (:mod:`clbench.train.methods`)."""
