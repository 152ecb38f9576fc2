"""The `skuforge` command and the CLI's single error boundary.

Each command group lives in its own module with a `register(app)` function. A user's mistake prints its
message and hint and exits non-zero without a traceback; `SKUFORGE_DEBUG=1` re-raises for a full traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console

from skuforge.errors import SkuforgeError

GROUPS = ("run", "recipes", "models", "trial", "review", "images", "kb", "ask", "eval", "safety", "serve")

app = typer.Typer(
    name="skuforge",
    help="Enrich e-commerce catalogs with generated content: attributes, copy, translations, images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True)


def _register_groups() -> None:
    for name in GROUPS:
        try:
            module = importlib.import_module(f"skuforge.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"skuforge.cli.{name}":
                continue
            raise
        module.register(app)


_register_groups()


def report(exc: SkuforgeError) -> None:
    err.print("[bold red]Error:[/]", end=" ")
    err.print(exc.message, highlight=False, markup=False, soft_wrap=True)
    if exc.hint:
        err.print(exc.hint, highlight=False, markup=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    try:
        result = app(args=argv, standalone_mode=False)
    except SkuforgeError as exc:
        if os.environ.get("SKUFORGE_DEBUG"):
            raise
        report(exc)
        return exc.exit_code
    except NoArgsIsHelpError as exc:
        exc.show()
        return 0
    except ClickException as exc:  # usage errors: unknown option, bad value
        exc.show()
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("Interrupted. Finished items are saved; continue with `skuforge resume JOB`.")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
