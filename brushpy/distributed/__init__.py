"""Training past one machine, on Ray (``pip install 'brushpy[distributed]'``), issue 19.

* :mod:`brushpy.distributed.cluster`: the one owner of Ray access (import, connect, checks, shutdown).
* :mod:`brushpy.distributed.batch`: ``brushpy batch``, one Ray task per scene, each an ordinary
  ``brushpy train`` run.
* :mod:`brushpy.distributed.partition` (pure NumPy) and :mod:`brushpy.distributed.partitioned`:
  ``brushpy train --partition RxC``, one large scene split into ground-plane blocks trained as Ray
  tasks and merged.

This layer sits above :mod:`brushpy.train` (it may import it and everything below) and below the
viewer and the command line. Ray itself is imported only inside functions, so importing this
package works without it.
"""
