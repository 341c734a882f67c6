"""Model weights: SFT and GRPO data and trainers (extra ``[train]``), LoRA adapters converted to GGUF,
and the run around them (one at a time, held-out gate, promotion). Nothing is imported here: the
trainers import torch and friends inside functions, and this package must not undo that."""
