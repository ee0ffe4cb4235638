"""Every shipped GPU profile is proved by computation: each tool's call (weights on the device, the caches at their
limits, its activations from the full-size architectures) fits its card, through the registry's own placement."""

import pytest

from chat.bench.memory import GIB, default_profiles
from chat.bench.profiles import activations_mib, prove_all
from chat.registry.budget import ACTIVATION_MIB

# PCIe 3.0 x16 figures and a SATA SSD's read speed: the switch times below only need fixed speeds
SPEEDS = {"pinned": 12e9, "pageable": 6e9, "disk": 0.5e9}
TOOLS = {"chat", "score", "score siglip", "classify", "caption", "ask BLIP", "click SAM", "find", "edit",
         "edit marked, remove", "generate", "sketch"}


@pytest.fixture(scope="module")
def proved():
    traced: dict = {}
    proofs = prove_all(default_profiles(), SPEEDS, traced=traced)
    return {p.profile: p for p in proofs}, traced


def test_every_profile_peaks_within_its_card_with_every_tool(proved):
    proofs, _ = proved
    assert [(p.profile, p.card_gib) for p in proofs.values()] == [
        ("gpu-8gb", 8), ("gpu-12gb", 12), ("gpu-16gb", 16), ("default", 24)]
    for proof in proofs.values():
        assert {c.tool for c in proof.calls} == TOOLS
        for call in proof.calls:
            assert call.peak_bytes <= proof.budget_bytes, (proof.profile, call.tool)
            assert call.peak_bytes > call.weights_bytes  # caches and activations are counted
        assert proof.peak_bytes + proof.context_gib * GIB <= proof.card_gib * GIB
        assert proof.as_dict()["fits"] is True


def test_8gb_runs_llava_in_nf4_and_any_one_tool_below_7_5_gib(proved):
    proof = proved[0]["gpu-8gb"]
    assert proof.resident == ["llava"] and proof.peak_bytes < 7.5 * GIB
    chat = next(c for c in proof.calls if c.tool == "chat")
    assert 4.5 * GIB < chat.peak_bytes  # LLaVA-7B NF4 (4.2 GiB) + its KV cache over 2048 tokens + the caches
    assert any("model CPU offload" in n for n in proof.notes)  # the SD pipelines visit part by part


def test_12gb_keeps_llava_clip_sam_and_one_sd_pipeline_on_the_gpu(proved):
    proof = proved[0]["gpu-12gb"]
    assert {"llava", "clip", "sam"} <= set(proof.resident) and set(proof.resident) <= set(proof.on_device)
    assert len({"pix2pix", "inpaint", "txt2img"} & set(proof.resident)) == 1
    resident_tools = [c for c in proof.calls if set(c.models) <= set(proof.resident)]
    assert {c.tool for c in resident_tools} >= {"chat", "score", "click SAM", "find", "classify"}
    assert all(c.from_ram == c.from_disk == 0 for c in resident_tools)


def test_16gb_never_reads_the_disk_on_a_tool_switch_and_24gb_moves_nothing(proved):
    sixteen, default = proved[0]["gpu-16gb"], proved[0]["default"]
    assert all(c.from_disk == 0 for c in sixteen.calls) and sixteen.worst.from_disk == 0
    assert sixteen.worst.seconds < 0.5
    assert default.worst.seconds == 0 and default.in_ram == [] and default.ram_bytes == 0
    eight = proved[0]["gpu-8gb"]  # SigLIP waits on disk there: its switch is the slowest
    assert eight.worst.tool == "score siglip" and eight.worst.from_disk > 3 * GIB
    reading = eight.worst.from_disk / SPEEDS["disk"]  # its float32 file read, then 1.64 GiB copied to the GPU
    assert reading + 1.5 * GIB / SPEEDS["pageable"] < eight.worst.seconds < reading + 1.8 * GIB / SPEEDS["pageable"]


def test_the_registry_budgets_the_activations_the_architectures_trace(proved):
    traced = activations_mib(proved[1])
    assert set(traced) == set(ACTIVATION_MIB)
    for key, phases in ACTIVATION_MIB.items():
        assert traced[key] == pytest.approx(phases, abs=0.1), key
