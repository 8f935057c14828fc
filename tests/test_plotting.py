"""Figures: what a student sees must fit where it is drawn."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from course_lib import plotting  # noqa: E402


def test_lifecycle_text_stays_inside_its_boxes():
    ax = plotting.plot_lifecycle()
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [p.get_window_extent(renderer) for p in ax.patches]
    texts = [t for t in ax.texts if t.get_text() and t.get_text() != "iterate"]
    assert len(boxes) == len(plotting.LIFECYCLE_STAGES) and len(texts) == 2 * len(boxes)
    for t in texts:
        extent = t.get_window_extent(renderer)
        box = next(b for b in boxes if b.x0 <= (extent.x0 + extent.x1) / 2 <= b.x1)
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1, f"{t.get_text()!r} overflows its box"
        assert box.y0 <= extent.y0 and extent.y1 <= box.y1, f"{t.get_text()!r} overflows its box"
    plt.close(fig)
