"""report.py's page in a real browser: headless Chromium opens it from disk.

Skipped where no Chromium is installed (CI does not need one); on Debian,
``apt-get install chromium``. The page is opened twice: once with a probe script
added to a copy of it (audio durations, loaded figures, network requests, script
errors, written into the DOM that ``--dump-dom`` prints), once for a screenshot.
"""

import json
import re
import shutil
import subprocess
import wave

import numpy as np
import pytest

import report
from tests.fake_runs import make_fake_run

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium installed")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0"]

ERRORS_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (event) { window.__errors.push(String(event.message)); }, true);
</script>"""

PROBE = """<script>
(async function () {
  var audios = Array.from(document.querySelectorAll("audio"));
  var loaded = await Promise.all(audios.map(function (audio) {
    return new Promise(function (resolve) {
      var done = function () { resolve({id: audio.id, duration: audio.duration,
                                        expected: parseFloat(audio.dataset.seconds),
                                        error: audio.error ? audio.error.code : null}); };
      if (audio.readyState >= 1) { done(); return; }
      audio.addEventListener("loadedmetadata", done);
      audio.addEventListener("error", done);
      audio.load();
    });
  }));
  var curves = Array.from(document.querySelectorAll("img.attention-curve"));
  // Click the middle of the first figure: its player should seek to the time under the pointer.
  var box = document.querySelector(".seekable"), rect = box.getBoundingClientRect();
  box.dispatchEvent(new MouseEvent("click", {clientX: rect.left + 0.5 * rect.width, clientY: rect.top + 5,
                                             bubbles: true}));
  var seek = {time: document.getElementById(box.dataset.audio).currentTime,
              expected: (0.5 - parseFloat(box.dataset.x0)) / (parseFloat(box.dataset.x1) - parseFloat(box.dataset.x0))
                        * parseFloat(box.dataset.duration)};
  var probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    audio: loaded,
    curves: curves.map(function (image) { return image.complete && image.naturalWidth > 0; }),
    seekable: document.querySelectorAll(".seekable").length,
    seek: seek,
    resources: performance.getEntriesByType("resource").map(function (entry) { return entry.name; }),
    errors: window.__errors});
  document.body.appendChild(probe);
})();
</script>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    run = make_fake_run(root, "tanh", audio=True, counts={"train": 4, "test": 3}, min_frames=40, max_frames=200)
    out = root / "report.html"
    assert report.main([str(run), "--out", str(out), "--gallery", "1", "--resamples", "200"]) == 0
    return out


def browse(*arguments, timeout=120):
    return subprocess.run([BROWSER, *FLAGS, *arguments], capture_output=True, text=True, timeout=timeout)


def test_page_loads_offline_with_playable_audio_and_attention_curves(page, tmp_path):
    probed = tmp_path / "probed.html"
    text = page.read_text(encoding="utf-8")
    probed.write_text(text.replace("</head>", ERRORS_PROBE + "</head>", 1).replace("</body>", PROBE + "</body>", 1),
                      encoding="utf-8")
    result = browse("--virtual-time-budget=20000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stderr[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))

    assert probe["errors"] == []
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", result.stderr)
    assert [name for name in probe["resources"] if not name.startswith("data:")] == []  # no request at all
    assert probe["audio"] and len(probe["audio"]) == probe["seekable"] == len(probe["curves"])
    assert all(probe["curves"])
    for audio in probe["audio"]:
        assert audio["error"] is None
        assert abs(audio["duration"] - audio["expected"]) < 0.010, audio

    assert probe["seek"]["expected"] > 0.1
    assert abs(probe["seek"]["time"] - probe["seek"]["expected"]) < 0.02, probe["seek"]

    # The durations the page states are the wavs' own.
    wav_seconds = []
    for path in (page.parent / "tanh_corpus").rglob("*.wav"):
        with wave.open(str(path)) as handle:
            wav_seconds.append(handle.getnframes() / handle.getframerate())
    for audio in probe["audio"]:
        assert min(abs(audio["expected"] - s) for s in wav_seconds) < 1e-3


def test_screenshot_is_not_blank(page, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    browse(f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 20  # text, tables and figures, not a white page
    assert (pixels < 128).mean() > 0.01
