"""The committed demo models: where their weights and cards live, and publishing them after training."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, cast

from demo.train import RECIPES, Recipe

MODELS_DIR = Path(__file__).parent / "models"
EXAMPLE_COUNT = 4  # example images each shapes model ships (`trident export --examples`)


def weights(recipe: Recipe) -> Path:
    return MODELS_DIR / f"{recipe.name}.pt"


def available() -> list[Recipe]:
    """The recipes whose trained weights are committed, in catalogue order."""
    return [r for r in RECIPES.values() if weights(r).exists()]


def write_examples(recipe: Recipe, folder: Path) -> Path | None:
    """Write the first `EXAMPLE_COUNT` scenes of the recipe's held-out test split (never trained on)
    into `folder` as JPEGs, for the Test tab's examples; None for the examples detector, whose
    examples are the two images it was fitted to (the Test tab's default `bus.jpg` and `zidane.jpg`)."""
    from demo.dense import MAP_TASKS
    from demo.dense import scene as map_scene
    from demo.generate import TASKS, save_image, scene

    if recipe.name.startswith("examples"):
        return None
    for index in range(EXAMPLE_COUNT):
        if recipe.task in MAP_TASKS:
            image = map_scene(recipe.task, "test", index)[0]
        else:
            assert recipe.task in TASKS
            image = scene(recipe.task, "test", index)[0]
        save_image(folder / f"{recipe.task}-{index}.jpg", image)
    return folder


def publish(recipe: Recipe, best: Path) -> Path:
    """Copy a finished run's best weights into the repository with a card saying how they were made."""
    run = best.parent.parent
    stages = [run.parent / recipe.name, run] if run.name != recipe.name else [run]
    epochs = [len(list(csv.DictReader((s / "results.csv").open()))) for s in stages]
    seconds = sum(json.loads((s / "done.json").read_text())["train_seconds"] for s in stages)
    rows = list(csv.DictReader((run / "results.csv").open()))
    last = {k.strip(): v.strip() for k, v in rows[-1].items()}
    metrics = {k: float(v) for k, v in last.items() if k.startswith("metrics/")}
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    _without_local_paths(best, weights(recipe))
    extra = {k: _relative(v) for k, v in recipe.extra}
    start = (
        f"its matching layers started from `{extra['pretrained']}` (the project's own model)"
        if "pretrained" in extra
        else "trained from scratch (no pretrained weights)"
    )
    lines = [
        f"# {recipe.name}",
        "",
        f"Served as `{recipe.slug}`. Task: {recipe.task}. Architecture: Ultralytics"
        f" `{recipe.yaml_name}` at scale `{recipe.scale}`, {start}, trained on the CPU.",
        "",
        f"- Data: {_data_line(recipe)}",
        f"- Command: `trident demo train {recipe.name}` (seeded; resumes an interrupted run)",
        f"- Image size {recipe.imgsz}, {epochs[0]} epochs, batch {extra.get('batch', 16)}, seed 0,"
        f" extra arguments: {extra or 'none'}",
        *(
            [f"- Then {epochs[1]} epochs from those weights with {dict(recipe.finetune)}"]
            if len(epochs) > 1
            else []
        ),
        f"- Training time on the 2-core CI machine (shared with other work): {seconds / 60:.0f} min",
        "- Ultralytics' validation after the last epoch: "
        + ", ".join(f"{k.removeprefix('metrics/')} {v:.3f}" for k, v in metrics.items()),
        "",
        "Accuracy on the held-out test split through Trident's REST API: `trident demo evaluate`"
        " (see `demo/README.md`).",
        "",
    ]
    weights(recipe).with_suffix(".md").write_text("\n".join(lines))
    return weights(recipe)


def _without_local_paths(source: Path, target: Path) -> None:
    """Copy a checkpoint with this machine's absolute paths (run folders, YAMLs, git root) made relative:
    they mean nothing elsewhere and would leak where it was trained."""
    import torch

    prefix = f"{Path.cwd().resolve()}/"

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(prefix, "")
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    checkpoint = torch.load(source, map_location="cpu", weights_only=False)
    checkpoint["train_args"] = clean(checkpoint.get("train_args", {}))
    checkpoint.pop("git", None)
    for key in ("model", "ema"):
        model = checkpoint.get(key)
        if model is not None:
            model.args = clean(getattr(model, "args", {}))
            model.yaml = clean(getattr(model, "yaml", {}))
            if isinstance(getattr(model, "pt_path", None), str):  # set when a stage starts from weights
                model.pt_path = clean(model.pt_path)
    torch.save(checkpoint, target)


def _relative(value: Any) -> Any:
    """A path argument as the repository sees it: this machine's checkout folder means nothing elsewhere."""
    prefix = f"{Path.cwd().resolve()}/"
    return value.removeprefix(prefix) if isinstance(value, str) else value


def _data_line(recipe: Recipe) -> str:
    if recipe.name.startswith("examples"):
        return (
            "`bus.jpg` and `zidane.jpg` from the ultralytics wheel, labelled by hand in `demo/examples.py`"
            " (person, bus, tie; COCO ids), repeated with Ultralytics' augmentation, pasted on generated"
            " backgrounds, plus empty backgrounds. A demo fitted to these two images, not a general detector."
        )
    from demo.generate import CLASSIFY_SPLITS, SIZES, SPLITS, Task

    if recipe.task in ("semantic", "depth"):
        from demo.dense import MAP_SIZE, MAP_SPLITS

        counts = " / ".join(f"{name} {count}" for name, (_seed, count) in MAP_SPLITS.items())
        return (
            f"`demo/dense.py` scenes, task `{recipe.task}`, {MAP_SIZE} px images, seeded splits {counts}"
            " (test never trained)"
        )
    splits = CLASSIFY_SPLITS if recipe.task == "classify" else SPLITS
    counts = " / ".join(f"{name} {count}" for name, (_seed, count) in splits.items())
    size = SIZES[cast(Task, recipe.task)]
    return (
        f"`demo/generate.py` shapes, task `{recipe.task}`, {size} px images, seeded splits"
        f" {counts} (test never trained)"
    )
