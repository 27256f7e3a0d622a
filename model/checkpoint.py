"""Save and load a trained model as safetensors weights plus a JSON config. No pickle anywhere."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file, save_file

from model.config import CONFIG, WEIGHTS, ModelConfig
from model.network import CGMuAlign


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


class ModelMismatchError(ValueError):
    """The saved model was trained on data of another shape than the data it is asked to score."""


def require_compatible(directory: Path, level0_blocks: list[tuple[str, int]], relations: dict[str, int]) -> None:
    """Refuses, before any scoring, a model whose level-0 layout or relation vocabulary differs
    from this run's (features stage's blocks, extract stage's relations.json)."""
    directory = Path(directory)
    meta = json.loads((directory / CONFIG).read_text())
    problems = []
    in_dim = sum(size for _, size in level0_blocks)
    saved_blocks = [int(b) for b in meta["model"].get("level0_blocks") or ()]
    if meta["in_dim"] != in_dim:
        problems.append(f"it takes {meta['in_dim']}-d level-0 features, this run's features are {in_dim}-d "
                        f"({', '.join(f'{n} {d}' for n, d in level0_blocks)})")
    elif saved_blocks and saved_blocks != [d for _, d in level0_blocks]:
        problems.append(f"its level-0 blocks are {saved_blocks}, this run's are {[d for _, d in level0_blocks]}")
    saved = meta.get("extra", {}).get("relations")
    if saved is None:
        if meta["num_relations"] != 2 * len(relations):
            problems.append(f"it knows {meta['num_relations'] // 2} relations, this run has {len(relations)}")
    elif saved != relations:
        only_model = sorted(set(saved) - set(relations))
        only_run = sorted(set(relations) - set(saved))
        what = (f"relations only the model knows: {only_model or 'none'}; only this run has: {only_run or 'none'}"
                if only_model or only_run else "the same relations under other ids")
        problems.append(f"its relation vocabulary differs ({what})")
    if problems:
        raise ModelMismatchError(
            f"the model in {directory} does not fit this run's data: {'; '.join(problems)}. "
            "Retrain on this data (run the train stage), or score with the config and run that trained it")


def load(directory: Path, device: str = "cpu") -> Checkpoint:
    directory = Path(directory)
    if not (directory / CONFIG).is_file() or not (directory / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"no trained model in {directory} (expected {WEIGHTS} and {CONFIG}); run the train stage"
        )
    meta = json.loads((directory / CONFIG).read_text())
    # models saved before the neighbour-match term existed were trained without it
    config = ModelConfig(**{"neighbour_match": False, **meta["model"]})
    model = CGMuAlign(config, meta["in_dim"], meta["num_relations"])
    model.load_state_dict(load_file(str(directory / WEIGHTS), device="cpu"))
    model.to(device).eval()
    return Checkpoint(model, float(meta["threshold"]), meta["version"], meta.get("extra", {}))
