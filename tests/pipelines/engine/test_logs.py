"""The kimg progress bar: it stops at the total when the last batch passes it."""

import io
import warnings

from pipelines.engine.logs import KimgProgress


def _final_line(text: str) -> str:
    return text.replace("\n", "\r").strip("\r").split("\r")[-1]


def test_progress_past_the_total_shows_the_total_without_a_warning():
    # `--kimg 0.01` with batch 8: steps end at 8 and 16 images, 160% of the total before the clamp.
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        progress = KimgProgress(total_kimg=0.01, start_kimg=0.0, enabled=True, file=out)
        progress.update(0.008)
        progress.update(0.016, **{"G/loss": 0.5})
        progress.close()
    final = _final_line(out.getvalue())
    assert final.startswith("100%"), final
    assert "0.01/0.01 kimg" in final, final
    assert "G/loss=0.5" in final, final


def test_progress_below_the_total_is_shown_as_is():
    out = io.StringIO()
    progress = KimgProgress(total_kimg=2.0, start_kimg=0.5, enabled=True, file=out)
    progress.update(1.5)
    progress.close()
    final = _final_line(out.getvalue())
    assert final.startswith(" 75%"), final
    assert "1.50/2.00 kimg" in final, final


def test_a_resumed_run_past_the_total_starts_at_the_total():
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        progress = KimgProgress(total_kimg=1.0, start_kimg=1.25, enabled=True, file=out)
        progress.close()
    assert "1.00/1.00 kimg" in _final_line(out.getvalue())


def test_a_disabled_bar_writes_nothing():
    out = io.StringIO()
    progress = KimgProgress(total_kimg=0.01, start_kimg=0.0, enabled=False, file=out)
    progress.update(0.016)
    progress.close()
    assert out.getvalue() == ""
