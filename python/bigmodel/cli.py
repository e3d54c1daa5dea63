"""The `bigmodel` command line."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bigmodel", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="print what bigmodel runs on (ISA, threads, CUDA)")
    args = parser.parse_args(argv)
    if args.cmd == "info":
        import bigmodel
        print(json.dumps(bigmodel.info(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
