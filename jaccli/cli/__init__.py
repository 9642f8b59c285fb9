"""The command line: parse, call the library, write. Nothing else lives here.

``jaccli`` is a click group; each command lives in a module of this package
(``compute``: info and the derivatives; ``confint_check``: confint and check;
``sensitivity``: sensitivity), runs through the one pipeline of ``pipeline``
(load, check the points and outputs, compute in chunks, write whole, summarise),
and is registered here with ``add_command``. NumPy, h5py and rich are imported
inside the commands, so ``--help`` is fast.
"""

import sys

import click

from jaccli.errors import JaccliError
from jaccli.messages import one_line
from jaccli.cli import compute, confint_check, sensitivity

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(click.ClickException):
    exit_code = EXIT_USER_ERROR


class JaccliGroup(click.Group):
    """Turns a JaccliError into one 'Error: ...' line and exit 2, Ctrl-C into 130."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare 'jaccli': the help, as click shows it
                raise
            raise one_line_usage(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise one_line_usage(exc) from None
        except JaccliError as exc:
            if ctx.params.get("debug"):
                import traceback

                traceback.print_exc()  # and still exit 2: --debug adds detail, not a new outcome
            raise UserError(one_line(exc.renamed(option_names(ctx)))) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader of our standard output went away (| head): not an error of ours.
            sys.stderr.close()
            ctx.exit(0)
        finally:
            writers = sys.modules.get("jaccli.io.writers")  # not imported: nothing was written
            if writers is not None:
                writers.remove_unfinished()


def option_names(ctx):
    """{parameter: option} for the command being run, from its own click options
    (``chunk_size`` -> ``--chunk-size``, ``targets`` -> ``--target``): the one place
    the library's parameter names in an error become the command line's options."""
    command = ctx.command.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
    names = {}
    for option in getattr(command, "params", []) + ctx.command.params:
        longs = [flag for flag in option.opts if flag.startswith("--")]
        if isinstance(option, click.Option) and longs:
            names[option.name] = max(longs, key=len)
    return names


def one_line_usage(exc):
    """click's usage error (usage, hint, blank line, error) as one 'Error: ...' line."""
    where = exc.ctx.command_path if exc.ctx is not None else "jaccli"
    return UserError(one_line(f"{exc.format_message()} (see '{where} --help')"))


@click.group(cls=JaccliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jaccli")
@click.option("--debug", is_flag=True, help="Show a traceback for errors too.")
def cli(debug):
    """Exact derivatives of a saved MLP at your points: values, input and
    parameter Jacobians, Hessians, Laplacians.

    \b
    Example:
      jaccli jacobian sample_models/canonical.npz --at 1,1
    """


for _command in compute.COMMANDS + confint_check.COMMANDS + [sensitivity.sensitivity]:
    cli.add_command(_command)


def main():
    cli(prog_name="jaccli")
