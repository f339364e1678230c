#!/usr/bin/env python3
"""Independent reference for ROAST's extraction, in torch + transformers (run by hand, never in CI).

Reads a pairs file (`roast extract --save-pairs`) and the model, runs every question's distinct
responses teacher forced (prompt + response, one sequence at a time, float32), and hooks
`mlp.act_fn` (the `act` site: SiLU of the gate) and each decoder layer's output (the `residual`
site). At the last response token it computes Δ = a(positive) − a(negative) per pair, the
weighted plain mean (CAA), grouped mean normalisation (per question weighted mean, unit L2 norm,
averaged over questions) and each CSS mode of the grouped mean. Writes one JSON fixture that
Tests/SteeringTests/ReferenceTests.swift compares the engine with.

  python tools/reference/reference.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --pairs pairs.jsonl --layers 2,20 --out Tests/Fixtures/reference/smollm2-pairs.json

--model is a Hugging Face folder or a .gguf file, which transformers dequantises (gguf-py) to
float32 weights exactly.
"""
import argparse
import json
import math
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def load(model):
    if model.endswith(".gguf"):
        folder, name = os.path.split(os.path.abspath(model))
        m = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    else:
        m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    return m.eval()


def capture(m, ids, layers):
    """The act and residual activations at the last token of `ids`, per layer (float64)."""
    got = {"act": {}, "residual": {}}
    hooks = []
    for l in layers:
        layer = m.model.layers[l]
        hooks.append(layer.mlp.act_fn.register_forward_hook(
            lambda mod, inp, out, l=l: got["act"].__setitem__(l, out[0, -1].double().numpy())))
        hooks.append(layer.register_forward_hook(
            lambda mod, inp, out, l=l: got["residual"].__setitem__(l, (out[0] if isinstance(out, tuple) else out)[0, -1].double().numpy())))
    with torch.no_grad():
        m(torch.tensor([ids]))
    for h in hooks:
        h.remove()
    return got


def weighted_mean(deltas, weights):
    return sum(w * d for d, w in zip(deltas, weights)) / sum(weights)


def grouped(deltas, weights, questions):
    means = []
    for q in sorted(set(questions)):
        idx = [i for i, x in enumerate(questions) if x == q]
        m = weighted_mean([deltas[i] for i in idx], [weights[i] for i in idx])
        n = np.linalg.norm(m)
        if n > 0:
            means.append(m / n)
    return sum(means) / len(means)


def css(mu, mode, k):
    a = np.abs(mu)
    if mode == "max":
        return mu / a.max()
    if mode == "l2":
        return mu / np.linalg.norm(mu)
    if mode == "softmax":
        e = np.exp(a - a.max())
        return len(mu) * e / e.sum() * np.sign(mu)
    if mode == "topk":
        keep = np.argsort(-a, kind="stable")[:k]
        mask = np.zeros_like(mu)
        mask[keep] = 1
        return mask * mu / a.max()
    raise ValueError(mode)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--pairs", required=True)
    p.add_argument("--layers", required=True, help="comma-separated, e.g. 2,20")
    p.add_argument("--top-k", type=float, default=0.05, help="K of the topk mode as a fraction of the width")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    layers = [int(x) for x in a.layers.split(",")]
    records = [json.loads(line) for line in open(a.pairs) if line.strip()]
    m = load(a.model)

    # Each (question, candidate) once: its last-token activations at every layer and site.
    acts = {}
    for r in records:
        for side in ("positive", "negative"):
            key = (r["question"], r[side]["candidate"])
            if key not in acts:
                acts[key] = capture(m, r["prompt"] + r[side]["ids"], layers)

    out = {"model": os.path.basename(a.model), "pairs": records, "top_k_fraction": a.top_k, "layers": layers,
           "torch": torch.__version__, "activations": [], "vectors": {}}
    for (q, c), got in acts.items():
        out["activations"].append({"question": q, "candidate": c, "act": {str(l): got["act"][l].tolist() for l in layers},
                                   "residual": {str(l): got["residual"][l].tolist() for l in layers}})
    weights = [r["weight"] for r in records]
    questions = [r["question"] for r in records]
    for site in ("act", "residual"):
        out["vectors"][site] = {}
        for l in layers:
            deltas = [acts[(r["question"], r["positive"]["candidate"])][site][l] - acts[(r["question"], r["negative"]["candidate"])][site][l]
                      for r in records]
            mu = grouped(deltas, weights, questions)
            k = max(1, int(len(mu) * a.top_k))
            out["vectors"][site][str(l)] = {
                "plain": weighted_mean(deltas, weights).tolist(),
                "grouped": mu.tolist(),
                "css": {mode: css(mu, mode, k).tolist() for mode in ("max", "l2", "softmax", "topk")},
            }

    def rounded(x):  # 7 significant digits: far below the 1e-3 the test allows, a smaller file
        if isinstance(x, float):
            return float(f"{x:.7g}") if math.isfinite(x) else x
        if isinstance(x, list):
            return [rounded(v) for v in x]
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return x
    tmp = a.out + ".part"
    with open(tmp, "w") as f:
        json.dump(rounded(out), f, separators=(",", ":"))
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {len(records)} pairs, {len(acts)} responses, layers {layers}")


if __name__ == "__main__":
    main()
