"""Work past one machine on Ray (issue 19): a cluster connection (:mod:`.cluster`) and
partitioned training of one large scene (:mod:`.partition`, :mod:`.blocks`).

Ray is optional (``pip install 'brushpy[distributed]'``); :mod:`.partition` is pure NumPy and
imports without it.
"""
