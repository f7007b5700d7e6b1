"""Training past one machine, on Ray (``pip install 'brushpy[distributed]'``).

* :mod:`brushpy.distributed.cluster`: the one owner of Ray access (import, connect, checks, shutdown).
* :mod:`brushpy.distributed.batch`: ``brushpy batch``, one Ray task per scene, each an ordinary
  ``brushpy train`` run.

This layer sits above :mod:`brushpy.train` (it may import it and everything below) and below the
viewer and the command line. Ray itself is imported only inside functions, so importing this
package works without it.
"""
