"""Agent class for Agent Lightning's local runner: each rollout runs `tongyi-cli rollout`.

`agl-controller runner_type=local` imports `agentlightning.local.agent_class` in its own Python (3.12,
where tongyi-agent need not be installed) and calls `.run()` with the rollout's variables
(AGL_OPENAI_BASE_URL, AGL_EVENT_URL, AGL_KEY and those of `local.env_map`) in the environment. This file
needs only the standard library: put its folder on the controller's PYTHONPATH and name
`tongyi_rollout:TongyiRollout` as the agent class. The subprocess inherits that environment.

Variables read here (set them where you start agl-controller):
  TONGYI_CLI            path of tongyi-cli (default: the one on PATH)
  TONGYI_ROLLOUT_ARGS   extra arguments, e.g. "--root /data/corpus --offline --train"
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess


class TongyiRollout:
    def run(self) -> None:
        cli = os.environ.get("TONGYI_CLI") or shutil.which("tongyi-cli")
        if not cli:
            raise RuntimeError("tongyi-cli not found: set TONGYI_CLI to its path when starting agl-controller")
        args = shlex.split(os.environ.get("TONGYI_ROLLOUT_ARGS", ""))
        code = subprocess.run([cli, "rollout", *args], check=False).returncode
        if code != 0:
            # SystemExit passes the runner's `except Exception`, so the worker exits with this code and
            # the controller marks the rollout failed.
            raise SystemExit(code)
