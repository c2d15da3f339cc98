"""A standard-library reader of the NPZ layout numpy.load accepts (numpy/lib/format.py, format 1.0):
the tests check what the mocker will read without needing numpy in CI."""

import ast
import struct
import zipfile

MAGIC = b"\x93NUMPY"


def read_npz(path):
    """{name: (shape, values as a flat list, header dict, data offset)} for every member."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise AssertionError(f"{info.filename}: numpy.savez stores members uncompressed")
            raw = zf.read(info)
            if raw[:6] != MAGIC or raw[6:8] != b"\x01\x00":
                raise AssertionError(f"{info.filename}: not NPY version 1.0")
            (hlen,) = struct.unpack("<H", raw[8:10])
            header = ast.literal_eval(raw[10:10 + hlen].decode("latin1"))
            offset = 10 + hlen
            count = 1
            for d in header["shape"]:
                count *= d
            values = list(struct.unpack(f"<{count}d", raw[offset:offset + 8 * count]))
            if len(raw) != offset + 8 * count:
                raise AssertionError(f"{info.filename}: trailing bytes")
            out[info.filename] = (header["shape"], values, header, offset)
    return out
