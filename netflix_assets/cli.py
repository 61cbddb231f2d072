"""``netflix-lambda``: one command-line entry point whose subcommands live beside what they drive.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args, settings) -> int``; they are
imported lazily so ``netflix-lambda generate`` does not pay for importing Spark or Dagster.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from netflix_assets.settings import get_settings

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("netflix_assets.datagen.cli", "write the six Kaggle-shaped CSVs into the bucket's raw/"),
    "up": ("netflix_assets.launcher", "run the whole pipeline on the embedded default and serve the UI"),
    "broker": ("netflix_assets.broker_cli", "run the embedded Tansu broker (foreground supervisor, RSS cap)"),
    "produce": ("producer.cli", "publish watch events to the event topic (synthetic or replay, with faults)"),
    "stream": ("streaming.job", "run the speed layer's streaming query (Kafka → speed/ → realtime tables)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netflix-lambda", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        sub_parser.set_defaults(_module=module_name)
        if name in (sys.argv[1:2] if argv is None else argv[:1]):
            importlib.import_module(module_name).add_arguments(sub_parser)
    args = parser.parse_args(argv)
    return int(importlib.import_module(args._module).run(args, get_settings()) or 0)


if __name__ == "__main__":
    sys.exit(main())
