"""One short GPU run (an H200-class card): the engine against the hand-written loop on CUDA, bf16
autocast on and off, and packed against one-at-a-time jobs per minute.

    .venv/bin/python bench/gpu.py                       # on the GPU machine (device cuda)
    .venv/bin/python bench/gpu.py --device cpu --quick  # the smoke test anywhere

Same method as bench/engine.py (its loops, A/B interleaved, median of the repetitions, min-max of
the per-repetition ratios). The engine has no autocast option yet, so bf16 is measured on the hand
loop (with / without): the headroom an opt-in engine option would have. Packed sweeps do not exist
in the engine yet: that row says so instead of a figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine as bench  # noqa: E402  (bench/engine.py)
import torch  # noqa: E402

CONFIGS = {  # label -> request changes on bench/engine.py's headline job
    "digits 64-512-512-10, batch 64": {},
    "digits 64-2048-2048-10, batch 256": {"architecture": {"hidden_layers": [2048, 2048]}, "batch_size": 256},
}
SMOKE = {"digits, 300 rows, 64-64-10 (CPU smoke test)": {"dataset": {"name": "digits", "train_samples": 300},
                                                       "architecture": {"hidden_layers": [64]}}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"bench/gpu.py: CUDA is not available here (torch {torch.__version__}, "
              f"built with CUDA {torch.version.cuda}): nothing measured. "
              "Run it on the GPU machine, or with --device cpu --quick as a smoke test.")
        return 2
    if device.type == "cpu":
        print("bench/gpu.py: no CUDA device asked for: a CPU smoke test of the script, not a GPU figure.")
    else:
        print(f"bench/gpu.py: {torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}")
    epochs = args.epochs or (2 if args.quick else 20)
    repeats = args.repeats or (2 if args.quick else 5)
    print(f"{bench.machine(device)}; {epochs} epochs, {repeats} repetitions, A/B interleaved\n")
    rows = []
    configs = CONFIGS if device.type == "cuda" else SMOKE
    for label, changes in configs.items():
        config, data = bench.device_data(bench.request(epochs, **changes), device)
        engine, hand = bench.interleaved(lambda: bench.engine_s(config, data), lambda: bench.hand_s(config, data),
                                         repeats)
        rows.append(bench.figure(f"{label}: engine / hand loop", engine, hand, "<= 1.0", "<= 0.8"))
        bf16, fp32 = bench.interleaved(lambda: bench.hand_s(config, data, autocast=torch.bfloat16),
                                       lambda: bench.hand_s(config, data), repeats)
        rows.append(bench.figure(f"{label}: hand loop, bf16 autocast / fp32", bf16, fp32, "-", "-"))
    bench.print_table(rows, "A", "B")
    print("\npacked against one-at-a-time jobs per minute: not yet (the engine has no packed sweeps yet)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
