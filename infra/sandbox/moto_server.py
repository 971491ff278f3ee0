"""``python -m infra.sandbox.moto_server -H 127.0.0.1 -p PORT``: moto's server with the fidelity fixes."""

from __future__ import annotations

import sys

from moto import server

from infra.sandbox import moto_fidelity


def main() -> None:
    moto_fidelity.apply()
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
