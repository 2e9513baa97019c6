"""The image bytes of an upload, and the encoding of image answers."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus

import cv2
import numpy as np

from .limits import RequestError

__all__ = ["IMAGE_FORMATS", "encode_image", "image_from_body"]

IMAGE_FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": (".jpg", "image/jpeg"),
    "jpg": (".jpg", "image/jpeg"),
    "png": (".png", "image/png"),
}
"""Answer formats of ``/annotate`` and ``/anonymize``: name -> (OpenCV extension, MIME type)."""


def image_from_body(body: bytes, content_type: str) -> bytes:
    """The image bytes of a request body: the body itself, or for ``multipart/form-data`` the
    part named ``image`` (else the first part that carries a file name, else the first part).

    Raises:
        RequestError: 400 for an empty body, a malformed form or an empty image part.
    """
    if not body:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the request has no body: send the image bytes or a form with an image file")
    if not content_type.lower().startswith("multipart/"):
        return body
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed multipart body (no boundary or no parts)")
    parts = list(msg.iter_parts())
    if not parts:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the multipart form has no parts")

    def pick():
        for p in parts:
            if p.get_param("name", header="content-disposition") == "image":
                return p
        for p in parts:
            if p.get_filename():
                return p
        return parts[0]

    data = pick().get_payload(decode=True)
    if not data:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the form's image part is empty")
    return data


def encode_image(image: np.ndarray, fmt: str) -> tuple[bytes, str]:
    """``image`` (``H x W x 3`` uint8 BGR) encoded as ``fmt`` (jpeg/jpg/png) -> (bytes, MIME type)."""
    ext, mime = IMAGE_FORMATS[fmt]
    ok, buf = cv2.imencode(ext, image, [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else [])
    if not ok:
        raise RuntimeError(f"could not encode the answer as {fmt}")
    return buf.tobytes(), mime
