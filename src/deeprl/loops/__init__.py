"""Training loops: act -> env.step -> store -> update, plus the shared run bookkeeping."""
