"""Draw a few synthetic frames with their masks (docs/img/synth_frames.png): `python docs/synth_figure.py`.

Generates a small dataset with `yolovis synth`'s defaults into a temporary folder, reads it back through the
YouTube-VIS reader (so the picture also shows that the reader and the generator agree) and overlays each
instance's mask in a colour of its track, with its box and "track id: class".
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from yolovis.data import YTVISDataset  # noqa: E402
from yolovis.data.synth import SynthConfig, generate  # noqa: E402


def main(out: str = "docs/img/synth_frames.png", videos: tuple[int, ...] = (0, 1, 2), frames=(0, 6, 12, 18)) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, SynthConfig(videos=max(videos) + 1))
        ds = YTVISDataset(Path(tmp) / "instances.json", img_size=(256, 320))
        fig, axes = plt.subplots(len(videos), len(frames), figsize=(3.2 * len(frames), 2.6 * len(videos)))
        palette = plt.get_cmap("tab10")
        for r, v in enumerate(videos):
            for c, t in enumerate(frames):
                s = ds[v * 20 + t]
                image = s.image.permute(1, 2, 0).numpy().astype(np.float64) / 255
                for box, label, tid, mask in zip(s.boxes, s.labels, s.instance_ids, s.masks, strict=True):
                    colour = np.array(palette(int(tid) % 10)[:3])
                    m = mask.numpy().astype(bool)
                    image[m] = 0.7 * image[m] + 0.3 * colour  # light tint: the texture stays visible
                    axes[r, c].contour(m, levels=[0.5], colors=[colour], linewidths=1.2)
                    x0, y0, x1, y1 = box.tolist()
                    ax = axes[r, c]
                    ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=colour, lw=0.8, ls="--"))
                    name = ds.categories[int(label)]["name"].split("-")[-1]
                    ax.text(
                        x0,
                        y0 - 2,
                        f"{int(tid)}: {name}",
                        color="white",
                        fontsize=7,
                        bbox={"facecolor": colour, "pad": 1, "lw": 0},
                    )
                axes[r, c].imshow(image)
                axes[r, c].set_title(f"video {s.video_id}, frame {t} ({len(s)} instances)", fontsize=8)
                axes[r, c].axis("off")
        fig.tight_layout()
        fig.savefig(out, dpi=75)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
