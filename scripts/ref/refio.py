"""Writes reference tensors for the C parity tests (tests/support/ref_data.h).
Format: b"MOEREF01", u32 count, then per tensor: u32 name length, name,
u32 ndim, i64 dims, f64 data (little endian)."""
import struct


def write_ref(path, tensors):
    """tensors: list of (name, array-like: torch tensor, list or number)."""
    import torch
    with open(path, "wb") as f:
        f.write(b"MOEREF01")
        f.write(struct.pack("<I", len(tensors)))
        for name, value in tensors:
            t = torch.as_tensor(value).detach().to(torch.float64).contiguous().cpu()
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", t.dim()))
            for d in t.shape:
                f.write(struct.pack("<q", d))
            f.write(t.numpy().tobytes())
