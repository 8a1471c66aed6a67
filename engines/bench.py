"""Benchmark command (being written): speed and accuracy of every pair vs reference pipelines."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small subset")


def main(args: argparse.Namespace) -> int:
    print("error: the benchmark is not implemented yet", file=sys.stderr)
    return 1
