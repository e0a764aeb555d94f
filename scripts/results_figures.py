"""Compose the figures docs/results.md shows from a ``privfed compare`` study folder.

The report embeds one image strip per attack; a results page needs the study's answer in two
pictures: the worst-case reconstructions of each arm beside their originals and the null
attack (so a reader sees what "+x dB" looks like), and the membership ROC curves. Like
``reports``, this reads only the attack JSON files and the PNG strips they name; it never
reruns anything, so the figures show exactly what the published tables say.

    python scripts/results_figures.py runs/seed-study --out docs/img/seed-same-arch
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from privfed.errors import PrivfedError  # noqa: E402
from privfed.io import atomic_write_bytes, read_json  # noqa: E402

#: the strips of one position, top to bottom, and how each row is labelled
ROWS = (("originals", "true images"), ("reconstructions", "reconstruction"), ("null", "null attack"))


def _positions(arm: Path, kind: str) -> list[tuple[str, dict]]:
    """(target, position record) of every attack file of this kind, in file order."""
    found = []
    for path in sorted((arm / "attacks").glob(f"{kind}-*.json")):
        data = read_json(path)
        found.append((str(data.get("target", path.stem)), data))
    return found


def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path).convert("RGB")
    except (OSError, ValueError) as exc:
        raise PrivfedError(f"{path}: not a readable PNG ({exc}); rerun the attack that wrote it") from None


def _caption(record: dict) -> str:
    gain, ci = record.get("gain_db"), record.get("gain_db_ci") or [None, None]
    text = f"{record.get('method')} ({record.get('knowledge')})"
    if gain is not None:
        text += f": {gain:+.1f} dB"
        if None not in ci:
            text += f" [{ci[0]:+.1f}, {ci[1]:+.1f}]"
    n, top1 = record.get("n_images") or record.get("n_trials"), record.get("identification_top1")
    if n and top1 is not None:
        text += f", {round(top1 * n)} of {n} ranked first"
    return text


def worst_case_panels(study: Path, arms: list[str], every_client: bool = False) -> list[tuple[str, str, dict]]:
    """(arm, title, record with images) of each arm and target's worst-case headline, or of every attacked client."""
    panels = []
    for arm in arms:
        label = study.resolve().name if arm == "." else arm
        for target, data in _positions(study / arm, "inversion"):
            if every_client:
                records = [row for row in data.get("results") or [] if row.get("position") == "worst-case"
                           and row.get("images") and not row.get("same_as_knowledge")]
                panels += [(arm, f"{label}, {target}, client {row.get('client')} ({row.get('arch')})", row)
                           for row in records]
            else:
                record = (data.get("positions") or {}).get("worst-case")
                if record and record.get("images"):
                    panels.append((arm, f"{label}, {target}", record))
    return panels


def worst_case_figure(study: Path, arms: list[str], every_client: bool = False) -> bytes:
    """One row per panel: originals, the reconstructions, the null attack's guesses."""
    panels = []
    for arm, title, record in worst_case_panels(study, arms, every_client):
        images = record["images"]
        missing = [key for key, _ in ROWS if key not in images]
        if missing:
            raise PrivfedError(f"{study / arm / 'attacks'}: a worst-case row names no {', '.join(missing)} image; "
                               "rerun the attack with this privfed version")
        strips = [_open(study / arm / "attacks" / images[key]) for key, _ in ROWS]
        panels.append((f"{title}: {_caption(record)}", strips))
    if not panels:
        raise PrivfedError(f"{study}: no worst-case inversion with images in {', '.join(arms)}; "
                           "run 'privfed compare' (or 'privfed attack --kind inversion') first")
    width = sum(strip.width for strip in panels[0][1])
    height = max(strip.height for _, strips in panels for strip in strips)
    fig = plt.figure(figsize=(width / 100 + 0.4, len(panels) * (height / 100 + 0.7)))
    for subfig, (title, strips) in zip(fig.subfigures(len(panels), 1, squeeze=False)[:, 0], panels):
        subfig.suptitle(title, fontsize=10, x=0.01, ha="left")
        axes = subfig.subplots(1, len(ROWS), squeeze=False)[0]
        for ax, (_, label), strip in zip(axes, ROWS, strips):
            ax.imshow(strip)
            ax.axis("off")
            ax.set_title(label, fontsize=9)
    return _png(fig)


def roc_figure(study: Path, arms: list[str]) -> bytes:
    """The ROC images of every membership attack file side by side, at their own resolution."""
    strips = []
    for arm in arms:
        for target, _ in _positions(study / arm, "membership"):
            path = study / arm / "attacks" / f"membership-{target}" / "roc.png"
            if path.is_file():
                strips.append((f"{arm}, {target}", _open(path)))
    if not strips:
        raise PrivfedError(f"{study}: no membership ROC (attacks/membership-*/roc.png) in {', '.join(arms)}")
    header = 24
    canvas = Image.new("RGB", (sum(s.width for _, s in strips), header + max(s.height for _, s in strips)), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, strip in strips:
        draw.text((x + 8, 6), title, fill="black")
        canvas.paste(strip, (x, header))
        x += strip.width
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _png(fig) -> bytes:
    """The figure as an RGB PNG (matplotlib writes RGBA; dropping alpha and optimising saves ~10%)."""
    drawn = io.BytesIO()
    fig.savefig(drawn, format="png", dpi=100)
    plt.close(fig)
    buffer = io.BytesIO()
    Image.open(drawn).convert("RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="folder 'privfed compare --out' wrote")
    parser.add_argument("--out", required=True,
                        help="output prefix; writes PREFIX-worst-case.png and, with membership results, PREFIX-roc.png")
    parser.add_argument("--arms", default="fedavg,partial", help="arm folders of the study, comma list ('.': STUDY is one run)")
    parser.add_argument("--every-client", action="store_true",
                        help="one worst-case row per attacked client (e.g. a mixed federation) instead of each headline")
    args = parser.parse_args(argv)
    arms = [arm for arm in args.arms.split(",") if arm]
    try:
        missing = [arm for arm in arms if not (args.study / arm / "attacks").is_dir()]
        if missing:
            raise PrivfedError(f"{args.study}: no attacks/ folder in arm(s) {', '.join(missing)}; check --arms")
        figures = {"worst-case": worst_case_figure(args.study, arms, args.every_client)}
        if any(_positions(args.study / arm, "membership") for arm in arms):
            figures["roc"] = roc_figure(args.study, arms)
    except PrivfedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, png in figures.items():
        atomic_write_bytes(f"{args.out}-{name}.png", png)
        print(f"wrote {args.out}-{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
