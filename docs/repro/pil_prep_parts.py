#!/usr/bin/env python3
"""How PIL's preprocessing time splits on one core: decode alone, decode with DCT-domain
downscaling (`draft`), the whole job (decode, crop, bilinear resize 256, JPEG quality 90,
as torch_reference.py `prep` does) and encoding alone. Everything is in memory, so no
file-system time is counted.

Usage: python pil_prep_parts.py DIR   (DIR: e.g. target/bench/prep-input/001.bench)
"""
import io, os, statistics, sys, time
from PIL import Image

folder = sys.argv[1]
blobs = [open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))]


def rate(job, reps=5):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return len(blobs) / statistics.median(times)


def decode():
    for blob in blobs:
        Image.open(io.BytesIO(blob)).convert("RGB")


def decode_draft():
    for blob in blobs:
        image = Image.open(io.BytesIO(blob))
        image.draft("RGB", (256, 256))
        image.convert("RGB")


def whole():
    for blob in blobs:
        image = Image.open(io.BytesIO(blob)).convert("RGB")
        w, h = image.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        image.crop((left, top, left + s, top + s)).resize((256, 256), Image.BILINEAR).save(
            io.BytesIO(), "JPEG", quality=90)


sample = Image.open(io.BytesIO(blobs[0])).convert("RGB").resize((256, 256))


def encode():
    for _ in blobs:
        sample.save(io.BytesIO(), "JPEG", quality=90)


pixels = statistics.mean(Image.open(io.BytesIO(b)).size[0] * Image.open(io.BytesIO(b)).size[1]
                         for b in blobs)
print(f"{len(blobs)} images, mean {pixels / 1e3:.0f} kpixels; images/s on one core:")
print(f"decode {rate(decode):.0f}, decode with draft {rate(decode_draft):.0f}, "
      f"whole job {rate(whole):.0f}, encode 256x256 {rate(encode):.0f}")
