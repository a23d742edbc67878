"""The first rough comparison, now a thin wrapper around the harness.

hello through lighttpd FastCGI: dumbwaiter next to flup and the C limit,
interleaved, without touching docs/performance.md:

    python3 bench/hello_lighttpd.py [--rounds 3] [--seconds 10]

Any other bench/run.py option passes through.
"""

from __future__ import annotations

import sys

import run

if __name__ == "__main__":
    sys.exit(
        run.main(
            [
                "--targets=dumbwaiter-lighttpd,flup-fcgi-lighttpd,c-nolinger-lighttpd",
                "--workloads=hello",
                "--no-doc",
                *sys.argv[1:],
            ]
        )
    )
