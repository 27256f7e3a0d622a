"""Save and load a trained model as safetensors weights plus a JSON config. No pickle anywhere."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file, save_file

from model.network import CGMuAlign, ModelConfig

WEIGHTS, CONFIG = "weights.safetensors", "config.json"


@dataclass(frozen=True)
class Checkpoint:
    model: CGMuAlign
    threshold: float  # score at or above which a pair is a match, chosen on the valid split
    version: str  # content hash of the weights
    extra: dict


def save(
    model: CGMuAlign, directory: Path, threshold: float, extra: dict | None = None
) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(directory / WEIGHTS))
    version = hashlib.sha256((directory / WEIGHTS).read_bytes()).hexdigest()[:12]
    meta = {
        "model": model.config.to_dict(),
        "in_dim": model.in_dim,
        "num_relations": model.num_relations,
        "threshold": threshold,
        "version": version,
        "extra": extra or {},
    }
    (directory / CONFIG).write_text(json.dumps(meta, indent=2))
    return version


def load(directory: Path, device: str = "cpu") -> Checkpoint:
    directory = Path(directory)
    if not (directory / CONFIG).is_file() or not (directory / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"no trained model in {directory} (expected {WEIGHTS} and {CONFIG}); run the train stage"
        )
    meta = json.loads((directory / CONFIG).read_text())
    model = CGMuAlign(ModelConfig(**meta["model"]), meta["in_dim"], meta["num_relations"])
    model.load_state_dict(load_file(str(directory / WEIGHTS), device="cpu"))
    model.to(device).eval()
    return Checkpoint(model, float(meta["threshold"]), meta["version"], meta.get("extra", {}))
