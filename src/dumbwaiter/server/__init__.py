"""One serving process (a worker): its session layer, its two drivers and its
thread pool.

``session`` (with ``deadlines`` and ``exchange``) decides for every
connection, with no I/O; ``connection`` and ``loop`` serve connections from
the event loop, ``direct`` and ``blocking`` from application threads (the
gateway listeners' connections, by default); ``admission`` and ``pool``
hand requests to the threads;
``worker`` builds the parts, starts and stops them; ``watch`` runs the
once-a-second duties; ``reporting`` writes the access log and metrics.
Nothing here imports the master (:mod:`dumbwaiter.process`).
"""
