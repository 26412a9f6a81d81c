"""The empty libQnnLpai.so we write instead of needing a C compiler."""

import ctypes
import os
import struct
import subprocess
import sys

import pytest

from edge_backbones.npu.elf_stub import empty_shared_object
from tests.npu.conftest import needs_npu_extra


def test_the_dynamic_loader_opens_it_and_finds_no_symbol(tmp_path):
    path = tmp_path / "libQnnLpai.so"
    path.write_bytes(empty_shared_object("libQnnLpai.so"))
    library = ctypes.CDLL(str(path))
    with pytest.raises(AttributeError):
        library.QnnInterface_getProviders  # noqa: B018


def test_it_names_itself(tmp_path):
    data = empty_shared_object("libQnnLpai.so")
    assert data[:4] == b"\x7fELF"
    assert struct.unpack_from("<H", data, 16)[0] == 3  # ET_DYN
    assert b"\0libQnnLpai.so\0" in data
    # deterministic: the cache file is the same on every machine
    assert data == empty_shared_object("libQnnLpai.so")


@needs_npu_extra
def test_litert_qualcomm_plugin_links_against_it(tmp_path):
    """The plugin's NEEDED list resolves with the wheel's QAIRT + the stub."""
    import ai_edge_litert
    import onnxruntime_qnn

    (tmp_path / "libQnnLpai.so").write_bytes(
        empty_shared_object("libQnnLpai.so")
    )
    plugin = os.path.join(
        os.path.dirname(ai_edge_litert.__file__),
        "vendors/qualcomm/compiler/libLiteRtCompilerPlugin_Qualcomm.so",
    )
    libs = os.pathsep.join([os.path.dirname(onnxruntime_qnn.__file__),
                            str(tmp_path)])  # fmt: skip
    code = f"import ctypes; ctypes.CDLL({plugin!r})"
    env = {**os.environ, "LD_LIBRARY_PATH": libs}
    ok = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert ok.returncode == 0
    # and without the stub the loader refuses, so the stub is what fixed it
    env["LD_LIBRARY_PATH"] = os.path.dirname(onnxruntime_qnn.__file__)
    missing = subprocess.run(
        [sys.executable, "-c", code], env=env, check=False,
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode != 0 and "libQnnLpai.so" in missing.stderr
