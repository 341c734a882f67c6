"""`tongyi-cli trust [DIR]`: let a folder's own config choose endpoints, keys, storage and code.

Also the one line every command prints when it ignored such settings of an untrusted folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tongyi_agent.cli.console import fail, out

if TYPE_CHECKING:
    from rich.console import Console

    from tongyi_agent.config.trust import Ignored, RootTrust

# The config layer (pydantic) is imported when a command runs, so registering `trust` costs `--help`
# nothing (tests/cli/test_fast_start.py).

EPILOG = ("A folder you research may hold a models.ini, .env or training_config.ini written by someone else. "
          "Until you trust it, those files cannot set base_url, base_url_env, api_key_env, model_id_env or "
          "lora in a profile, any .env variable except TONGYI_MODEL, TONGYI_MAX_STEPS, TONGYI_TIMEOUT, "
          "TONGYI_MAX_TOKENS, TONGYI_TRAINING_MODE, TONGYI_OFFLINE and TONGYI_PAPER_SERVICES, nor "
          "[training] enabled, training_data_path, reward_function or the [optimization_schedule] triggers.")


def trust_command(
    folder: Annotated[Path, typer.Argument(help="The folder to trust (default: .).")] = Path("."),
    list_: Annotated[bool, typer.Option("--list", help="List the trusted folders and whether each still matches.")]
    = False,
    revoke: Annotated[bool, typer.Option("--revoke", help="Stop trusting the folder.")] = False,
) -> None:
    """Trust a folder: its models.ini, .env and training_config.ini may then choose model endpoints,
    API key variables, where runs are stored and which reward code runs.

    Trust records the folder's real path and a sha256 of each of those three files in the user config
    directory. Editing, adding or removing one of them withdraws the trust until you run this again.
    For a single run, pass --trust-root instead.
    """
    from tongyi_agent.config import ConfigError, user_config_dir
    from tongyi_agent.config.settings import resolve_root
    from tongyi_agent.config.trust import GUARDED_FILES, revoke_folder, trust_folder, trusted_folders

    config_dir = user_config_dir()
    try:
        if list_:
            rows = trusted_folders(config_dir)
            for path, when, valid in rows:
                out.print(f"{path}  trusted {when}{'' if valid else '  (changed since: not trusted now)'}",
                          markup=False)
            if not rows:
                out.print("No trusted folders.")
            return
        if revoke:
            if not revoke_folder(folder, config_dir):
                raise fail(f"{folder} was not trusted")
            out.print(f"No longer trusted: {folder.expanduser().resolve()}", markup=False)
            return
        real, files = trust_folder(resolve_root(folder), config_dir)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    present = [name for name in GUARDED_FILES if files[name] is not None]
    what = ", ".join(f"{name} (sha256 {files[name][:12]})" for name in present) or "no config files yet"  # type: ignore[index]
    out.print(f"Trusted {real}: {what}. A change to {', '.join(GUARDED_FILES)} there needs trusting again.",
              markup=False)


def warn_ignored(console: Console, trust: RootTrust | None, *groups: Iterable[Ignored]) -> None:
    """Print the one line naming what an untrusted root tried to set, if anything."""
    if trust is None:
        return
    from tongyi_agent.config.trust import ignored_note

    note = ignored_note(trust, [item for group in groups for item in group])
    if note:
        console.print(f"Note: {note}", style="yellow", markup=False)
