"""Open an HTML page in headless Chromium and report what actually rendered: each image's decoded width
and, for each video, whether the browser decoded a frame (what a person opening the report would see)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

_PROBE = """<pre id="probe"></pre><script>
function probe() {
  const images = Array.from(document.images).map(i => i.naturalWidth);
  const videos = Array.from(document.querySelectorAll('video')).map(
    v => ({ready: v.readyState, error: v.error ? v.error.code : 0, width: v.videoWidth}));
  document.getElementById('probe').textContent = JSON.stringify({images: images, videos: videos});
}
document.querySelectorAll('video').forEach(v => {
  v.preload = 'auto'; v.addEventListener('loadeddata', probe); v.addEventListener('error', probe); v.load();
});
window.addEventListener('load', probe);
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def rendered(page: Path, profile: Path, budget_ms: int = 10_000) -> dict[str, Any]:
    """{"images": [decoded width, ...], "videos": [{"ready", "error", "width"}, ...]} of `page`, probed on
    a copy beside it (so its relative links resolve the same way)."""
    browser = chromium()
    assert browser is not None, "no headless browser installed"
    copy = page.with_name(f".probe-{page.name}")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio"]
    flags += [
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    try:
        dom = subprocess.run(
            [browser, *flags, "--dump-dom", copy.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    finally:
        copy.unlink(missing_ok=True)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found and found.group(1), f"the probe did not run: {dom[:300]}"
    return json.loads(html.unescape(found.group(1)))
