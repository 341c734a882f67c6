"""GRPO on tongyi-agent rollouts: Agent Lightning 1.0's verl trainer, fed from two task files.

Run it with the Python that has agentlightning, verl, vLLM and Ray (GPU nodes); the command line is
Hydra overrides of agentlightning's verl config (see docs/agent_lightning.md), e.g.

    python train_grpo.py data.train_files=tasks/train.jsonl data.val_files=tasks/val.jsonl \
        actor_rollout_ref.model.path=Qwen/Qwen2.5-7B-Instruct actor_rollout_ref.rollout.name=vllm ...

Each task becomes one rollout's `input`; `tongyi-cli rollout` reads it from $TONGYI_TASK.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra

# verl's in-memory dataset takes its columns from the first row, so every row carries all of them.
FIELDS = ("id", "question", "answer", "answer_regex", "root", "sources")


def load_rows(path: str) -> list[dict[str, Any]]:
    """The tasks of a task file (JSONL: question, answer or answer_regex, root, sources, id) as rows
    with the same keys; a relative `root` is resolved by `tongyi-cli rollout` against its --root."""
    rows = []
    for line in Path(path).expanduser().read_text(encoding="utf-8").splitlines():
        if line.strip():
            task = json.loads(line)
            row = {key: task.get(key) for key in FIELDS}
            row["answer"] = None if row["answer"] is None else str(row["answer"])
            row["sources"] = [str(s) for s in task.get("sources") or []]
            rows.append(row)
    return rows


@hydra.main(version_base=None, config_path="pkg://agentlightning.verl", config_name="config")
def main(config: Any) -> None:
    from agentlightning.verl.entrypoint import run_ppo  # needs verl, Ray and torch

    run_ppo(config, load_rows(config.data.train_files), load_rows(config.data.val_files))


if __name__ == "__main__":
    main()
