"""The web page at ``/`` in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium), against a real server started here: images uploaded through the page's
file input, and the webcam mode fed by Chromium's fake camera playing a clip made from the
sample image. Skipped, saying why, only where Chromium or its driver is not installed."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'facelite[serve]'")

from serve_util import running_server, small_limits
from test_detector import ASTRONAUT_BOX

from facelite import FaceDetector
from facelite.nms import box_iou
from facelite.paths import data_path
from facelite.service import ServiceSettings

webdriver = pytest.importorskip("selenium.webdriver", reason="the page tests need selenium (the test extra)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("the page tests need Chromium and its driver: apt-get install chromium chromium-driver "
                f"(found chromium={CHROMIUM}, chromedriver={CHROMEDRIVER})", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def write_y4m(image: np.ndarray, path: Path, frames: int = 2) -> Path:
    """A raw YUV 4:2:0 clip of ``image`` (H x W x 3 uint8 BGR, even sides) for Chromium's fake camera."""
    h, w = image.shape[:2]
    i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + i420)
    return path


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="facelite-page-") as d:
        yield Path(d)


@pytest.fixture(scope="module")
def server():
    with running_server(ServiceSettings([FaceDetector(threads=1)], small_limits(body_timeout_s=10))) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(workdir):
    clip = write_y4m(cv2.imread(str(data_path("astronaut.jpg"))), workdir / "astronaut.y4m")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={workdir / 'profile'}",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 f"--use-file-for-fake-video-capture={clip}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser, server) -> None:
    browser.get(server.url + "/")
    WebDriverWait(browser, 15).until(lambda d: d.execute_script("return window.facelite && window.facelite.ready"))
    assert browser.find_element(By.ID, "model").get_attribute("value") == "mobilenetv2-0.35"


def test_uploaded_images_show_their_faces_json_and_anonymised_version(browser, server, workdir):
    open_page(browser, server)
    image = cv2.imread(str(data_path("astronaut.jpg")))
    mirrored = workdir / "mirrored.png"
    cv2.imwrite(str(mirrored), image[:, ::-1])
    gif = workdir / "refused.gif"
    gif.write_bytes(b"GIF89a" + b"\0" * 40)
    files = browser.find_element(By.ID, "files")
    browser.execute_script("arguments[0].hidden = false", files)
    files.send_keys("\n".join(str(p) for p in (data_path("astronaut.jpg"), mirrored, gif)))
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result.done, .result.failed")) == 3)

    cards = {c.get_attribute("data-name"): c for c in browser.find_elements(By.CSS_SELECTOR, ".result")}
    assert "not accepted" in cards["refused.gif"].get_attribute("data-error")
    expected = {"astronaut.jpg": ASTRONAUT_BOX,
                "mirrored.png": (512 - ASTRONAUT_BOX[2], ASTRONAUT_BOX[1], 512 - ASTRONAUT_BOX[0], ASTRONAUT_BOX[3])}
    for name, box in expected.items():
        card = cards[name]
        assert card.get_attribute("data-faces") == "1"
        record = json.loads(card.find_element(By.CSS_SELECTOR, "pre.json").text)
        assert (record["width"], record["height"]) == (512, 512) and len(record["faces"]) == 1
        assert box_iou(np.array([record["faces"][0]["box"]]), np.array([box]))[0, 0] > 0.7
        assert len(record["faces"][0]["landmarks"]) == 5
        # the canvas shows the image with the box drawn in green at that place
        x1, y1, x2, _ = record["faces"][0]["box"]
        pixel = browser.execute_script(
            "const c = arguments[0]; return Array.from(c.getContext('2d').getImageData(arguments[1], arguments[2], 1, 1).data);",
            card.find_element(By.CSS_SELECTOR, "canvas.annotated"), int((x1 + x2) / 2), int(y1))  # the 2-pixel line covers row floor(y1)
        assert pixel[:3] == [0, 230, 118]  # #00e676
        assert card.find_element(By.CSS_SELECTOR, "a.download-json").get_attribute("href").startswith("blob:")
    assert len(browser.execute_script("return window.facelite.results")) == 2

    card = cards["astronaut.jpg"]
    browser.find_element(By.ID, "anon-method").send_keys("pixelate")
    card.find_element(By.CSS_SELECTOR, "button.anonymize").click()
    WebDriverWait(browser, 20).until(lambda d: card.get_attribute("data-anonymized") == "pixelate")
    img = card.find_element(By.CSS_SELECTOR, "img.anonymized")
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return arguments[0].naturalWidth", img) == 512)
    assert card.find_element(By.CSS_SELECTOR, "a.download-anon").get_attribute("download") == "astronaut.pixelate.png"

    shot = workdir / "page.png"
    assert browser.save_screenshot(str(shot))
    screenshot = cv2.imread(str(shot))
    assert screenshot is not None and screenshot.shape[0] > 500 and screenshot.std() > 10


def test_webcam_mode_detects_faces_in_the_fake_camera_stream(browser, server, workdir):
    open_page(browser, server)
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="webcam"]').click()
    browser.find_element(By.ID, "cam-start").click()
    t0 = time.monotonic()
    try:
        WebDriverWait(browser, 20).until(lambda d: d.execute_script("return window.facelite.webcam.frames") >= 8)
    finally:
        cam = browser.execute_script("return window.facelite.webcam")
        browser.find_element(By.ID, "cam-stop").click()
    assert time.monotonic() - t0 < 20
    assert cam["framesWithFaces"] >= cam["frames"] - 1  # every frame shows the astronaut
    assert len(cam["faces"]) == 1 and cam["faces"][0]["score"] > 0.9
    assert cam["fps"] > 1
    assert float(browser.find_element(By.ID, "fps").text) > 1
    assert int(browser.find_element(By.ID, "frames").text) >= 8
    assert browser.save_screenshot(str(workdir / "webcam.png"))
