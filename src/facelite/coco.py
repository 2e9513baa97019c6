"""COCO-format export of detections (``facelite detect --coco FILE``).

The file has the COCO keypoint-detection layout: ``images`` (id, file_name, width, height),
``annotations`` (one per face: ``bbox`` ``[x, y, width, height]``, ``area``, ``score``,
``keypoints`` ``[x1, y1, v1, ..., x5, y5, v5]`` with ``v = 2``, ``num_keypoints``,
``iscrowd = 0``) and one category, ``face`` (id 1) with the 5 landmark names. Coordinates are
pixels with the origin at the top-left corner of the image, as in COCO.

Example::

    from facelite.coco import CocoBuilder

    coco = CocoBuilder()
    coco.add_image("group.jpg", width, height, detector.detect(image))
    coco.write("faces.coco.json")

or from the JSON Lines of ``facelite detect --jsonl``: ``jsonl_to_coco("faces.jsonl", "faces.coco.json")``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .face import Face
from .spec import LANDMARK_NAMES

__all__ = ["CATEGORY", "CocoBuilder", "jsonl_to_coco", "read_jsonl", "records_to_coco"]

CATEGORY = {
    "id": 1,
    "name": "face",
    "supercategory": "person",
    "keypoints": list(LANDMARK_NAMES),
    "skeleton": [],
}


class CocoBuilder:
    """Collects images and their faces; :meth:`to_dict` / :meth:`write` give the COCO file.

    Image and annotation ids count from 1 in the order things are added.
    """

    def __init__(self, description: str = "facelite detections") -> None:
        self.description = description
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add_image(self, file_name: str, width: int, height: int, faces: Iterable[Face | dict]) -> int:
        """Add one image and its detections; returns its image id."""
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": str(file_name), "width": int(width), "height": int(height)})
        for face in faces:
            d = face.to_dict() if isinstance(face, Face) else face
            x1, y1, x2, y2 = (float(v) for v in d["box"])
            w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
            keypoints: list[float] = []
            for x, y in d["landmarks"]:
                keypoints += [round(float(x), 2), round(float(y), 2), 2]
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY["id"],
                    "bbox": [round(x1, 2), round(y1, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                    "score": round(float(d["score"]), 5),
                    "keypoints": keypoints,
                    "num_keypoints": len(keypoints) // 3,
                }
            )
        return image_id

    def add_record(self, record: dict) -> int:
        """Add a ``facelite detect`` JSON record (``path``, ``width``, ``height``, ``faces``)."""
        return self.add_image(record["path"], record["width"], record["height"], record["faces"])

    def to_dict(self) -> dict:
        return {
            "info": {"description": self.description},
            "images": self.images,
            "annotations": self.annotations,
            "categories": [CATEGORY],
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON file (atomically for a regular file: a temporary file renamed into place;
        through a symlink to its target; straight into a pipe or device, see
        :func:`facelite.fileio.write_atomic`)."""
        from .fileio import write_atomic

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(target, json.dumps(self.to_dict()) + "\n")


def records_to_coco(records: Iterable[dict]) -> dict:
    """COCO dict from ``facelite detect`` records, in their order."""
    builder = CocoBuilder()
    for r in records:
        builder.add_record(r)
    return builder.to_dict()


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict]:
    """The records of a JSON Lines file, streamed; blank lines and an unfinished last line
    (no newline after it: a write that was cut off) are skipped.

    Raises:
        ValueError: a complete line is not valid JSON.
    """
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                if not line.endswith("\n"):  # the last line, cut short
                    return
                raise ValueError(f"{path}: line {number} is not valid JSON") from None


def jsonl_to_coco(jsonl: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Convert the JSON Lines of ``facelite detect --jsonl`` to a COCO file."""
    builder = CocoBuilder()
    for r in read_jsonl(jsonl):
        builder.add_record(r)
    return builder.write(out)
