"""The ``fraud`` command line.

Sub-commands live in their own modules (``fraud/cli/<name>.py``, each exporting ``command``)
and are imported only when used, so ``fraud --help`` stays fast and a command's heavy
dependencies (numba, scikit-learn, boto3) load only where needed.

Exit codes: 0 ok, 1 runtime failure, 2 usage or input error, 130 interrupted.
"""

from __future__ import annotations

import importlib
import sys

import click

from fraud.config import SETTINGS
from fraud.errors import FraudError

__all__ = ["COMMANDS", "ENVIRONMENT", "cli", "main"]

# name -> short help; the module fraud.cli.<module> exports `command`.
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("generate", "Generate synthetic transactions with injected fraud."),
    "features": ("features", "Compute point-in-time features for a transaction file."),
    "train": ("train", "Train a model artifact on labelled history."),
    "replay": ("replay", "Replay a transaction file through the pipeline (backtest)."),
    "rules": ("rules", "Check and test YAML rule files."),
    "tables": ("tables", "Create, describe, delete and seed the DynamoDB tables."),
    "label": ("label", "Apply a label feed (chargebacks, confirmed fraud)."),
    "produce": ("produce", "Put a transaction file onto the Kinesis stream."),
    "consume": ("consume", "Run the KCL consumer (the long-running container's job)."),
    "local": ("local", "Start, stop and inspect the local AWS endpoints."),
    "demo": ("demo", "Run the product end to end on generated data."),
}


def _environment() -> list[tuple[str, str]]:
    rows = []
    for s in SETTINGS:
        default = s.default()
        rows.append((s.env, f"{s.help} [default: {'unset' if default is None else default}]"))
    return [
        *rows,
        ("FRAUD_KCL_JARS", "fraud consume: KCL jar cache [default: .local/kcl-jars]"),
        ("FRAUD_KCL_HANDLER", "fraud consume: batch handler factory (module:callable) "
                              "[default: the fraud pipeline]"),
    ]


ENVIRONMENT: list[tuple[str, str]] = _environment()
"""(variable, what it sets) for every ``FRAUD_*`` variable, as ``fraud --help`` lists them."""


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"fraud.cli.{entry[0]}")
        command = module.command
        if not isinstance(command, click.Command):
            raise TypeError(f"fraud.cli.{entry[0]}.command is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Every variable in one place: a command shows only the flags it takes, and a few
        # settings (the scorer's, the rules reload) reach the consumer only through here.
        with formatter.section("Environment (where a command has the matching flag, "
                               "shown in its --help, the flag wins)"):
            formatter.write_dl(ENVIRONMENT)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fraud")
def cli() -> None:
    """Real-time fraud detection on Kinesis: features, scores, rules, actions.

    Every option that has an environment variable names it in its help (FRAUD_*).
    Exit codes: 0 ok, 1 runtime failure, 2 usage or input error, 130 interrupted.
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fraud`` console script; returns the exit code."""
    try:
        result = cli.main(args=argv, prog_name="fraud", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except FraudError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    return result if isinstance(result, int) else 0
