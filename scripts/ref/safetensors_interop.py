"""safetensors interop without the safetensors package (json + struct + torch).

safetensors_interop.py OUT      writes OUT, a safetensors file of known tensors
                                (F32, F64, F16, BF16, a scalar) for
                                tests/parity_safetensors_interop.c to read.
safetensors_interop.py --check PATH
                                reads PATH, written by libmoe in that test, and
                                exits 0 only if its layout and values are right.
"""
import json
import math
import struct
import sys

import torch


def known_tensors():
    """The tensors OUT holds; the C test computes the same formulas."""
    i12 = torch.arange(12, dtype=torch.float64)
    return {
        "model.layers.0.w": (torch.sin(i12 * 0.37) * 3).reshape(3, 4).to(torch.float32),
        "f64": torch.arange(5, dtype=torch.float64) / 7 - 0.3,
        "f16": torch.linspace(-4, 4, 8, dtype=torch.float64).reshape(2, 2, 2).to(torch.float16),
        "bf16": ((torch.arange(6, dtype=torch.float64) - 2.5) * 1.1).to(torch.bfloat16),
        "scalar": torch.tensor(0.125, dtype=torch.float32),
    }


DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
          torch.bfloat16: "BF16", torch.int32: "I32", torch.int64: "I64"}
TORCH = {v: k for k, v in DTYPES.items()}


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)  # numpy has no bfloat16
    return t.numpy().tobytes()


def write(path, tensors, metadata):
    header, blobs, pos = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        b = raw_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path):
    """Returns (tensors, metadata, header length)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = TORCH[e["dtype"]]
        raw = bytearray(data[b:end])
        if dt in (torch.float16, torch.bfloat16):
            t = torch.frombuffer(raw, dtype=torch.int16).view(dt) if raw else torch.empty(0, dtype=dt)
        else:
            t = torch.frombuffer(raw, dtype=dt) if raw else torch.empty(0, dtype=dt)
        out[name] = t.reshape(e["shape"])
    return out, meta, n


def check(path):
    """The file tests/parity_safetensors_interop.c writes: "a" [2, 3] with
    0.5 i - 1, "b.c" [4] with i^2 / 8, metadata {"who": "libmoe"}."""
    tensors, meta, n = read(path)
    errors = []
    if n % 8:
        errors.append(f"header length {n} is not a multiple of 8")
    if meta.get("who") != "libmoe" or meta.get("format") != "pt":
        errors.append(f"metadata {meta}")
    want = {"a": (torch.arange(6, dtype=torch.float64) * 0.5 - 1).reshape(2, 3),
            "b.c": torch.arange(4, dtype=torch.float64) ** 2 / 8}
    if sorted(tensors) != sorted(want):
        errors.append(f"tensors {sorted(tensors)}, expected {sorted(want)}")
    for name, w in want.items():
        got = tensors.get(name)
        if got is None:
            continue
        if list(got.shape) != list(w.shape):
            errors.append(f"{name}: shape {list(got.shape)}, expected {list(w.shape)}")
        elif not torch.equal(got.to(torch.float64), w):
            errors.append(f"{name}: values {got.tolist()}, expected {w.tolist()}")
    for e in errors:
        print("safetensors_interop:", e, file=sys.stderr)
    print(f"safetensors_interop: {path}: {len(tensors)} tensors, "
          f"{'ok' if not errors else 'MISMATCH'}")
    return 0 if not errors else 1


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    write(sys.argv[1], known_tensors(), {"format": "pt", "source": "torch"})
    # the writer and reader agree (a self-check of this script)
    back, _, _ = read(sys.argv[1])
    for name, t in known_tensors().items():
        assert torch.equal(back[name], t), name
    assert math.isclose(back["scalar"].item(), 0.125)


if __name__ == "__main__":
    main()
