"""SoC names, vendor SDKs and the stand-in SDK module (no compile here)."""

import sys

import pytest

from edge_backbones.errors import InputError, SdkUnavailableError
from edge_backbones.npu.sdk import Toolchain, toolchain_for
from edge_backbones.npu.socs import parse_socs


def test_socs_parse_case_insensitively_without_duplicates():
    socs = parse_socs("sm8650, SM8750,SM8650,intel-cpu")
    assert [s.name for s in socs] == ["SM8650", "SM8750", "intel-cpu"]
    assert [s.vendor for s in socs] == ["qualcomm", "qualcomm",
                                        "intel_openvino"]  # fmt: skip
    assert socs[2].graph_backend == "cpu"


def test_an_unknown_soc_names_itself_and_the_known_ones():
    with pytest.raises(InputError, match=r"SM9999.*SM8650.*intel-cpu"):
        parse_socs("SM8650,SM9999")


@pytest.mark.parametrize(
    "soc, sdk, package",
    [
        ("MT6991", "MediaTek NeuroPilot SDK", "ai-edge-litert-sdk-mediatek"),
        ("Tensor_G4", "Google Tensor compiler",
         "ai-edge-litert-sdk-google-tensor"),
        ("LNL", "Intel NPU compiler", "ai-edge-litert-sdk-intel"),
    ],
)  # fmt: skip
def test_a_soc_without_its_sdk_says_which_and_why(soc, sdk, package):
    (parsed,) = parse_socs(soc)
    with pytest.raises(SdkUnavailableError) as error:
        toolchain_for(parsed)
    message = str(error.value)
    assert sdk in message and package in message
    assert "vendor's servers" in message and soc in message


def test_the_stand_in_sdk_module_lives_only_inside_the_compile():
    name = "ai_edge_litert_sdk_qualcomm"
    before = sys.modules.get(name)
    toolchain = Toolchain("qualcomm", "/a:/b", {})
    with toolchain.active():
        import ai_edge_litert_sdk_qualcomm

        assert ai_edge_litert_sdk_qualcomm.path_to_sdk_libs() == "/a:/b"
    assert sys.modules.get(name) is before


def test_compile_cli_exits_2_with_the_sdk_error(tmp_path, capsys):
    from edge_backbones.cli import main

    model = tmp_path / "m.tflite"
    model.write_bytes(b"not read: the SoC is checked first")
    assert main(["compile", str(model), "--soc", "MT6991"]) == 2
    assert "SdkUnavailableError" in capsys.readouterr().err


def test_qnn_tensor_names_follow_the_plugin():
    # names read back from a compiled context binary (ViTDet, SM8650)
    from edge_backbones.runtime.npu_engines import qnn_tensor_name

    assert qnn_tensor_name("tfl.quantize") == "tfl_quantize"
    assert qnn_tensor_name("StatefulPartitionedCall:01") == (
        "StatefulPartitionedCall_01"
    )
    assert qnn_tensor_name("s_1/b0_attention_1/MatMul;;s_1/transpose_1") == (
        "s_1_b0_attention_1_MatMul_s_1_transpose_1"
    )
