"""``netflix-lambda``: one command-line entry point, one module of ``cli/`` per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args, settings) -> int``; only the one
asked for is imported, so ``netflix-lambda generate`` does not pay for importing Spark (pyspark.sql: about
0.2 s) or the Kafka client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from pydantic import ValidationError

from core.settings import InvalidSettings, get_settings

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("cli.generate", "write the six Kaggle-shaped CSVs into the bucket's raw/"),
    "up": ("cli.launcher", "run the whole pipeline on the embedded default and serve the UI"),
    "broker": ("cli.broker", "run the embedded Tansu broker (foreground supervisor, RSS cap)"),
    "produce": ("cli.produce", "publish watch events to the event topic (synthetic or replay, with faults)"),
    "stream": ("cli.stream", "run the speed layer's streaming query (Kafka → speed/ → realtime tables)"),
    "dbt": ("cli.dbt", "run dbt by hand with this deployment's --vars, target and folders"),
    "dashboards": ("cli.dashboards", "serve the real-time and historical dashboards on 127.0.0.1"),
    "spark-classes": ("cli.spark_classes", "write the Spark driver's class archive (faster Spark starts)"),
    "monitor": ("cli.monitor", "run the SLO monitor: sample the SLIs, page, resolve (docs/slos.md)"),
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
    try:
        settings = get_settings()
    except InvalidSettings as exc:  # one message naming every variable to fix, not a traceback
        print(f"netflix-lambda: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a wrong or missing NETFLIX_* setting: say which, no traceback
        problems = "; ".join(_problem(error) for error in exc.errors())
        print(f"netflix-lambda: the settings are invalid: {problems}", file=sys.stderr)
        return 2
    return int(importlib.import_module(args._module).run(args, settings) or 0)


def _problem(error: Any) -> str:
    field = f"NETFLIX_{str(error['loc'][0]).upper()}: " if error["loc"] else ""
    return field + str(error["msg"]).removeprefix("Value error, ")


if __name__ == "__main__":
    sys.exit(main())
