"""Reading PyTorch's pickled Flight Recorder dumps without unpickling arbitrary objects.

NCCL writes its dump on a timeout (``TORCH_NCCL_DUMP_ON_TIMEOUT``) as a pickle of plain containers.  This
unpickler resolves no class and no function at all (``find_class`` refuses every global, ``persistent_load``
every id), so a file can build dicts, lists, tuples, strings, bytes, numbers, booleans and None, and nothing
else: a pickle that names ``os.system`` or any other object is refused before anything runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from ..errors import InputError, read_bounded

MAX_BYTES = 256 * 1024**2


class _PlainOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load a Python object ({module}.{name})")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a persistent id")


def load_plain(path: Path) -> Any:
    """The pickle's value, made of plain containers only; InputError otherwise."""
    data = read_bounded(path, MAX_BYTES, "pickle")
    try:
        return _PlainOnly(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        raise InputError(path, f"not a plain Flight Recorder dump: {e}") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError, MemoryError,
            RecursionError) as e:
        raise InputError(path, f"is not a readable pickle ({type(e).__name__})") from None
